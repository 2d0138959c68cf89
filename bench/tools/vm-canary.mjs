#!/usr/bin/env node
// A canary for the machine itself: fixed work in a loop, printing each second the median CPU time
// (this process's user + system, µs) one loop took. On an idle or steady machine the figure stays
// flat; when it moves, the machine changed under the benchmark, not the target.
//   cpu: a 300,000-step integer loop (no memory traffic): moves with steal time or frequency.
//   mem: 100,000 dependent random reads over a 64 MB array: moves with cache and memory contention too.
// Usage: node bench/tools/vm-canary.mjs cpu|mem [SECONDS]   (pin with taskset -c N; nice 19 beside a run)
// Output: HH:MM:SS median-µs loops-in-that-second
const [kind = 'cpu', seconds = '30'] = process.argv.slice(2);
if (kind !== 'cpu' && kind !== 'mem') {
  process.stderr.write('usage: node bench/tools/vm-canary.mjs cpu|mem [SECONDS]\n');
  process.exit(2);
}
let x = 1;
let work;
if (kind === 'cpu') {
  work = () => {
    for (let i = 0; i < 300_000; i++) x = (x * 1103515245 + 12345) | 0;
  };
} else {
  const n = 16 * 1024 * 1024;
  const next = new Int32Array(n);
  for (let i = 0; i < n; i++) next[i] = Math.imul(i, 2654435761 | 0) & (n - 1);
  work = () => {
    for (let i = 0; i < 100_000; i++) x = next[x];
  };
}
const end = Date.now() + Number(seconds) * 1000;
let samples = [];
let last = Date.now();
while (Date.now() < end) {
  const before = process.cpuUsage();
  work();
  const d = process.cpuUsage(before);
  samples.push(d.user + d.system);
  const now = Date.now();
  if (now - last >= 1000) {
    samples.sort((a, b) => a - b);
    process.stdout.write(`${new Date().toISOString().slice(11, 19)} ${samples[samples.length >> 1]} ${samples.length}\n`);
    samples = [];
    last = now;
  }
}
