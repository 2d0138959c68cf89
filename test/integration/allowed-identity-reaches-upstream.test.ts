// An allowed identity is proxied to the upstream over the gateway's own mTLS connection, and the
// upstream sees the gateway's identity headers (XFCC in Envoy's format, X-Forwarded-*).
import { createHash } from 'node:crypto';
import t from 'tap';
import { parseXfcc } from '../../src/identity/xfcc.js';
import { startStack } from '../helpers/harness.js';

t.test('allowed identity reaches the upstream with XFCC', async (t) => {
  const s = await startStack();
  t.teardown(() => s.close());

  const res = await s.send(s.pki.clients['billing']!, { path: '/orders/42?x=1&y=%20', headers: { 'x-request-id': 'trace-abc-12345' } });
  t.equal(res.status, 200);
  t.equal(res.headers['x-upstream'], 'yes', 'the answer came from the upstream');
  t.equal(res.headers['x-request-id'], 'trace-abc-12345', 'a sane client request id is kept and echoed');
  t.equal(s.upstream.seen.length, 1);
  const seen = s.upstream.seen[0]!;
  t.equal(seen.url, '/orders/42?x=1&y=%20', 'path and query arrive as judged');
  t.equal(seen.peerCN, 'gateway', 'the upstream saw the gateway client certificate');
  t.equal(seen.headers['x-forwarded-proto'], 'https');
  t.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
  t.equal(seen.headers['x-forwarded-host'], `127.0.0.1:${s.gw.port}`);
  t.equal(seen.headers['x-request-id'], 'trace-abc-12345');
  const xfcc = parseXfcc(String(seen.headers['x-forwarded-client-cert']));
  t.equal(xfcc.length, 1);
  const el = xfcc[0]!;
  t.same(el['Hash'], [createHash('sha256').update(s.pki.clients['billing']!.der).digest('hex')]);
  t.same(el['URI'], ['spiffe://example.org/ns/default/sa/billing']);
  t.same(el['Subject'], ['CN=billing,OU=payments,O=Example']);
  t.same(el['By'], ['spiffe://example.org/ns/gateway/sa/gateway']);

  const access = s.gw.logs.find((l) => l.msg === 'request' && l['reqId'] === 'trace-abc-12345');
  t.ok(access, 'one access-log record for the request');
  t.match(access, { decision: 'allow', status: 200, route: 'orders', upstream: 'orders', client: { spiffe: 'spiffe://example.org/ns/default/sa/billing' } });
  t.notMatch(JSON.stringify(s.gw.logs), /BEGIN (CERTIFICATE|PRIVATE KEY|EC PRIVATE KEY)/, 'no PEM in the log');
});

t.test('subject selector admits ops-admin on /admin; POST bodies pass', async (t) => {
  const s = await startStack();
  t.teardown(() => s.close());
  const res = await s.send(s.pki.clients['ops-admin']!, { method: 'POST', path: '/admin/jobs', body: 'hello', headers: { 'content-type': 'text/weird;;;' } });
  t.equal(res.status, 200);
  t.match(res.json, { method: 'POST', url: '/admin/jobs', bodyBytes: 5 });
});
