// Functional checks run before measuring, so that the proxies compared do the same job: the allowed
// identity gets 200, another identity 403, a revoked or missing client certificate is refused, the
// upstream sees the identity header (client-sent copies replaced), and 64 KiB bodies pass both ways.
// The reference proxies that do not do the gateway's job (floor, lean, lean-wasm, fastify: no
// identity, policy or revocation) get the basic checks only: scope 'basic' (the allowed client gets
// 200 and the body, no certificate is refused, the upstream leg is mTLS, 64 KiB bodies both ways).
import { readFileSync } from 'node:fs';
import { httpsProbe } from './procs.mjs';

/** scope: 'full' (the gateway's job) or 'basic' (a plain mTLS proxy). */
export async function checkTarget(pki, name, port, { scope = 'full' } = {}) {
  const full = scope === 'full';
  const ca = readFileSync(pki.caBundle);
  const as = (who) => (who === 'none' ? {} : { cert: readFileSync(pki[`${who}Cert`]), key: readFileSync(pki[`${who}Key`]) });
  const probe = (who, extra = {}) => httpsProbe({ port, ca, servername: 'localhost', ...as(who), ...extra });
  const results = [];
  const check = (what, ok, detail) => results.push({ what, ok, detail });
  const refused = (r) => r.status === 0 || r.status >= 400;
  const how = (r) => (r.status === 0 ? `connection refused/reset (${r.error?.code ?? r.error?.message})` : `HTTP ${r.status}`);

  let r = await probe('client');
  check('allowed identity (CN=billing, OU=payments) gets 200 and the 100-byte body', r.status === 200 && r.body?.length === 100, how(r));
  if (full) {
    r = await probe('intruder');
    check('other identity gets 403', r.status === 403, how(r));
    r = await probe('revoked');
    check('revoked client certificate is refused', refused(r), how(r));
  }
  r = await probe('none');
  check('no client certificate is refused', refused(r), how(r));
  r = await probe('client', { path: '/echo', headers: { 'x-client-subject': 'CN=spoofed', 'x-forwarded-client-cert': 'Subject="CN=spoofed"', 'x-forwarded-for': '203.0.113.7' } });
  const echo = r.body?.toString() ?? '';
  const identity = /x-forwarded-client-cert=.*billing/.test(echo) ? 'x-forwarded-client-cert' : /x-client-subject=.*billing/.test(echo) ? 'x-client-subject' : null;
  const idLine = identity ? echo.split('\n').find((l) => l.startsWith(`${identity}=`)) : '';
  if (full) {
    check('upstream sees the client identity, client-sent copy replaced', r.status === 200 && identity !== null && !idLine.includes('spoofed'), identity ? idLine.slice(0, 120) : how(r));
    check('upstream sees X-Forwarded-For 127.0.0.1', /x-forwarded-for=.*127\.0\.0\.1/.test(echo), echo.split('\n')[0]);
  }
  check('upstream leg is mTLS (upstream sees the gateway client cert)', /tls-peer=.*CN=gateway/.test(echo), echo.split('\n').find((l) => l.startsWith('tls-peer=')) ?? '');
  r = await probe('client', { path: '/post', method: 'POST', body: Buffer.alloc(65536, 'x'), headers: { 'content-type': 'application/octet-stream' } });
  check('POST 64 KiB relayed', r.status === 200 && /received 65536 bytes/.test(r.body?.toString() ?? ''), `${how(r)} ${r.body?.toString().trim() ?? ''}`);
  r = await probe('client', { path: '/64k' });
  check('GET /64k relayed', r.status === 200 && r.body?.length === 65536, `${how(r)}, ${r.body?.length ?? 0} bytes`);
  return { name, scope, ok: results.every((x) => x.ok), results };
}
