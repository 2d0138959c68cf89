// Pins a security decision: a connection whose client certificate is missing or fails verification
// is never routed. Every request on it gets 401 with a code naming the reason, the connection is
// closed, the upstream sees nothing, and the refusal is logged with the peer's subject and address.
import t from 'tap';
import { startStack } from '../helpers/harness.js';

t.test('unverified clients get 401 and never reach the upstream', async (t) => {
  const s = await startStack();
  t.teardown(() => s.close());
  const cases = [
    { name: 'no certificate', client: null, code: 'GW_ERR_CLIENT_CERT_MISSING' },
    { name: 'untrusted CA', client: s.pki.rogueClient, code: 'GW_ERR_CLIENT_CERT_UNTRUSTED' },
    { name: 'expired', client: s.pki.expired, code: 'GW_ERR_CLIENT_CERT_EXPIRED' },
    { name: 'not yet valid', client: s.pki.notYetValid, code: 'GW_ERR_CLIENT_CERT_NOT_YET_VALID' },
    { name: 'CA certificate used as client', client: s.pki.caAsClient, code: 'GW_ERR_CLIENT_CERT_USAGE' },
    { name: 'server-only EKU used as client', client: s.pki.serverOnly, code: 'GW_ERR_CLIENT_CERT_USAGE' },
    { name: 'revoked (CRL)', client: s.pki.clients['revoked']!, code: 'GW_ERR_CLIENT_CERT_REVOKED' },
  ] as const;
  for (const c of cases) {
    const res = await s.send(c.client, { path: '/orders/1' });
    t.equal(res.status, 401, `${c.name}: 401`);
    t.match(res.json, { error: { code: c.code, message: String, requestId: String } }, `${c.name}: code ${c.code}`);
    t.equal(res.headers['connection'], 'close', `${c.name}: connection closed`);
    t.notOk(res.body.includes('BEGIN'), `${c.name}: no certificate material in the body`);
    t.ok(res.headers['x-content-type-options'], `${c.name}: helmet headers on the gateway's own response`);
  }
  t.equal(s.upstream.seen.length, 0, 'the upstream saw no request at all');

  const rejected = s.gw.logs.filter((l) => l['event'] === 'client-rejected' || (l['event'] === 'client-revoked' && l['when'] === 'handshake'));
  t.equal(rejected.length, cases.length, 'each refused connection is logged once at connection time');
  t.match(
    rejected.find((l) => l['event'] === 'client-revoked'),
    { code: 'GW_ERR_CLIENT_CERT_REVOKED', serial: s.pki.clients['revoked']!.serial, issuer: /Example Dev Intermediate CA/, peer: { address: '127.0.0.1' } },
    'a revocation is logged with serial and issuer',
  );
  const expiredLog = rejected.find((l) => l['code'] === 'GW_ERR_CLIENT_CERT_EXPIRED');
  t.match(expiredLog, { reason: 'CERT_HAS_EXPIRED', peer: { address: '127.0.0.1', subject: /CN=billing/ } });
  // The serial is read from the certificate only for a refusal (a cache hit never formats it), so
  // both kinds of refusal are checked for it: OpenSSL's (expired) and the gateway's own (usage).
  const serialOf = (hex: string) => new RegExp(`^${hex}$`, 'i');
  t.match(expiredLog, { peer: { serial: serialOf(s.pki.expired.serial) } }, 'an expired certificate is logged with its serial');
  const usageLogs = rejected.filter((l) => l['code'] === 'GW_ERR_CLIENT_CERT_USAGE');
  t.equal(usageLogs.length, 2);
  t.ok(
    usageLogs.some((l) => serialOf(s.pki.serverOnly.serial).test(String((l['peer'] as { serial?: unknown }).serial))),
    'a certificate refused for its key usage is logged with its serial',
  );
});

t.test('the 401 is not specific to one path or method', async (t) => {
  const s = await startStack();
  t.teardown(() => s.close());
  for (const [method, path] of [['GET', '/'], ['POST', '/nope'], ['DELETE', '/admin'], ['GET', '/orders%2F..%2Fadmin']] as const) {
    const res = await s.send(s.pki.rogueClient, { method, path });
    t.equal(res.status, 401, `${method} ${path}`);
  }
  t.equal(s.upstream.seen.length, 0);
});
