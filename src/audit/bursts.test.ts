import { describe, expect, it } from 'vitest';
import { AuditBursts } from './bursts.js';
import type { AuditInput } from './events.js';

function setup(options: { maxTracked?: number } = {}) {
  let now = 1_000_000;
  const written: AuditInput[] = [];
  const bursts = new AuditBursts({ write: async (inputs) => void written.push(...inputs), windowMs: 60_000, now: () => now, ...options });
  const attempt = (key: string, n: number, recordAt = 1) => {
    const immediate: AuditInput[] = [];
    for (let i = 0; i < n; i++) {
      const event = bursts.note(key, { action: 'auth.insufficient_scope', actor: { type: 'api_key', id: key }, organizationId: null, requestId: `${key}-${i}`, details: { requiredScope: 'x:read' } }, { recordAt, sample: { field: 'routes', value: `GET /r${i % 2}` } });
      if (event) immediate.push(event);
    }
    return immediate;
  };
  return { bursts, written, attempt, advance: (ms: number) => void (now += ms) };
}

describe('audit bursts', () => {
  it('hands back the first attempt of a window to write at once, and writes the rest as one event when the window ends', async () => {
    const { bursts, written, attempt, advance } = setup();
    expect(attempt('k', 10).map((e) => e.requestId)).toEqual(['k-0']);
    await bursts.flush();
    expect(written).toEqual([]);
    advance(60_000);
    await bursts.flush();
    expect(written).toEqual([
      expect.objectContaining({ requestId: 'k-9', details: expect.objectContaining({ requiredScope: 'x:read', attempts: 9, aggregated: true, routes: ['GET /r1', 'GET /r0'] }) }),
    ]);
    expect(bursts.size).toBe(0);
  });

  it('below recordAt nothing is written; the recordAt-th attempt carries the count so far', async () => {
    const { bursts, written, attempt, advance } = setup();
    expect(attempt('quiet', 4, 5)).toEqual([]);
    const [fifth] = attempt('loud', 5, 5);
    expect(fifth!.details).toMatchObject({ attempts: 5 });
    advance(60_000);
    await bursts.flush();
    expect(written).toEqual([]);
  });

  it('never drops a key with unreported attempts when full: newcomers go to one untracked event per action', async () => {
    const { bursts, written, attempt } = setup({ maxTracked: 1 });
    attempt('held', 3);
    for (let i = 0; i < 4; i++) attempt(`new-${i}`, 1);
    expect(bursts.size).toBe(1);
    await bursts.flush(true);
    expect(written).toEqual([
      expect.objectContaining({ actor: { type: 'api_key', id: 'held' }, details: expect.objectContaining({ attempts: 2 }) }),
      expect.objectContaining({ actor: { type: 'api_key', id: null }, details: expect.objectContaining({ attempts: 4, untracked: true }) }),
    ]);
  });

  it('count() adds to an open window exactly as note() would, and leaves the attempt to write and a new window to note()', async () => {
    const events = async (useCount: boolean) => {
      let now = 1_000_000;
      const written: AuditInput[] = [];
      const immediate: AuditInput[] = [];
      const bursts = new AuditBursts({ write: async (inputs) => void written.push(...inputs), windowMs: 60_000, now: () => now });
      for (let i = 0; i < 23; i++) {
        if (i === 12) now += 60_000;
        const requestId = `r-${i}`;
        const ip = `192.0.2.${i}`;
        if (useCount && bursts.count('junk', ip, requestId)) continue;
        const event = bursts.note('junk', { action: 'auth.invalid_api_key', actor: { type: 'api_key', id: null }, organizationId: null, ip, requestId, details: { source: '192.0.2.0/24' } }, { recordAt: 5 });
        if (event) immediate.push(event);
      }
      await bursts.flush(true);
      return { immediate, written };
    };
    const counted = await events(true);
    expect(counted).toEqual(await events(false));
    expect(counted.immediate.map((e) => e.requestId)).toEqual(['r-4', 'r-16']);
    expect(counted.written.map((e) => [e.requestId, e.ip, (e.details as { attempts: number }).attempts])).toEqual([
      ['r-11', '192.0.2.11', 7],
      ['r-22', '192.0.2.22', 6],
    ]);
  });
});
