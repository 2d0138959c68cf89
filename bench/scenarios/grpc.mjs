// Scenario grpc: unary gRPC-shaped calls (POST /bench.Echo/Unary, content-type application/grpc,
// te: trailers, one 64-byte message behind the 5-byte prefix), --h2-conns connections ×
// --h2-streams concurrent calls each, closed loop, interleaved. The origin is lib/grpc-origin.mjs
// (node:http2 over mTLS; it echoes the message, then the trailers grpc-status: 0):
//   direct   the generator straight to that origin
//   gateway  a gateway whose upstream has `protocol: http2` (its own HTTP/2 client, mTLS) to it
//   nginx    grpc_pass grpcs:// (mTLS, verified, CRLs) to it, when nginx is installed
// A call counts only when it ends with grpc-status 0 and the whole echoed message (the Node HTTP/2
// generator; h2load cannot see trailers), so a proxy's gRPC refusals (HTTP 200 + grpc-status) are
// errors. The origin's own count of calls answered with status 0 is compared with the clients'.
import { readFileSync } from 'node:fs';
import { interleaved } from '../lib/measure.mjs';
import { GRPC_PATH, grpcFrame, h2ProbeAs } from '../lib/h2-probe.mjs';
import { UPSTREAM_SERVERNAME } from '../lib/pki.mjs';

export const id = 'grpc';
export const title = 'Unary gRPC calls over HTTP/2 to an HTTP/2 origin';

/** Before measuring: the allowed client's call ends with grpc-status 0 and its message echoed; others are refused. */
async function checkGrpc(ctx, name, port, servername) {
  const message = grpcFrame(Buffer.from('functional check'));
  const call = (who) => h2ProbeAs(ctx.pki, who, { port, servername, path: GRPC_PATH, grpc: true, message });
  const how = (r) => (r.status ? `HTTP ${r.status}, grpc-status ${r.grpcStatus ?? 'none'}` : `no answer (${r.error?.code ?? r.error?.message})`);
  const refused = (r) => r.status === 0 || r.status >= 400 || (r.grpcStatus !== null && r.grpcStatus !== '0');
  const results = [];
  let r = await call('client');
  results.push({ what: 'allowed identity: grpc-status 0 and the message echoed', ok: r.status === 200 && r.grpcStatus === '0' && r.body.equals(message), detail: `${how(r)}, ${r.body.length} bytes` });
  if (name !== 'direct') {
    r = await call('intruder');
    results.push({ what: 'other identity is refused', ok: refused(r), detail: how(r) });
  }
  r = await call('none');
  results.push({ what: 'no client certificate is refused', ok: refused(r), detail: how(r) });
  const c = { name: `${name} (gRPC)`, ok: results.every((x) => x.ok), results };
  ctx.checks.push(c);
  ctx.log(`${c.name}: ${c.ok ? 'functional checks passed' : `FAILED ${results.filter((x) => !x.ok).map((x) => `${x.what}: ${x.detail}`).join('; ')}`}`);
}

/** The origin's closing count ({"event":"exit","served":N,"ok":N}), written to its log on SIGTERM. */
function originCount(logFile) {
  const line = readFileSync(logFile, 'utf8').split('\n').findLast((l) => l.startsWith('{"event":"exit"'));
  return line ? JSON.parse(line) : null;
}

export async function run(ctx) {
  const { h2Conns: conns, h2Streams: streams } = ctx.opts;
  const started = [];
  try {
    const origin = await ctx.targets.startGrpcOrigin('grpc-origin');
    started.push('grpc-origin');
    const names = { direct: 'grpc-origin' };
    if (ctx.mainTargets.includes('gateway')) {
      const gw = await ctx.targets.startGateway('gateway-grpc', { upstreamPorts: [origin.port], upstreamExtra: '    protocol: http2\n' });
      started.push('gateway-grpc');
      Object.assign(gw, { upstream: origin, reportAs: 'gateway' });
      names.gateway = 'gateway-grpc';
    }
    if (ctx.mainTargets.includes('nginx')) {
      try {
        await ctx.targets.startNginxGrpcProxy('nginx-grpc', origin);
        started.push('nginx-grpc');
        names.nginx = 'nginx-grpc';
      } catch (err) {
        ctx.notes.push(`grpc: nginx as a gRPC proxy did not start (grpc_pass needs nginx's gRPC module): ${err.message}`);
      }
    }
    const targets = ['direct', 'gateway', 'nginx'].filter((t) => names[t] && (t !== 'direct' || ctx.mainTargets.includes('direct'))).map((t) => names[t]);
    for (const t of targets) await checkGrpc(ctx, ctx.targets.get(t).reportAs, ctx.targets.get(t).port, t === 'grpc-origin' ? UPSTREAM_SERVERNAME : 'localhost');
    const spec = { kind: 'grpc', path: GRPC_PATH, conns, streams, servername: 'localhost' };
    const rows = await interleaved(ctx, { scenario: id, label: `gRPC unary call, ${conns}×${streams} streams`, targets, spec });
    // Stop the proxies first so that the origin's count is final.
    for (const name of started.filter((n) => n !== 'grpc-origin')) await ctx.targets.stop(name);
    await ctx.targets.stop('grpc-origin');
    started.length = 0;
    const count = originCount(origin.logFile);
    const counted = rows.reduce((a, r) => a + r.requests, 0);
    ctx.extra.http2 = { ...ctx.extra.http2, grpc: { conns, streams, tool: ctx.gens.toolFor('grpc'), originServed: count?.served ?? null, originOk: count?.ok ?? null, clientOkMeasured: counted } };
  } finally {
    for (const name of started.reverse()) await ctx.targets.stop(name);
  }
}
