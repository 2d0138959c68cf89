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
// The connections are opened before the clock, as scenario ka's latency row does, so that the
// p50/p99 printed per round are the requests', not the --conns handshakes' at its start.
//
// --concurrent measures every target at the same time, each under its own wrk (--conns each),
// instead of one after the other: whatever the host does to the machine in a round (steal time,
// a noisy neighbour, frequency) then hits every target alike, and the ratio to the reference is
// taken per round before the median. On the 2-core reference VM this resolves a few µs where the
// interleaved rounds resolve about 15 (bench/README.md, "The gateway's own JavaScript").
//
// --alloc measures bytes allocated on the V8 heap per request instead of CPU: each target is
// started with lib/heap-sample.mjs preloaded (V8's sampling heap profiler, every 512 bytes,
// objects the GC already collected included), sampled for --duration seconds from 1 s into its
// load, and the sampled bytes are divided by the requests served in that window (the generator's
// rate over its run times the window: the steady closed loop of wrk). Prints the top
// allocating functions too. A measure of work done per request that host noise does not move.
//
// A variant is NAME or NAME=KEY=VALUE[;KEY=VALUE...]; KEY is a dotted config path, VALUE is read
// as YAML (false, 64KiB, 250ms, [a, b]). NAME@DIR runs the gateway of another built checkout (a
// `git worktree add DIR <commit>` with `npm run build`): before against after. Prints, per
// variant, the median µs of CPU per request (target process group) and req/s, with every round,
// and the ratio to the first variant (or to the floor with --floor). --spin-floor US adds the
// floor with US µs of busy-waiting per request (a known amount of added JavaScript: how much CPU
// per request that costs on this machine). --floor-headers adds the floor sending the headers the
// gateway adds by default (XFCC, request id, x-forwarded-*): the part of the gateway's distance
// to the floor that is what the origin receives, not how the gateway decides it. --lean adds the
// lean floors (lib/lean-floor.mjs: Node's llhttp binding, undici's wasm build, and the wasm build
// with undici as the upstream client, a lean server side only, and with the gateway's own HTTP/1
// upstream client, `lean-wasm-gwclient`; not with --alloc): with --floor
// --concurrent, the measure issue 14's two-thirds rule is about. --lean-work adds `lean-work`: the
// wasm lean floor that also sends the gateway's header bytes and writes its access record with the
// gateway's own logging code (LEAN_GATEWAY_WORK=1 in lib/lean-floor.mjs; not with --alloc): the
// least a gateway doing that work costs on the lean stack. --lean-wasm adds `lean-wasm` alone (it
// comes with --lean and --lean-work too), the floor the gateway runs on. --fastify adds
// `fastify`: Fastify with @fastify/http-proxy over mTLS (lib/fastify-proxy.mjs), the Node proxy a user would otherwise
// write, which issue 14 wants the gateway visibly ahead of. --nginx adds nginx as the reference
// mTLS proxy twice: `nginx` (access_log off) and `nginx-log` (a buffered access log, 64k, flushed
// every second: what the gateway at its default `info` is compared with). With --concurrent that
// decides the issue's ratios to nginx, which interleaved rounds on this VM swing too much to
// decide (nginx's CPU is its process group's, master and worker; not with --alloc or --origin h2).
// --node-arg ARG (repeatable) starts every variant's gateway, and the node and lean floors, with
// that Node or V8 flag (`--node-arg=--trace-gc`, `--node-arg=--perf-basic-prof`; each process
// writes to its own log in .work/run/). --perf runs one more round (all targets at once with
// --concurrent, else one after the other; not with --alloc) with Linux perf sampling
// every target's processes (lib/perf-symbols.mjs; the node targets started with
// --perf-basic-prof) and prints µs per request by object (node binary, JIT code, kernel, libc), by
// area (V8's GC, builtins and runtime, Node's C++, OpenSSL, libuv, the kernel's TCP/IP and
// scheduling, nginx's own code) and the symbols that differ most: the whole process, where V8's profiler counts native work done
// while the event loop polls (TLS reads, handshakes) as idle. --path P requests P instead of / (the origin's 100 B
// answer): /64k is the 64 KiB answer of the body64k scenario; --post BYTES
// POSTs a body of BYTES to /post instead (the body64k scenario's upload). --handshakes makes each
// request a new connection with a full mTLS handshake (the hs scenario's load, ab), interleaved
// rounds only: CPU per handshake, for changes to what a connection costs. --origin h2 puts every
// variant in front of an HTTP/2 origin instead (lib/grpc-origin.mjs, whose `GET /` answers 100 B;
// the upstream `bench` gets `protocol: http2`): HTTP/1.1 clients through the gateway's HTTP/2
// upstream client (keep-alive GET of / only, no floors). After npm run build; uses nginx as the
// origin and wrk when installed.
import { parseArgs } from 'node:util';
import { join, dirname } from 'node:path';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { parseOptions } from './lib/args.mjs';
import { Generators } from './lib/generators.mjs';
import { which } from './lib/machine.mjs';
import { interleaved } from './lib/measure.mjs';
import { ensurePki } from './lib/pki.mjs';
import { killAllStarted } from './lib/procs.mjs';
import { groupTicks, CLK_TCK } from './lib/cpu.mjs';
import { median } from './lib/report.mjs';
import { perfBySymbol, perfMarkdown, pidsOfGroup, recordPerf } from './lib/perf-symbols.mjs';
import { Targets } from './lib/targets.mjs';

const BENCH = dirname(fileURLToPath(import.meta.url));
const checkout = join(BENCH, '..');
const YAML = createRequire(join(checkout, 'package.json'))('yaml');

const USAGE = 'usage: node bench/gateway-variants.mjs [--node PATH] [--rounds N] [--duration S] [--conns N] [--rate N | --concurrent | --alloc] [--floor] [--floor-headers] [--lean] [--lean-wasm] [--lean-work] [--fastify] [--nginx] [--node-arg=ARG ...] [--perf] [--path P | --post BYTES | --handshakes] [--origin h1 | h2] [--spin-floor US ...] NAME[@DIR][=KEY=VALUE[;KEY=VALUE...]] ...\n(the header of this file says what each option measures)\n';
let parsed;
try {
  parsed = parseArgs({
    allowPositionals: true,
    options: {
      node: { type: 'string' },
      rounds: { type: 'string', default: '4' },
      duration: { type: 'string', default: '5' },
      floor: { type: 'boolean', default: false },
      conns: { type: 'string', default: '50' },
      rate: { type: 'string', default: '0' },
      concurrent: { type: 'boolean', default: false },
      alloc: { type: 'boolean', default: false },
      'spin-floor': { type: 'string', multiple: true, default: [] },
      'floor-headers': { type: 'boolean', default: false },
      lean: { type: 'boolean', default: false },
      'lean-work': { type: 'boolean', default: false },
      'lean-wasm': { type: 'boolean', default: false },
      fastify: { type: 'boolean', default: false },
      nginx: { type: 'boolean', default: false },
      'node-arg': { type: 'string', multiple: true, default: [] },
      perf: { type: 'boolean', default: false },
      path: { type: 'string', default: '/' },
      post: { type: 'string' },
      handshakes: { type: 'boolean', default: false },
      origin: { type: 'string', default: 'h1' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
} catch (err) {
  process.stderr.write(`${err.message}\n${USAGE}`);
  process.exit(2);
}
const { values, positionals } = parsed;
if (values.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const rounds = Number(values.rounds);
if (values.perf && which('perf') === null) {
  process.stderr.write('--perf needs Linux perf on the PATH (Debian: apt-get install linux-perf; as root, or with kernel.perf_event_paranoid <= 1)\n');
  process.exit(2);
}
// --perf: JavaScript named in perf's samples (each target writes /tmp/perf-PID.map).
if (values.perf) values['node-arg'].push('--perf-basic-prof');
const durationS = Number(values.duration);
const rate = Number(values.rate);
const spins = values['spin-floor'].map(Number);
// The HTTP/2 origin serves `GET /` only, and the floors forward to the HTTP/1.1 origin.
const h2Origin = values.origin === 'h2';
const h2Conflict = h2Origin && (values.floor || values['floor-headers'] || values.lean || values['lean-wasm'] || values['lean-work'] || values.fastify || values.nginx || spins.length > 0 || values.post !== undefined || values.path !== '/' || values.handshakes);
if (h2Conflict || (values.origin !== 'h1' && !h2Origin) || positionals.length === 0 || !(rounds >= 1) || !(durationS > 0) || !(rate >= 0) || spins.some((n) => !(n >= 0)) || (values.concurrent && rate > 0) || (values.perf && values.alloc) || (values.alloc && (values.concurrent || values.lean || values['lean-wasm'] || values['lean-work'] || values.fastify || values.nginx)) || (values.handshakes && (values.concurrent || values.alloc || rate > 0 || values.post !== undefined))) {
  process.stderr.write(USAGE);
  process.exit(2);
}

/** { name, sets: [[path[], value]] } from NAME=KEY=VALUE;KEY=VALUE. */
function parseVariant(arg) {
  const eq = arg.indexOf('=');
  const head = eq < 0 ? arg : arg.slice(0, eq);
  const at = head.indexOf('@');
  const name = at < 0 ? head : head.slice(0, at);
  const dir = at < 0 ? null : head.slice(at + 1);
  const sets = eq < 0 ? [] : arg.slice(eq + 1).split(';').filter(Boolean).map((kv) => {
    const i = kv.indexOf('=');
    if (i <= 0) throw new Error(`${arg}: expected KEY=VALUE, got ${kv}`);
    return [kv.slice(0, i).split('.'), YAML.parse(kv.slice(i + 1))];
  });
  if (!/^[a-z0-9-]+$/i.test(name)) throw new Error(`${arg}: the name must be letters, digits and dashes`);
  if (dir !== null && !existsSync(join(dir, 'dist/cli/main.js'))) throw new Error(`${arg}: ${dir}/dist/cli/main.js not found (build that checkout first)`);
  return { name: `v-${name}`, label: name, sets, dir };
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
const h2 = h2Origin ? await targets.startGrpcOrigin('h2-origin') : null;
const SPIN_FLOOR = join(BENCH, 'lib/spin-floor.mjs');
const HEAP_SAMPLE = join(BENCH, 'lib/heap-sample.mjs');
const heapFile = (name) => join(workDir, `heap-${name}.json`);
/** Starts every target; with --alloc each preloads the heap sampler, which writes heapFile(name). */
async function startAll() {
  const names = [];
  const preload = (name) => {
    if (!values.alloc) return [];
    process.env.HEAP_SAMPLE_OUT = heapFile(name);
    process.env.HEAP_SAMPLE_MS = String(durationS * 1000);
    return ['--import', HEAP_SAMPLE];
  };
  for (const v of variants) {
    const configTransform = (text) => {
      const doc = YAML.parse(text);
      if (h2 !== null) {
        setIn(doc, ['upstreams', 'bench', 'url'], `https://127.0.0.1:${h2.port}`);
        setIn(doc, ['upstreams', 'bench', 'protocol'], 'http2');
      }
      for (const [path, value] of v.sets) setIn(doc, path, value);
      return YAML.stringify(doc);
    };
    // Another checkout's gateway: its own dist/, the same PKI, origin and generated config.
    const t = v.dir === null ? targets : Object.assign(new Targets({ checkout: v.dir, workDir, pki, opts, log }), { upstream: targets.upstream });
    await t.startGateway(v.name, { configTransform, nodeArgs: [...values['node-arg'], ...preload(v.name)] });
    if (t !== targets) targets.procs.set(v.name, t.procs.get(v.name));
    names.push(v.name);
  }
  const nodeArgs = values['node-arg'];
  if (values.floor) {
    await targets.startFloor('floor', { nodeArgs: [...nodeArgs, ...preload('floor')] });
    names.push('floor');
  }
  for (const us of spins) {
    const name = `floor-spin${us}`;
    process.env.SPIN_FLOOR_US = String(us);
    // The floor script runs inside spin-floor.mjs, which adds the busy-wait to its request listener.
    await targets.startFloor(name, { nodeArgs: [...nodeArgs, ...preload(name), SPIN_FLOOR] });
    names.push(name);
  }
  delete process.env.SPIN_FLOOR_US;
  if (values['floor-headers']) {
    // The floor sending what the gateway adds to every request and response (floor-proxy.mjs).
    await targets.startFloor('floor-headers', { nodeArgs: [...nodeArgs, ...preload('floor-headers')], gatewayHeaders: true });
    names.push('floor-headers');
  }
  if (values.lean) {
    // The lean floors (lib/lean-floor.mjs), for issue 14's two-thirds rule: both parsers.
    await targets.startLean('lean', 'node', 'raw', { nodeArgs });
    await targets.startLean('lean-wasm', 'wasm', 'raw', { nodeArgs });
    // Only the server side lean, undici upstream: which half the saving is in. And the gateway's
    // own upstream client under the lean server side: that client's share of the gateway's distance.
    await targets.startLean('lean-wasm-undici', 'wasm', 'undici', { nodeArgs });
    await targets.startLean('lean-wasm-gwclient', 'wasm', 'gateway', { nodeArgs });
    names.push('lean', 'lean-wasm', 'lean-wasm-undici', 'lean-wasm-gwclient');
  } else if (values['lean-wasm'] || values['lean-work']) {
    // The floor the gateway runs on (server.engine: lean), without the other lean floors: fewer
    // processes share the cores with --concurrent.
    await targets.startLean('lean-wasm', 'wasm', 'raw', { nodeArgs });
    names.push('lean-wasm');
  }
  if (values['lean-work']) {
    // The wasm lean floor with the gateway's header bytes and access record (lib/lean-floor.mjs).
    await targets.startLean('lean-work', 'wasm', 'raw', { gatewayWork: true, nodeArgs });
    names.push('lean-work');
  }
  if (values.fastify) {
    await targets.startFastify('fastify');
    names.push('fastify');
  }
  if (values.nginx) {
    await targets.startNginxProxy('nginx');
    await targets.startNginxProxy('nginx-log', { accessLog: true });
    names.push('nginx', 'nginx-log');
  }
  delete process.env.HEAP_SAMPLE_OUT;
  delete process.env.HEAP_SAMPLE_MS;
  return names;
}
const names = await startAll();
const postBytes = values.post === undefined ? 0 : Number(values.post);
const spec = values.handshakes ? { kind: 'hs', path: values.path, method: 'GET', conns: opts.conns, servername: 'localhost' } : { kind: 'ka', path: postBytes > 0 ? '/post' : values.path, method: postBytes > 0 ? 'POST' : 'GET', ...(postBytes > 0 ? { bodyBytes: postBytes } : {}), conns: opts.conns, servername: 'localhost', ...(rate > 0 ? { tool: 'node', rate, preconnect: true } : {}) };
const ref = values.floor ? 'floor' : names[0];
const label = (n) => (n === 'floor' || n === 'fastify' || n.startsWith('floor-') || n.startsWith('lean') || n.startsWith('nginx') ? n : variants.find((v) => v.name === n).label);
const lines = [];
if (values.alloc) {
  // One target at a time: SIGUSR2 starts its sampler 1 s into the load, for --duration seconds.
  const top = {};
  const bytes = {};
  for (const n of names) {
    const file = heapFile(n);
    rmSync(file, { force: true });
    const t = targets.get(n);
    const kick = setTimeout(() => process.kill(t.pid, 'SIGUSR2'), 1000);
    const res = await gens.run({ ...spec, port: t.port, durationS: durationS + 2 });
    clearTimeout(kick);
    for (let i = 0; i < 50 && !existsSync(file); i++) await new Promise((r) => setTimeout(r, 100));
    if (!existsSync(file)) throw new Error(`${n}: no heap sample written (${file})`);
    const sum = summarizeHeap(JSON.parse(readFileSync(file, 'utf8')), res.rps);
    rmSync(file, { force: true });
    if (!(sum.requests > 0)) throw new Error(`${n}: no request served in the sampled window (${Math.round(res.rps)} req/s)`);
    bytes[n] = sum.perRequest;
    top[n] = sum.top;
    log(`${label(n)}: ${sum.requests} requests sampled (${Math.round(res.rps)} req/s), ${sum.perRequest.toFixed(0)} B allocated per request`);
  }
  lines.push(`| variant | bytes allocated per request | ÷ ${label(ref)} |`, '|---|---:|---:|');
  for (const n of names) lines.push(`| ${label(n)} | ${bytes[n].toFixed(0)} | ${(bytes[n] / bytes[ref]).toFixed(2)} |`);
  for (const n of names) {
    lines.push('', `${label(n)}, top allocating functions (B per request):`, '', '| B/req | function |', '|---:|---|');
    for (const [fn, b] of top[n]) lines.push(`| ${b.toFixed(0)} | \`${fn}\` |`);
  }
} else if (values.concurrent) {
  const run = async (d) => {
    const pg = names.map((n) => targets.get(n).pgid);
    const a = groupTicks(pg);
    const res = await Promise.all(names.map((n) => gens.run({ ...spec, port: targets.get(n).port, durationS: d })));
    const b = groupTicks(pg);
    return names.map((n, i) => ({ n, us: (((b.get(pg[i]) - a.get(pg[i])) / CLK_TCK) * 1e6) / res[i].requests, rps: res[i].rps, errors: res[i].errors }));
  };
  await run(2);
  const us = Object.fromEntries(names.map((n) => [n, []]));
  const ratios = Object.fromEntries(names.map((n) => [n, []]));
  const rps = Object.fromEntries(names.map((n) => [n, []]));
  for (let r = 1; r <= rounds; r++) {
    const rows = await run(durationS);
    const refUs = rows.find((x) => x.n === ref).us;
    for (const x of rows) {
      us[x.n].push(x.us);
      ratios[x.n].push(x.us / refUs);
      rps[x.n].push(x.rps);
      if (x.errors > 0) process.stderr.write(`warning: ${label(x.n)} round ${r}: ${x.errors} errors\n`);
    }
    log(`round ${r}: ${rows.map((x) => `${label(x.n)} ${x.us.toFixed(0)} µs/req ${Math.round(x.rps)} req/s`).join(' | ')}`);
  }
  lines.push(`| variant | µs CPU/req (median) | ÷ ${label(ref)} (median of rounds) | req/s (median) | µs per round |`, '|---|---:|---:|---:|---|');
  for (const n of names) {
    lines.push(`| ${label(n)} | ${median(us[n]).toFixed(0)} | ${median(ratios[n]).toFixed(2)} | ${median(rps[n]).toFixed(0)} | ${us[n].map((x) => x.toFixed(0)).join(', ')} |`);
  }
  if (values.perf) lines.push('', await perfRound(true));
} else {
  const what = (values.handshakes ? 'full handshake per request' : postBytes > 0 ? `keep-alive POST ${postBytes} B` : values.path === '/' ? 'keep-alive GET 100 B' : `keep-alive GET ${values.path}`) + (h2 !== null ? ', HTTP/2 origin' : '');
  const label0 = rate > 0 ? `${what} at ${rate} req/s` : what;
  // 2 s of unrecorded warm-up per target, then A B C ... A B C ...; measure() logs every round.
  const rows = await interleaved(ctx, { scenario: 'variants', label: label0, targets: names, spec, rounds, durationS, warmupS: 2 });
  // A paced round that fell short of its rate compared a variant at a lower load: say so.
  const short = rows.filter((r) => rate > 0 && r.rps < rate * 0.97);
  for (const r of short) process.stderr.write(`warning: ${r.target} round ${r.round} reached ${Math.round(r.rps)} of ${rate} req/s\n`);
  const us = Object.fromEntries(names.map((n) => [n, rows.filter((r) => r.target === n).map((r) => r.targetUsPerReq)]));
  const rps = Object.fromEntries(names.map((n) => [n, rows.filter((r) => r.target === n).map((r) => r.rps)]));
  lines.push(`| variant | µs CPU/req (median) | ÷ ${label(ref)} | req/s (median) | µs per round |`, '|---|---:|---:|---:|---|');
  for (const n of names) {
    lines.push(`| ${label(n)} | ${median(us[n]).toFixed(0)} | ${(median(us[n]) / median(us[ref])).toFixed(2)} | ${median(rps[n]).toFixed(0)} | ${us[n].map((x) => x.toFixed(0)).join(', ')} |`);
  }
  if (values.perf) lines.push('', await perfRound(false));
}
process.stdout.write(lines.join('\n') + '\n');
// Stopped with SIGTERM (not the exit hook's SIGKILL), so that a target run under `--node` with a
// wrapper adding `--cpu-prof` writes its profile.
await targets.stopAll();
process.exit(0);

/**
 * --perf: one more round with every target's process group under perf, from 0.5 s in to 0.5 s
 * before its end; all targets loaded at once (`together`, as --concurrent) or one after the other.
 * Returns the report (lib/perf-symbols.mjs).
 */
async function perfRound(together) {
  const pids = await Promise.all(names.map((n) => pidsOfGroup(targets.get(n).pgid)));
  const recordS = Math.max(1, durationS - 1);
  const files = names.map((n) => join(workDir, `perf-${n}.data`));
  const measured = async (i) => {
    const load = gens.run({ ...spec, port: targets.get(names[i]).port, durationS });
    await new Promise((r) => setTimeout(r, 500));
    await recordPerf(pids[i], files[i], recordS);
    return load;
  };
  const res = [];
  if (together) res.push(...(await Promise.all(names.map((_, i) => measured(i)))));
  else for (let i = 0; i < names.length; i++) res.push(await measured(i));
  const runs = [];
  for (let i = 0; i < names.length; i++) runs.push({ name: label(names[i]), perf: await perfBySymbol(files[i]), requests: res[i].rps * recordS });
  log(`perf round: ${names.map((n, i) => `${label(n)} ${Math.round(res[i].rps)} req/s`).join(' | ')}; perf.data in ${workDir}`);
  for (const p of pids.flat()) rmSync(`/tmp/perf-${p}.map`, { force: true });
  return perfMarkdown(runs);
}

/** Bytes per request and the top allocating functions of a sampling heap profile (lib/heap-sample.mjs). */
function summarizeHeap(profile, rps) {
  const byFn = new Map();
  let total = 0;
  const walk = (node) => {
    const cf = node.callFrame;
    if (node.selfSize > 0) {
      const where = cf.url ? `${cf.url.replace(/^.*node_modules\//, '').replace(/^.*\/dist\//, 'dist/').replace(/^file:\/\/.*\/bench\//, 'bench/')}:${cf.lineNumber + 1}` : '(native)';
      const key = `${cf.functionName || '(anonymous)'} ${where}`;
      byFn.set(key, (byFn.get(key) ?? 0) + node.selfSize);
      total += node.selfSize;
    }
    for (const c of node.children) walk(c);
  };
  walk(profile.head);
  const requests = Math.round((rps * profile.windowMs) / 1000);
  const top = [...byFn].sort((a, b) => b[1] - a[1]).slice(0, 20).map(([k, v]) => [k, v / requests]);
  return { requests, perRequest: total / requests, top };
}
