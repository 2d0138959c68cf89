// Scenario 1: keep-alive GET / (100-byte body) at --conns connections, every target, interleaved.
// Throughput, CPU and latency at saturation come from wrk (closed loop: each connection sends its
// next request when the last one is answered). At saturation latency is concurrency / throughput
// (Little's law), so its p99 says more about throughput than about the delay the proxy adds. So
// latency is measured again at a fixed load of --latency-rate req/s spread over the same
// connections (Node generator, connections opened before the clock, each connection paced), which
// is where the p99 overhead goal is judged. Then the logging cost: the gateway at its default level
// (info: one access record per request, written to a file as in production) measured right after a
// gateway with `log: { level: warn }` (the gateway-warn target, or one started for this).
import { statSync } from 'node:fs';
import { interleaved, measure } from '../lib/measure.mjs';

export const id = 'ka';
export const title = 'Keep-alive GET, 100-byte body';
export const latencyLabel = (rate) => `keep-alive GET 100 B, latency at ${rate} req/s`;

export async function run(ctx) {
  // With the Node generator as the only one, connections are opened before the clock anyway.
  const spec = { kind: 'ka', path: '/', method: 'GET', conns: ctx.opts.conns, servername: 'localhost', preconnect: ctx.gens.toolFor('ka') === 'node' };
  await interleaved(ctx, { scenario: id, label: 'keep-alive GET 100 B', targets: ctx.mainTargets, spec });
  if (ctx.opts.latencyRate > 0) {
    const paced = { ...spec, tool: 'node', preconnect: true, rate: ctx.opts.latencyRate };
    await interleaved(ctx, { scenario: id, label: latencyLabel(ctx.opts.latencyRate), targets: ctx.mainTargets, spec: paced, warmupS: 0 });
  }
  if (!ctx.mainTargets.includes('gateway')) return;

  const own = !ctx.mainTargets.includes('gateway-warn');
  if (own) await ctx.targets.startGateway('gateway-warn-log', { logLevel: 'warn' });
  const warnTarget = own ? 'gateway-warn-log' : 'gateway-warn';
  const info = ctx.targets.get('gateway');
  try {
    const label = 'keep-alive GET 100 B, log level';
    const d = ctx.opts.duration;
    if (own && ctx.opts.warmup > 0) await measure(ctx, { scenario: 'ka-log', label, target: warnTarget, spec, durationS: ctx.opts.warmup, record: false });
    const warn = [];
    const infos = [];
    let bytes = 0;
    // Pairs back to back (warn, info), up to two; medians of the pairs are reported.
    for (let round = 1; round <= Math.min(2, ctx.opts.rounds); round++) {
      warn.push(await measure(ctx, { scenario: 'ka-log', label, target: warnTarget, spec, durationS: d, round }));
      // pino writes asynchronously: let the earlier records land before sizing the file.
      await new Promise((r) => setTimeout(r, 500));
      const size0 = statSync(info.logFile).size;
      infos.push(await measure(ctx, { scenario: 'ka-log', label, target: 'gateway', spec, durationS: d, round }));
      // pino writes asynchronously; give it a moment to flush before sizing the file.
      await new Promise((r) => setTimeout(r, 500));
      bytes += statSync(info.logFile).size - size0;
    }
    const requests = infos.reduce((a, r) => a + r.requests, 0);
    ctx.extra.logging = { warn, info: infos, logBytesPerReq: requests > 0 ? bytes / requests : null };
  } finally {
    if (own) await ctx.targets.stop(warnTarget);
  }
}
