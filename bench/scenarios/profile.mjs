// Where the gateway spends its CPU on the keep-alive GET hot path (or, with --profile-kind hs, on a
// full handshake per request; with --profile-kind post, on a keep-alive POST of 64 KiB): a gateway started with `node --cpu-prof`, driven like scenario ka
// (or hs) for --profile-seconds, stopped with SIGTERM (the profile is written at exit), then self
// time aggregated by function (lib/summarize-cpuprofile.mjs), counting only the profiled load's
// seconds (not start-up or warm-up). When `floor` is among the targets, the node floor is
// profiled the same way right after, and the two are compared by area in µs per request: what the
// gateway spends that the floor does not. `lean-work` among the targets is profiled and compared
// the same way, and so is `lean-wasm` (the floor the gateway runs on); with both, `lean-work` is
// also compared with `lean-wasm`: what the work every request needs at the defaults costs.
// V8's profiler files native work done while the event loop polls (TLS record reads, a handshake's
// OpenSSL work) as idle, so "busy" here is the JavaScript and what it calls, not the process's
// CPU: `gateway-variants.mjs --perf` samples everything (bench/README.md, "What the CPU profiler
// does not see").
import { mkdirSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { measure } from '../lib/measure.mjs';
import { summarizeProfile } from '../lib/summarize-cpuprofile.mjs';

export const id = 'profile';
export const title = 'CPU profile of the gateway, keep-alive GET or full handshakes (--profile-kind); beside the node floor when it is a target';

async function profileOne(ctx, name, start, label) {
  const dir = join(ctx.workDir, `prof-${name}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  await start(['--cpu-prof', '--cpu-prof-dir', dir]);
  const kind = ctx.opts.profileKind;
  const spec =
    kind === 'post'
      ? { kind: 'ka', path: '/post', method: 'POST', bodyBytes: 65536, conns: ctx.opts.conns, servername: 'localhost' }
      : { kind, path: '/', method: 'GET', conns: ctx.opts.conns, servername: 'localhost' };
  let row;
  try {
    await measure(ctx, { scenario: id, label, target: name, spec, durationS: 2, record: false });
    row = await measure(ctx, { scenario: id, label, target: name, spec, durationS: ctx.opts.profileSeconds, round: 1 });
  } finally {
    await ctx.targets.stop(name);
  }
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  if (files.length === 0) throw new Error(`no .cpuprofile written in ${dir} (did ${name} exit cleanly on SIGTERM?)`);
  // With --workers N every worker writes one; the biggest saw the most work.
  const file = join(dir, files.sort((a, b) => statSync(join(dir, b)).size - statSync(join(dir, a)).size)[0]);
  // The measured load ends just before the stop; half a second more covers the stop itself.
  const summary = summarizeProfile(JSON.parse(readFileSync(file, 'utf8')), { top: 15, lastSeconds: ctx.opts.profileSeconds + 0.5 });
  const requests = (row?.rps ?? 0) * ctx.opts.profileSeconds;
  ctx.log(`profile ${name}: ${file}; top: ${summary.top.slice(0, 5).map((e) => `${e.fn} ${e.pct.toFixed(1)}%`).join(', ')}`);
  return { kind, file, summary, rps: row?.rps, usPerReq: row?.targetUsPerReq, requests };
}

export async function run(ctx) {
  const hs = ctx.opts.profileKind === 'hs';
  const label = (what) => `${hs ? 'full handshake per request' : ctx.opts.profileKind === 'post' ? 'keep-alive POST 64 KiB' : 'keep-alive GET 100 B'} (${what})`;
  ctx.extra.profile = await profileOne(ctx, 'gateway-prof', (nodeArgs) => ctx.targets.startGateway('gateway-prof', { nodeArgs }), label('profiled'));
  if (ctx.mainTargets.includes('floor')) {
    ctx.extra.profileFloor = await profileOne(ctx, 'floor-prof', (nodeArgs) => ctx.targets.startFloor('floor-prof', { nodeArgs }), label('floor, profiled'));
  }
  if (ctx.mainTargets.includes('lean-work')) {
    ctx.extra.profileLeanWork = await profileOne(ctx, 'lean-work-prof', (nodeArgs) => ctx.targets.startLean('lean-work-prof', 'wasm', 'raw', { gatewayWork: true, nodeArgs }), label('lean-work, profiled'));
  }
  if (ctx.mainTargets.includes('lean-wasm')) {
    ctx.extra.profileLeanWasm = await profileOne(ctx, 'lean-wasm-prof', (nodeArgs) => ctx.targets.startLean('lean-wasm-prof', 'wasm', 'raw', { nodeArgs }), label('lean-wasm, profiled'));
  }
}
