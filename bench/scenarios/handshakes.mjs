// Scenario 3: a new TCP connection and mTLS handshake per request (Connection: close), --conns at a
// time: full handshakes (no session offered), then with TLS session resumption (each client
// connection offers the session ticket it received last). mTLS cost lives in the handshake, so this
// is measured apart from keep-alive throughput.
import { interleaved } from '../lib/measure.mjs';

export const id = 'hs';
export const title = 'Handshake per request: full and resumed';

export async function run(ctx) {
  const base = { path: '/', method: 'GET', conns: ctx.opts.conns, servername: 'localhost' };
  await interleaved(ctx, { scenario: id, label: 'full handshake per request', targets: ctx.mainTargets, spec: { ...base, kind: 'hs' } });
  await interleaved(ctx, { scenario: id, label: 'resumed handshake per request', targets: ctx.mainTargets, spec: { ...base, kind: 'hs-resume' } });
}
