// Bench only (`node --expose-gc --import bench/lib/heap-probe.mjs`): on SIGUSR2, two full garbage
// collections, then process.memoryUsage() written to $BENCH_HEAP_PROBE_FILE with a sequence number.
// What the heap retains after a full GC is the live memory; RSS also holds the GC's headroom, which
// V8 sizes by its own heuristics and gives back late.
import { writeFileSync } from 'node:fs';

const file = process.env.BENCH_HEAP_PROBE_FILE;
let seq = 0;
if (file && typeof globalThis.gc === 'function') {
  process.on('SIGUSR2', () => {
    globalThis.gc();
    globalThis.gc();
    writeFileSync(file, JSON.stringify({ seq: ++seq, ...process.memoryUsage() }));
  });
}
