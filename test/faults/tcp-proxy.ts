/**
 * A pausable TCP proxy for fault-injection tests: put it between a Paygate node and PostgreSQL and
 * turn the link into a black hole, a healed partition, or a cut cable.
 *
 *   client ──► [ listen 127.0.0.1:port ] ──c2s lane──► target
 *          ◄──                          ◄──s2c lane──
 *
 * Each lane forwards one direction. While its direction is paused a lane holds everything that
 * arrives (bytes, and the FIN or reset of its source) in order and closes nothing, so both peers
 * see a silent, open socket: the network of a partition, not of a crash. `resume()` delivers what
 * was held, in order, and the lane flows again. Buffering is unbounded only while paused; otherwise
 * a lane writes through and pauses its source on backpressure, like `pipe`.
 */
import net from 'node:net';

export type Direction = 'both' | 'toServer' | 'toClient';

export interface TcpProxy {
  /** Always 127.0.0.1. */
  readonly host: string;
  readonly port: number;
  /** Open client sockets. */
  readonly connections: number;
  /** A postgres:// URL with its host:port replaced by the proxy's. */
  rewrite(url: string): string;
  /** Holds everything in `direction` (default both) until `resume()`; closes nothing. */
  pause(direction?: Direction): void;
  /** Delivers what was held, in order, then flows normally. `direction` defaults to both. */
  resume(direction?: Direction): void;
  /**
   * One-shot trigger: when a client->server chunk makes the text sent on its connection (since the
   * trigger was armed) match `pattern`, that chunk is forwarded and then the proxy pauses in
   * `direction` (default both), so the server's reply is held when the direction includes toClient.
   * Resolves when it fired.
   */
  pauseWhen(pattern: string | RegExp, direction?: Direction): Promise<void>;
  /** Cuts every link: resets and destroys both sockets of every pair. The pause state is kept. */
  destroyAll(): void;
  /** Stops listening and destroys everything; idempotent. */
  close(): Promise<void>;
}

export interface TcpProxyOptions {
  targetHost: string;
  targetPort: number;
  /** Default: a free port. */
  listenPort?: number;
}

type Held = Buffer | 'end' | 'reset';

/** How much client->server text a trigger remembers per connection, to match across chunks. */
const TRIGGER_WINDOW_BYTES = 64 * 1024;

/** Sends an RST where the socket supports it (a cut link), else just destroys it. */
function cut(socket: net.Socket): void {
  if (socket.destroyed) return;
  try {
    socket.resetAndDestroy();
  } catch {
    socket.destroy();
  }
}

/** One direction of one connection. */
class Lane {
  private held: Held[] = [];
  private waitingForDrain = false;
  destination: net.Socket | null = null;

  constructor(
    private readonly source: net.Socket,
    private readonly isPaused: () => boolean,
  ) {}

  push(item: Held): void {
    // Order: once anything is held, later items queue behind it even if the pause has just ended.
    if (this.held.length > 0 || this.isPaused() || !this.destination) {
      this.held.push(item);
      return;
    }
    this.deliver(item);
  }

  flush(): void {
    if (this.isPaused() || !this.destination) return;
    const items = this.held;
    this.held = [];
    for (const item of items) this.deliver(item);
  }

  drop(): void {
    this.held = [];
  }

  private deliver(item: Held): void {
    const destination = this.destination!;
    if (destination.destroyed) return;
    if (item === 'reset') {
      cut(destination);
    } else if (item === 'end') {
      if (!destination.writableEnded) destination.end();
    } else if (!destination.writableEnded && !destination.write(item) && !this.waitingForDrain) {
      // Backpressure: stop reading the source until the destination drains.
      this.waitingForDrain = true;
      this.source.pause();
      destination.once('drain', () => {
        this.waitingForDrain = false;
        this.source.resume();
      });
    }
  }
}

interface Pair {
  client: net.Socket;
  clientOpen: boolean;
  upstream: net.Socket | null;
  toServer: Lane;
  toClient: Lane | null;
}

interface Trigger {
  matches(text: string): boolean;
  direction: Direction;
  windows: WeakMap<Pair, Buffer>;
  fire(): void;
}

function matcher(pattern: string | RegExp): (text: string) => boolean {
  if (typeof pattern === 'string') return (text) => text.includes(pattern);
  // Without g/y a RegExp keeps no lastIndex between tests.
  const regexp = new RegExp(pattern.source, pattern.flags.replace(/[gy]/g, ''));
  return (text) => regexp.test(text);
}

export async function startTcpProxy(options: TcpProxyOptions): Promise<TcpProxy> {
  const host = '127.0.0.1';
  // Every pair with a socket still open: a closed client's lane may still hold bytes or a FIN for the
  // server, delivered on resume.
  const pairs = new Set<Pair>();
  const sockets = new Set<net.Socket>();
  let triggers: Trigger[] = [];
  let pausedToServer = false;
  let pausedToClient = false;
  let closed = false;

  const track = (socket: net.Socket) => {
    sockets.add(socket);
    // Errors (ECONNRESET, ECONNREFUSED...) are part of the faults under test, never crashes.
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
  };

  const connectUpstream = (pair: Pair) => {
    const upstream = net.connect({ host: options.targetHost, port: options.targetPort, allowHalfOpen: true });
    upstream.setNoDelay(true);
    track(upstream);
    pair.upstream = upstream;
    const toClient = new Lane(upstream, () => pausedToClient);
    toClient.destination = pair.client;
    pair.toClient = toClient;
    upstream.on('data', (chunk: Buffer) => toClient.push(chunk));
    upstream.on('end', () => toClient.push('end'));
    upstream.on('close', (hadError) => {
      toClient.push(hadError ? 'reset' : 'end');
      if (!pair.clientOpen) pairs.delete(pair);
    });
    pair.toServer.destination = upstream;
    pair.toServer.flush();
  };

  const scan = (pair: Pair, chunk: Buffer): Trigger | null => {
    for (const trigger of triggers) {
      const previous = trigger.windows.get(pair);
      const window = previous ? Buffer.concat([previous, chunk]) : chunk;
      if (trigger.matches(window.toString('utf8')) || trigger.matches(window.toString('latin1'))) return trigger;
      trigger.windows.set(pair, window.length > TRIGGER_WINDOW_BYTES ? window.subarray(window.length - TRIGGER_WINDOW_BYTES) : window);
    }
    return null;
  };

  const pause = (direction: Direction = 'both') => {
    if (direction !== 'toClient') pausedToServer = true;
    if (direction !== 'toServer') pausedToClient = true;
  };

  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    if (closed) {
      client.destroy();
      return;
    }
    client.setNoDelay(true);
    track(client);
    const pair: Pair = { client, clientOpen: true, upstream: null, toServer: new Lane(client, () => pausedToServer), toClient: null };
    pairs.add(pair);
    client.on('data', (chunk: Buffer) => {
      const fired = triggers.length > 0 ? scan(pair, chunk) : null;
      pair.toServer.push(chunk);
      if (fired) {
        // The matching chunk has gone (or is held behind an earlier pause); now freeze.
        triggers = triggers.filter((t) => t !== fired);
        pause(fired.direction);
        fired.fire();
      }
    });
    client.on('end', () => pair.toServer.push('end'));
    client.on('close', (hadError) => {
      pair.clientOpen = false;
      // Never connected upstream (paused since accept): nothing of it ever reached the server.
      if (!pair.upstream || pair.upstream.destroyed) pairs.delete(pair);
      else pair.toServer.push(hadError ? 'reset' : 'end');
    });
    // A partition toward the server: the handshake completes here, but no SYN reaches the server
    // until resume. Connecting lazily also keeps the server's authentication_timeout out of play.
    if (!pausedToServer) connectUpstream(pair);
  });
  server.on('error', () => undefined);

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.listenPort ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  if (!address || typeof address !== 'object') throw new Error('tcp-proxy: no listening address');
  const port = address.port;

  return {
    host,
    port,
    get connections() {
      let open = 0;
      for (const pair of pairs) if (pair.clientOpen) open += 1;
      return open;
    },
    rewrite(url) {
      const u = new URL(url);
      u.hostname = host;
      u.port = String(port);
      return u.toString();
    },
    pause,
    resume(direction = 'both') {
      if (direction !== 'toClient') pausedToServer = false;
      if (direction !== 'toServer') pausedToClient = false;
      for (const pair of [...pairs]) {
        if (!pair.upstream) {
          if (!pausedToServer) connectUpstream(pair);
        } else {
          pair.toServer.flush();
        }
        pair.toClient?.flush();
      }
    },
    pauseWhen(pattern, direction = 'both') {
      return new Promise<void>((resolve) => {
        triggers.push({ matches: matcher(pattern), direction, windows: new WeakMap(), fire: resolve });
      });
    },
    destroyAll() {
      for (const pair of pairs) {
        pair.toServer.drop();
        pair.toClient?.drop();
      }
      for (const socket of [...sockets]) cut(socket);
      pairs.clear();
    },
    async close() {
      if (closed) return;
      closed = true;
      triggers = [];
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of [...sockets]) cut(socket);
      pairs.clear();
      await stopped;
    },
  };
}
