// One measurement = one generator run against one target, with CPU accounting around it:
//   gen       the generator child's CPU (the harness's cutime+cstime delta: children's times are
//             added when they exit and are waited for; no other child exits during a measurement)
//   target    the target's process group (the gateway, nginx master+workers, or for `direct` the
//             upstream); upstream: the origin's process group (not counted for `direct`)
//   harness   this process (mostly asleep)
//   foreign   machine busy time (/proc/stat) not accounted to any of the above: other work on the box
// All in cores (CPU seconds per wall second) over the generator's run, plus µs of CPU per request.
import { CLK_TCK, busyCores, groupTicks, machineBusyTicks, processTicks, selfTicks } from './cpu.mjs';

const QUIET_CORES = 0.15;

async function waitQuiet(maxS) {
  const until = performance.now() + maxS * 1000;
  let c = await busyCores(maxS > 0 ? 500 : 250);
  while (c > QUIET_CORES && performance.now() < until) {
    await new Promise((r) => setTimeout(r, 500));
    c = await busyCores(500);
  }
  return c;
}

function snapshot(pgids, genPid) {
  return { t: performance.now(), busy: machineBusyTicks(), groups: groupTicks(pgids), self: selfTicks(), gen: genPid ? processTicks(genPid) : null };
}

/**
 * spec: generator spec without the port (see generators.mjs); target: name known to ctx.targets.
 * Returns a row (also pushed to ctx.rows when record is true).
 */
export async function measure(ctx, { scenario, label, target, spec, durationS, record = true, round = 0 }) {
  const t = ctx.targets.get(target);
  // A target may proxy to another origin than the main one (t.upstream: the grpc scenario).
  const up = t.isUpstream ? null : (t.upstream ?? ctx.targets.upstream);
  const quiet = record ? await waitQuiet(ctx.opts.quietWait) : null;
  const pgids = [t.pgid, up?.pgid].filter(Boolean);
  const outer0 = snapshot(pgids);
  // The Node generator marks its measured window; CPU is then read exactly around it (the generator
  // is still alive, so its own /proc entry is read). wrk and ab: the whole run, from spawn to exit.
  let win0 = null;
  let win1 = null;
  const hooks = { onStart: (pid) => (win0 = snapshot(pgids, pid)), onEnd: (pid) => (win1 = snapshot(pgids, pid)) };
  const res = await ctx.gens.run({ ...spec, port: t.port, durationS }, hooks);
  const outer1 = snapshot(pgids);
  if (!record) return null;
  const windowed = win0 !== null && win1 !== null && win0.gen !== null && win1.gen !== null;
  const [a, b] = windowed ? [win0, win1] : [outer0, outer1];
  const wall = (b.t - a.t) / 1000;
  const ticks = (g) => ((b.groups.get(g) ?? 0) - (a.groups.get(g) ?? 0)) / CLK_TCK;
  const targetS = ticks(t.pgid);
  const upstreamS = up ? ticks(up.pgid) : 0;
  const genS = windowed ? (b.gen - a.gen) / CLK_TCK : (b.self.children - a.self.children) / CLK_TCK;
  const selfS = (b.self.self - a.self.self) / CLK_TCK;
  const busyS = (b.busy - a.busy) / CLK_TCK;
  const req = res.requests > 0 ? res.requests : NaN;
  const row = {
    scenario,
    label,
    // An extra instance standing in for a main target (t.reportAs) is reported under that name, so
    // that its ×direct and ×nginx ratios are computed.
    target: t.reportAs ?? target,
    round,
    tool: res.tool,
    rps: res.rps,
    requests: res.requests,
    p50: res.p50,
    p99: res.p99,
    errors: res.errors,
    reused: res.reused,
    wallS: wall,
    genCores: genS / wall,
    targetCores: targetS / wall,
    upstreamCores: up ? upstreamS / wall : null,
    harnessCores: selfS / wall,
    foreignCores: Math.max(0, (busyS - genS - targetS - upstreamS - selfS) / wall),
    busyCores: busyS / wall,
    targetUsPerReq: (targetS * 1e6) / req,
    upstreamUsPerReq: up ? (upstreamS * 1e6) / req : null,
    genUsPerReq: (genS * 1e6) / req,
    quietBefore: quiet,
    cpuWindow: windowed ? 'measured window' : 'whole generator run',
  };
  ctx.rows.push(row);
  const f = (x, d = 2) => (x === null || x === undefined || Number.isNaN(x) ? '-' : Number(x).toFixed(d));
  ctx.log(
    `${label.padEnd(34)} ${target.padEnd(18)} r${round} ${res.tool.padEnd(4)} ${f(res.rps, 0).padStart(7)} req/s p50 ${f(res.p50)} p99 ${f(res.p99)} ms err ${res.errors}` +
      ` | cores gen ${f(row.genCores)} target ${f(row.targetCores)} up ${f(row.upstreamCores)} foreign ${f(row.foreignCores)} | target ${f(row.targetUsPerReq, 0)} µs/req`,
  );
  return row;
}

/** Warm-up per target (unrecorded), then `rounds` interleaved rounds: A B C A B C ... */
export async function interleaved(ctx, { scenario, label, targets, spec, rounds = ctx.opts.rounds, durationS = ctx.opts.duration, warmupS = ctx.opts.warmup }) {
  if (warmupS > 0) for (const target of targets) await measure(ctx, { scenario, label, target, spec, durationS: warmupS, record: false });
  const rows = [];
  for (let r = 1; r <= rounds; r++) {
    for (const target of targets) rows.push(await measure(ctx, { scenario, label, target, spec, durationS, round: r }));
  }
  return rows;
}
