// Where the gateway spends its CPU on the keep-alive GET hot path (or, with --profile-kind hs, on a
// full handshake per request): a gateway started with `node --cpu-prof`, driven like scenario ka
// (or hs) for --profile-seconds, stopped with SIGTERM (the profile
// is written at exit), then self time aggregated by function (lib/summarize-cpuprofile.mjs).
import { mkdirSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { measure } from '../lib/measure.mjs';
import { summarizeProfile } from '../lib/summarize-cpuprofile.mjs';

export const id = 'profile';
export const title = 'CPU profile of the gateway, keep-alive GET or full handshakes (--profile-kind)';

export async function run(ctx) {
  const dir = join(ctx.workDir, 'prof');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  await ctx.targets.startGateway('gateway-prof', { nodeArgs: ['--cpu-prof', '--cpu-prof-dir', dir] });
  const kind = ctx.opts.profileKind;
  const label = kind === 'hs' ? 'full handshake per request (profiled)' : 'keep-alive GET 100 B (profiled)';
  const spec = { kind, path: '/', method: 'GET', conns: ctx.opts.conns, servername: 'localhost' };
  let row;
  try {
    await measure(ctx, { scenario: id, label, target: 'gateway-prof', spec, durationS: 2, record: false });
    row = await measure(ctx, { scenario: id, label, target: 'gateway-prof', spec, durationS: ctx.opts.profileSeconds, round: 1 });
  } finally {
    await ctx.targets.stop('gateway-prof');
  }
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  if (files.length === 0) throw new Error(`no .cpuprofile written in ${dir} (did the gateway exit cleanly on SIGTERM?)`);
  // With --workers N every worker writes one; the biggest saw the most work.
  const file = join(dir, files.sort((a, b) => statSync(join(dir, b)).size - statSync(join(dir, a)).size)[0]);
  const summary = summarizeProfile(JSON.parse(readFileSync(file, 'utf8')), { top: 15 });
  ctx.extra.profile = { kind, file, summary, rps: row?.rps, usPerReq: row?.targetUsPerReq };
  ctx.log(`profile: ${file}; top: ${summary.top.slice(0, 5).map((e) => `${e.fn} ${e.pct.toFixed(1)}%`).join(', ')}`);
}
