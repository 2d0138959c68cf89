#!/usr/bin/env node
// A/B of gateway configurations under the keep-alive GET load of scenario ka, interleaved in short
// rounds so that the machine's drift hits every variant alike; optionally with the node floor as
// the common reference. Each variant is the bench's default gateway with config keys set:
//
//   node bench/gateway-variants.mjs [--node PATH] [--rounds N] [--duration S] [--floor] \
//     default  h1=listen.http2=false  warn=log.level=warn  'quiet=log.level=warn;admin.enabled=false'
//
// --rate N paces the load at N requests per second in all (the bench's Node generator, open loop)
// instead of wrk's saturating closed loop: CPU per request at a fixed rate, the regime a gateway
// that is not saturated runs in, where costs that batching hides at saturation (a thread-pool
// write, a timer, an epoll wake-up per request) show. Every variant must keep up with the rate.
//
// A variant is NAME or NAME=KEY=VALUE[;KEY=VALUE...]; KEY is a dotted config path, VALUE is read
// as YAML (false, 64KiB, 250ms, [a, b]). Prints, per variant, the median µs of CPU per request
// (target process group) and req/s, with every round, and the ratio to the first variant (or to
// the floor with --floor). After npm run build; uses nginx as the origin and wrk when installed.
import { parseArgs } from 'node:util';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { parseOptions } from './lib/args.mjs';
import { Generators } from './lib/generators.mjs';
import { which } from './lib/machine.mjs';
import { interleaved } from './lib/measure.mjs';
import { ensurePki } from './lib/pki.mjs';
import { killAllStarted } from './lib/procs.mjs';
import { median } from './lib/report.mjs';
import { Targets } from './lib/targets.mjs';

const BENCH = dirname(fileURLToPath(import.meta.url));
const checkout = join(BENCH, '..');
const YAML = createRequire(join(checkout, 'package.json'))('yaml');

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { node: { type: 'string' }, rounds: { type: 'string', default: '4' }, duration: { type: 'string', default: '5' }, floor: { type: 'boolean', default: false }, conns: { type: 'string', default: '50' }, rate: { type: 'string', default: '0' } },
});
const rounds = Number(values.rounds);
const durationS = Number(values.duration);
const rate = Number(values.rate);
if (positionals.length === 0 || !(rounds >= 1) || !(durationS > 0) || !(rate >= 0)) {
  process.stderr.write('usage: node bench/gateway-variants.mjs [--node PATH] [--rounds N] [--duration S] [--conns N] [--rate N] [--floor] NAME[=KEY=VALUE[;KEY=VALUE...]] ...\n');
  process.exit(2);
}

/** { name, sets: [[path[], value]] } from NAME=KEY=VALUE;KEY=VALUE. */
function parseVariant(arg) {
  const eq = arg.indexOf('=');
  const name = eq < 0 ? arg : arg.slice(0, eq);
  const sets = eq < 0 ? [] : arg.slice(eq + 1).split(';').filter(Boolean).map((kv) => {
    const i = kv.indexOf('=');
    if (i <= 0) throw new Error(`${arg}: expected KEY=VALUE, got ${kv}`);
    return [kv.slice(0, i).split('.'), YAML.parse(kv.slice(i + 1))];
  });
  if (!/^[a-z0-9-]+$/i.test(name)) throw new Error(`${arg}: the name must be letters, digits and dashes`);
  return { name: `v-${name}`, label: name, sets };
}

function setIn(doc, path, value) {
  let cur = doc;
  for (const key of path.slice(0, -1)) {
    if (cur[key] === undefined || cur[key] === null) cur[key] = {};
    cur = cur[key];
  }
  cur[path.at(-1)] = value;
}

let variants;
try {
  variants = positionals.map(parseVariant);
} catch (err) {
  process.stderr.write(`${err.message}\n`);
  process.exit(2);
}
const opts = parseOptions(['--scenarios', 'ka', '--conns', values.conns, ...(values.node ? ['--node', values.node] : [])]);
const workDir = join(BENCH, '.work');
const log = (m) => process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${m}\n`);
process.on('exit', () => killAllStarted());
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));
const pki = await ensurePki(checkout, workDir, log);
const gens = new Generators({ workDir, pki, opts, log });
const targets = new Targets({ checkout, workDir, pki, opts, log });
const ctx = { opts, checkout, workDir, pki, gens, targets, log, mainTargets: [], rows: [], extra: {}, notes: [], checks: [] };
await targets.startUpstream(which('nginx') ? 'nginx' : 'node');
for (const v of variants) {
  const configTransform = (text) => {
    const doc = YAML.parse(text);
    for (const [path, value] of v.sets) setIn(doc, path, value);
    return YAML.stringify(doc);
  };
  await targets.startGateway(v.name, { configTransform });
}
const names = variants.map((v) => v.name);
if (values.floor) {
  await targets.startFloor('floor');
  names.push('floor');
}
const spec = { kind: 'ka', path: '/', method: 'GET', conns: opts.conns, servername: 'localhost', ...(rate > 0 ? { tool: 'node', rate } : {}) };
const label0 = rate > 0 ? `keep-alive GET 100 B at ${rate} req/s` : 'keep-alive GET 100 B';
// 2 s of unrecorded warm-up per target, then A B C ... A B C ...; measure() logs every round.
const rows = await interleaved(ctx, { scenario: 'variants', label: label0, targets: names, spec, rounds, durationS, warmupS: 2 });
// A paced round that fell short of its rate compared a variant at a lower load: say so.
const short = rows.filter((r) => rate > 0 && r.rps < rate * 0.97);
for (const r of short) process.stderr.write(`warning: ${r.target} round ${r.round} reached ${Math.round(r.rps)} of ${rate} req/s\n`);
const us = Object.fromEntries(names.map((n) => [n, rows.filter((r) => r.target === n).map((r) => r.targetUsPerReq)]));
const rps = Object.fromEntries(names.map((n) => [n, rows.filter((r) => r.target === n).map((r) => r.rps)]));
const ref = values.floor ? 'floor' : names[0];
const label = (n) => (n === 'floor' ? 'floor' : variants.find((v) => v.name === n).label);
const lines = [`| variant | µs CPU/req (median) | ÷ ${label(ref)} | req/s (median) | µs per round |`, '|---|---:|---:|---:|---|'];
for (const n of names) {
  lines.push(`| ${label(n)} | ${median(us[n]).toFixed(0)} | ${(median(us[n]) / median(us[ref])).toFixed(2)} | ${median(rps[n]).toFixed(0)} | ${us[n].map((x) => x.toFixed(0)).join(', ')} |`);
}
process.stdout.write(lines.join('\n') + '\n');
process.exit(0);
