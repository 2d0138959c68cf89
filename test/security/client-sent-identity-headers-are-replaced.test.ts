// Pins a security decision: identity and forwarding headers that reach the upstream are the
// gateway's own. Whatever a client sends as x-forwarded-client-cert, X-Forwarded-*, Forwarded or
// x-request-id (when malformed) is removed, and hop-by-hop headers never cross.
import t from 'tap';
import { parseXfcc } from '../../src/identity/xfcc.js';
import { startStack } from '../helpers/harness.js';

t.test('client-sent XFCC and forwarding headers are replaced', async (t) => {
  const s = await startStack();
  t.teardown(() => s.close());
  const res = await s.send(s.pki.clients['billing']!, {
    path: '/orders',
    headers: {
      'X-Forwarded-Client-Cert': 'Hash=00;Subject="CN=ops-admin,OU=sre";URI=spiffe://example.org/ns/default/sa/admin',
      'x-forwarded-for': '203.0.113.7',
      'x-forwarded-host': 'evil.example',
      'x-forwarded-proto': 'http',
      forwarded: 'for=203.0.113.7;proto=http',
      'x-request-id': 'bad id with spaces',
      'x-secret-hop': 'must not pass',
      connection: 'x-secret-hop',
      'keep-alive': 'timeout=5',
    },
  });
  t.equal(res.status, 200);
  const h = s.upstream.seen[0]!.headers;
  const xfcc = parseXfcc(String(h['x-forwarded-client-cert']));
  t.equal(xfcc.length, 1, 'exactly one XFCC element: the gateway\'s');
  t.same(xfcc[0]!['URI'], ['spiffe://example.org/ns/default/sa/billing']);
  t.equal(h['x-forwarded-for'], '127.0.0.1');
  t.equal(h['x-forwarded-proto'], 'https');
  t.not(h['x-forwarded-host'], 'evil.example');
  t.equal(h['forwarded'], undefined);
  t.equal(h['x-secret-hop'], undefined, 'headers named in Connection are hop-by-hop');
  t.equal(h['keep-alive'], undefined);
  t.not(h['x-request-id'], 'bad id with spaces', 'a malformed request id is replaced');
  t.match(h['x-request-id'], /^[0-9a-f-]{36}$/);
});
