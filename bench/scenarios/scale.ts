/**
 * Verification latency against the number of keys in PostgreSQL: 1k, 100k and 1M (up to
 * BENCH_MAX_KEYS). At each level the bench tops api_keys up with dummy rows written directly in SQL
 * (api_key_ids, then api_keys: one INSERT ... SELECT generate_series each), then creates
 * BENCH_COLD_KEYS real keys over HTTP, so the level's total is exact, and measures GET /v1/auth/whoami
 * sequentially on one keep-alive connection:
 *   cold  the first request of each real key: not in the verifier's cache (a fresh key is never
 *         cached), so one primary-key lookup in a table of N rows
 *   warm  BENCH_WARM_PASSES further passes over the same keys: served from the cache
 * The dummy keys belong to an organization of their own and are never requested.
 */
import pg from 'pg';
import { checkInterrupted } from '../lib/cleanup.js';
import { fmt, log, ms, quantiles, type Quantiles, type Section, type Target } from '../lib/common.js';
import { createKey, createOrganization, expectStatus, HttpClient, systemHealth, type CreatedKey } from '../lib/http.js';

export interface ScaleContext {
  baseUrl: string;
  client: HttpClient;
  sessionToken: string;
  adminKey: string;
  /** Paygate's database, with a role that may insert into it. */
  databaseUrl: string;
  levels: number[];
  coldKeys: number;
  warmPasses: number;
}

interface Level {
  total: number;
  inserted: number;
  insertSeconds: { ids: number; keys: number; analyze: number };
  createSeconds: number;
  cold: Quantiles;
  warm: Quantiles;
  coldMisses: number;
  warmMisses: number;
  tableMiB: number;
}

/** "Flat": p50 at the largest count within 1.5x (+0.1 ms) of p50 at the smallest, cold and warm. */
const FLAT_FACTOR = 1.5;
const FLAT_SLACK_MS = 0.1;

async function bulkInsert(db: pg.Client, organizationId: string, from: number, to: number): Promise<Level['insertSeconds']> {
  const timed = async (sql: string, params: unknown[]) => {
    const t = process.hrtime.bigint();
    await db.query(sql, params);
    return Number(process.hrtime.bigint() - t) / 1e9;
  };
  // Ids: 'bulk' + 16 digits = 20 characters of base62, like a real id; never requested, never minted.
  const ids = await timed(
    `INSERT INTO api_key_ids (id) SELECT 'bulk' || lpad(g::text, 16, '0') FROM generate_series($1::bigint, $2::bigint) AS g`,
    [from, to],
  );
  const keys = await timed(
    `INSERT INTO api_keys (id, tier, organization_id, name, scopes, secret_hash, pepper_version, hint, created_by)
     SELECT 'bulk' || lpad(g::text, 16, '0'), 'organization', $3, 'bulk ' || g, ARRAY['client:read'],
            sha256(int8send(g)), 1, 'bulk', '{"type":"system","id":null}'::jsonb
     FROM generate_series($1::bigint, $2::bigint) AS g`,
    [from, to, organizationId],
  );
  const analyze = await timed('ANALYZE api_key_ids, api_keys', []);
  return { ids, keys, analyze };
}

async function createKeys(client: HttpClient, adminKey: string, count: number, label: string): Promise<CreatedKey[]> {
  const keys: CreatedKey[] = [];
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      checkInterrupted();
      keys.push(await createKey(client, adminKey, `${label} ${i}`, ['client:read']));
    }
  };
  await Promise.all(Array.from({ length: 4 }, worker));
  return keys;
}

export async function runScale(ctx: ScaleContext): Promise<Section> {
  const db = new pg.Client({ connectionString: ctx.databaseUrl });
  await db.connect();
  const timed = new HttpClient(ctx.baseUrl, 1);
  const levels: Level[] = [];
  try {
    const bulkOrg = await createOrganization(ctx.client, ctx.sessionToken, 'Bench bulk keys');
    // Warm-up, not measured: the cold path (a lookup per new key) and the cached path run hot in the
    // server's JIT before the first level, so the first level is not penalised for going first.
    const warmupKeys = await createKeys(ctx.client, ctx.adminKey, ctx.coldKeys, 'scale warm-up');
    for (let pass = 0; pass < 3; pass++) for (const key of warmupKeys) expectStatus(await timed.get('/v1/auth/whoami', key.secret), 200, 'whoami (warm-up)');
    let nextId = 1;
    for (const total of ctx.levels) {
      checkInterrupted();
      const { rows } = await db.query<{ n: string }>('SELECT count(*)::text AS n FROM api_keys');
      const existing = Number(rows[0]!.n);
      const toInsert = total - existing - ctx.coldKeys;
      if (toInsert < 0) throw new Error(`level ${total}: ${existing} keys already exist`);
      log(`scale: level ${fmt(total)} keys: inserting ${fmt(toInsert)} rows in SQL`);
      const insertSeconds = toInsert > 0 ? await bulkInsert(db, bulkOrg.id, nextId, nextId + toInsert - 1) : { ids: 0, keys: 0, analyze: 0 };
      nextId += toInsert;
      log(`scale: inserted in ${(insertSeconds.ids + insertSeconds.keys).toFixed(1)} s (+ ANALYZE ${insertSeconds.analyze.toFixed(1)} s); creating ${ctx.coldKeys} keys over HTTP`);
      const t = Date.now();
      const keys = await createKeys(ctx.client, ctx.adminKey, ctx.coldKeys, `scale ${total}`);
      const createSeconds = (Date.now() - t) / 1000;
      const { rows: check } = await db.query<{ n: string; bytes: string }>(
        "SELECT count(*)::text AS n, pg_total_relation_size('api_keys')::text AS bytes FROM api_keys",
      );
      if (Number(check[0]!.n) !== total) log(`scale: expected ${total} keys, found ${check[0]!.n}`);

      const h0 = await systemHealth(ctx.client, ctx.sessionToken);
      const cold: number[] = [];
      for (const key of keys) {
        const r = await timed.get('/v1/auth/whoami', key.secret);
        expectStatus(r, 200, 'whoami (cold)');
        cold.push(r.ms);
      }
      const h1 = await systemHealth(ctx.client, ctx.sessionToken);
      const warm: number[] = [];
      for (let pass = 0; pass < ctx.warmPasses; pass++) {
        checkInterrupted();
        for (const key of keys) {
          const r = await timed.get('/v1/auth/whoami', key.secret);
          expectStatus(r, 200, 'whoami (warm)');
          warm.push(r.ms);
        }
      }
      const h2 = await systemHealth(ctx.client, ctx.sessionToken);
      const level: Level = {
        total: Number(check[0]!.n),
        inserted: toInsert,
        insertSeconds,
        createSeconds,
        cold: quantiles(cold),
        warm: quantiles(warm),
        coldMisses: h1.misses - h0.misses,
        warmMisses: h2.misses - h1.misses,
        tableMiB: Number(check[0]!.bytes) / 2 ** 20,
      };
      levels.push(level);
      log(
        `scale: ${fmt(level.total)} keys: cold p50 ${ms(level.cold.p50)} p99 ${ms(level.cold.p99)} ms (${level.coldMisses} cache misses / ${cold.length}); ` +
          `warm p50 ${ms(level.warm.p50)} p99 ${ms(level.warm.p99)} ms (${level.warmMisses} misses / ${warm.length})`,
      );
    }
  } finally {
    timed.close();
    await db.end().catch(() => undefined);
  }
  return report(ctx, levels);
}

function report(ctx: ScaleContext, levels: Level[]): Section {
  const first = levels[0]!;
  const last = levels[levels.length - 1]!;
  const flat = (pick: (l: Level) => Quantiles) => pick(last).p50 <= pick(first).p50 * FLAT_FACTOR + FLAT_SLACK_MS;
  const series = (pick: (l: Level) => Quantiles) => levels.map((l) => `${fmt(l.total)}: p50 ${ms(pick(l).p50)} / p99 ${ms(pick(l).p99)}`).join('; ');
  const coldReallyCold = levels.every((l) => l.coldMisses >= l.cold.n);
  const targets: Target[] = [
    {
      name: `verification latency flat from ${fmt(first.total)} to ${fmt(last.total)} keys, cold cache (p50 within ${FLAT_FACTOR}x + ${FLAT_SLACK_MS} ms)`,
      value: `${series((l) => l.cold)} ms${coldReallyCold ? '' : ' (WARNING: fewer cache misses than cold requests: not all were cold)'}`,
      met: levels.length > 1 ? flat((l) => l.cold) : null,
    },
    {
      name: `verification latency flat from ${fmt(first.total)} to ${fmt(last.total)} keys, warm cache (p50 within ${FLAT_FACTOR}x + ${FLAT_SLACK_MS} ms)`,
      value: `${series((l) => l.warm)} ms`,
      met: levels.length > 1 ? flat((l) => l.warm) : null,
    },
  ];
  const maxInsert = Math.max(...levels.map((l) => l.insertSeconds.ids + l.insertSeconds.keys));
  const md = [
    `At each level the table is topped up with dummy keys in SQL (one \`INSERT ... SELECT generate_series\` into \`api_key_ids\`, one into \`api_keys\`, then \`ANALYZE\`), then ${ctx.coldKeys} real keys are created with \`POST /v1/api-keys\`, so the level total is exact. ` +
      `Latency of \`GET /v1/auth/whoami\` measured by the bench (node:http, one keep-alive connection, requests one after another, time from write to the end of the body): ` +
      `**cold** = the first request of each of the ${ctx.coldKeys} new keys (not in the verifier's cache: one primary-key lookup), **warm** = ${ctx.warmPasses} more passes over the same keys (served from the cache). ` +
      `"Cache misses" is the verifier's own counter (\`keyCache.misses\` of \`GET /v1/system/health\`) across each pass.`,
    '',
    `Before the first level, ${ctx.coldKeys} other new keys are each requested three times, unmeasured, so both paths are JIT-warm. The dummy keys belong to an organization of their own and are never requested.`,
    '',
    '| keys in PostgreSQL | api_keys size | SQL insert (ids + keys; ANALYZE) | create real keys | cold p50 ms | cold p99 ms | cold max ms | cache misses (cold) | warm p50 ms | warm p99 ms | warm max ms | cache misses (warm) |',
    '|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...levels.map(
      (l) =>
        `| ${fmt(l.total)} | ${l.tableMiB.toFixed(0)} MiB | ${fmt(l.inserted)} rows: ${l.insertSeconds.ids.toFixed(1)} + ${l.insertSeconds.keys.toFixed(1)} s; ${l.insertSeconds.analyze.toFixed(1)} s | ${ctx.coldKeys} in ${l.createSeconds.toFixed(1)} s | ` +
        `${ms(l.cold.p50)} | ${ms(l.cold.p99)} | ${ms(l.cold.max)} | ${l.coldMisses} / ${l.cold.n} | ${ms(l.warm.p50)} | ${ms(l.warm.p99)} | ${ms(l.warm.max)} | ${l.warmMisses} / ${l.warm.n} |`,
    ),
    '',
    `The slowest SQL insert took ${maxInsert.toFixed(1)} s. p99 of ${ctx.coldKeys} cold samples is their ${Math.ceil(ctx.coldKeys * 0.99)}th-ranked value; judge flatness on p50.`,
    '',
  ];
  return {
    title: 'Verification latency vs number of keys',
    markdown: md,
    targets,
    console: [`scale: cold ${series((l) => l.cold)} ms`, `scale: warm ${series((l) => l.warm)} ms`],
  };
}
