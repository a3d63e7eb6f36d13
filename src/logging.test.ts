import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { makeRequestChildrenLazy } from './logging.js';

/** A root logger at `level` writing JSON lines into `lines`, with its request children made lazy. */
function capturedRoot(level: string) {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const root = pino({ level }, stream);
  makeRequestChildrenLazy(root);
  return { root, lines };
}

describe('request child loggers made lazy on the root', () => {
  it('a request child writes with its bindings, and so do the children made from it', () => {
    const { root, lines } = capturedRoot('warn');
    const request = root.child({ reqId: 'req_1' }, {});
    request.info('below the level: nothing is written');
    request.warn('from the request');
    request.child({ step: 'verify' }).warn('from a child of the request');
    expect(lines.map((line) => [line.msg, line.reqId, line.step])).toEqual([
      ['from the request', 'req_1', undefined],
      ['from a child of the request', 'req_1', 'verify'],
    ]);
  });

  it('a child with options of its own (a route log level) is a real child that applies them', () => {
    const { root, lines } = capturedRoot('warn');
    const route = root.child({ reqId: 'req_2' }, { level: 'debug' });
    expect(route.level).toBe('debug');
    route.debug('at the route level');
    expect(lines.map((line) => [line.msg, line.reqId])).toEqual([['at the route level', 'req_2']]);
    expect(root.level).toBe('warn');
  });

  it("a child's bindings are its own and its parent's, whichever is made first", () => {
    const { root } = capturedRoot('warn');
    const request = root.child({ reqId: 'req_3' });
    expect(request.bindings()).toEqual({ reqId: 'req_3' });
    expect(request.child({ step: 'x' }).bindings()).toEqual({ reqId: 'req_3', step: 'x' });
  });
});
