// Scenario 2: keep-alive POST of a 64 KiB body (the upstream reads it all, then answers) and keep-alive
// GET of a 64 KiB response, every target, interleaved.
import { interleaved } from '../lib/measure.mjs';

export const id = 'body64k';
export const title = '64 KiB request and response bodies';

export async function run(ctx) {
  const base = { kind: 'ka', conns: ctx.opts.conns, servername: 'localhost' };
  await interleaved(ctx, { scenario: id, label: 'keep-alive POST 64 KiB', targets: ctx.mainTargets, spec: { ...base, path: '/post', method: 'POST', bodyBytes: 65536 } });
  await interleaved(ctx, { scenario: id, label: 'keep-alive GET 64 KiB', targets: ctx.mainTargets, spec: { ...base, path: '/64k', method: 'GET' } });
}
