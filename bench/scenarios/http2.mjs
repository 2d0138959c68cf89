// Scenario h2: keep-alive GET / (100-byte body) over HTTP/2, --h2-conns connections × --h2-streams
// concurrent streams each, closed loop, every target that speaks h2, interleaved. The gateway and
// nginx take h2 from the client (ALPN) and forward over HTTP/1.1 mTLS to the usual origin; direct is
// h2 straight to that origin (nginx, which offers h2 too). The node origin (--upstream node) and the
// Node reference proxies (floor, lean, lean-wasm, fastify) speak HTTP/1.1 only: they are left out, and the report says so.
// Load: h2load (client certificate through the same LD_PRELOAD shim as wrk; every non-2xx answer is
// an error, so a run of 401s cannot pass for throughput) or the Node HTTP/2 generator without it.
import { NODE_REFERENCES } from '../lib/args.mjs';
import { interleaved } from '../lib/measure.mjs';
import { h2ProbeAs } from '../lib/h2-probe.mjs';
import { UPSTREAM_SERVERNAME } from '../lib/pki.mjs';

export const id = 'h2';
export const title = 'Keep-alive GET over HTTP/2, several streams per connection';

/** Before measuring: over h2 (ALPN), the allowed client gets the 100-byte body, no certificate is refused. */
export async function checkH2(ctx, name, port, servername) {
  const results = [];
  const ok = await h2ProbeAs(ctx.pki, 'client', { port, servername });
  results.push({ what: 'h2 by ALPN, allowed identity gets 200 and the 100-byte body', ok: ok.alpn === 'h2' && ok.status === 200 && ok.body.length === 100, detail: `ALPN ${ok.alpn}, HTTP ${ok.status}, ${ok.body.length} bytes ${ok.error?.code ?? ''}` });
  const none = await h2ProbeAs(ctx.pki, 'none', { port, servername });
  results.push({ what: 'h2 without a client certificate is refused', ok: none.status === 0 || none.status >= 400, detail: none.status ? `HTTP ${none.status}` : `no answer (${none.error?.code ?? none.error?.message})` });
  const c = { name: `${name} (h2)`, ok: results.every((r) => r.ok), results };
  ctx.checks.push(c);
  ctx.log(`${c.name}: ${c.ok ? 'functional checks passed' : `FAILED ${results.filter((r) => !r.ok).map((r) => `${r.what}: ${r.detail}`).join('; ')}`}`);
  return c.ok;
}

export async function run(ctx) {
  const { h2Conns: conns, h2Streams: streams } = ctx.opts;
  const h2Origin = ctx.targets.upstreamKind === 'nginx';
  const targets = ctx.mainTargets.filter((t) => !NODE_REFERENCES.includes(t) && (t !== 'direct' || h2Origin));
  const left = [];
  for (const t of ctx.mainTargets.filter((t) => NODE_REFERENCES.includes(t))) left.push(`${t} (HTTP/1.1 only)`);
  if (ctx.mainTargets.includes('direct') && !h2Origin) left.push('direct (the node origin speaks HTTP/1.1 only; use --upstream nginx)');
  if (left.length) ctx.notes.push(`h2: not measured over HTTP/2: ${left.join('; ')}.`);
  for (const t of targets) await checkH2(ctx, t, ctx.targets.get(t).port, t === 'direct' ? UPSTREAM_SERVERNAME : 'localhost');
  const spec = { kind: 'h2', path: '/', conns, streams, servername: 'localhost' };
  await interleaved(ctx, { scenario: id, label: `h2 keep-alive GET 100 B, ${conns}×${streams} streams`, targets, spec });
  ctx.extra.http2 = { ...ctx.extra.http2, h2: { conns, streams, tool: ctx.gens.toolFor('h2'), targets } };
}
