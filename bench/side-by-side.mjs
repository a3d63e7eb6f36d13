/**
 * Side-by-side windows of two URLs (bench/ANALYSIS.md): both loaded at once, so two servers pinned to one
 * core see the same machine; prints req/s of each, their ratio, and with PIDS=<pidA>,<pidB> the CPU time
 * per request of each process (from /proc) and the generator's own CPU share.
 *   taskset -c 0 node bench/side-by-side.mjs <urlA> <urlB> [windows=5]
 * Env: AUTH (Authorization header of every request; default "Bearer sk_short", empty for none),
 * CONNS (connections per URL, 10), SEQ=1 (the two loads one after the other instead, for comparison).
 */
import autocannon from 'autocannon';
import fs from 'node:fs';
const [ua, ub, windows] = [process.argv[2], process.argv[3], Number(process.argv[4] ?? 5)];
const pids = (process.env.PIDS ?? '').split(',').filter(Boolean);
const cpu = (pid) => { const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' '); return (Number(f[11]) + Number(f[12])) / 100; };
const auth = process.env.AUTH ?? 'Bearer sk_short';
const conns = Number(process.env.CONNS ?? 10);
const run = (url, d) => autocannon({ url, connections: conns, duration: d, headers: auth ? { authorization: auth } : {} });
const ratios = [], cratios = [];
for (let i = 0; i < windows; i++) {
  await Promise.all([run(ua, 1), run(ub, 1)]);
  const c0 = pids.map(cpu); const g0 = process.cpuUsage();
  const [a, b] = process.env.SEQ ? [await run(ua, 4), await run(ub, 4)] : await Promise.all([run(ua, 4), run(ub, 4)]);
  const c1 = pids.map(cpu); const g = process.cpuUsage(g0); const gen = (g.user + g.system) / 4e6;
  ratios.push(a.requests.average / b.requests.average);
  let extra = '';
  if (pids.length === 2) {
    const ua_ = ((c1[0] - c0[0]) * 1e6) / a.requests.total, ub_ = ((c1[1] - c0[1]) * 1e6) / b.requests.total;
    cratios.push(ub_ / ua_);
    extra = ` cpu ${ua_.toFixed(1)} vs ${ub_.toFixed(1)} us/req = ${(ub_ / ua_).toFixed(3)} (busy ${(c1[0] - c0[0]).toFixed(2)}+${(c1[1] - c0[1]).toFixed(2)} s)`;
  }
  const codes = (r) => JSON.stringify(Object.fromEntries(Object.entries(r.statusCodeStats).map(([k, v]) => [k, v.count])));
  console.log(Math.round(a.requests.average), codes(a), Math.round(b.requests.average), codes(b), (a.requests.average / b.requests.average).toFixed(3) + extra + ` gen ${gen.toFixed(2)}`);
}
const med = (x) => x.sort((a, b) => a - b)[Math.floor(x.length / 2)]?.toFixed(3);
console.log('median', med(ratios), 'cpu', med(cratios));
