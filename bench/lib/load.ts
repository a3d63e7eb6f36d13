/** Load generation with autocannon (in the bench process), and forged tokens. */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import autocannon from 'autocannon';
import { checksum } from '../../src/keys/token.js';
import { BASE62 } from '../../src/ids.js';
import { ROOT } from './common.js';

// Forged tokens: valid format and CRC32 checksum, a fresh random id per request.
let pool = randomBytes(0);
let poolAt = 0;
function randomBase62(length: number): string {
  if (poolAt + length > pool.length) {
    pool = randomBytes(64 * 1024);
    poolAt = 0;
  }
  let out = '';
  for (let i = 0; i < length; i++) out += BASE62[pool[poolAt++]! % 62];
  return out;
}

export function forgedToken(): string {
  const body = `sk_${randomBase62(20)}.${randomBase62(43)}`;
  return body + checksum(body);
}

/** A request whose Authorization header carries a new forged token every time. */
export function forgedRequest(path: string): autocannon.Request {
  return {
    method: 'GET',
    path,
    setupRequest: (request) => {
      request.headers = { ...request.headers, authorization: `Bearer ${forgedToken()}` };
      return request;
    },
  };
}

export interface RunOutput {
  result: autocannon.Result;
  latencies: Float64Array;
  count: number;
}

/** One autocannon run; latencies are kept at full (sub-millisecond) resolution for every status. */
export function runLoad(options: autocannon.Options, limit: { durationS: number } | { amount: number }, onInstance?: (instance: autocannon.Instance) => void): Promise<RunOutput> {
  return new Promise((resolve, reject) => {
    let latencies = new Float64Array(1 << 17);
    let count = 0;
    const instance = autocannon({ ...options, ...('amount' in limit ? { amount: limit.amount } : { duration: limit.durationS }) }, (error, result) => {
      if (error) reject(error);
      else resolve({ result, latencies, count });
    });
    instance.on('response', (_client, _status, _bytes, responseTime) => {
      if (count === latencies.length) {
        const bigger = new Float64Array(latencies.length * 2);
        bigger.set(latencies);
        latencies = bigger;
      }
      latencies[count++] = responseTime;
    });
    onInstance?.(instance);
  });
}

export function autocannonVersion(): string {
  try {
    return (JSON.parse(fs.readFileSync(path.join(ROOT, 'node_modules', 'autocannon', 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return '?';
  }
}

export function packageVersion(name: string): string {
  try {
    return (JSON.parse(fs.readFileSync(path.join(ROOT, 'node_modules', ...name.split('/'), 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return '?';
  }
}
