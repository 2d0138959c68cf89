// Pins a security decision: the path the policy judges is the path the upstream receives. Encoding
// tricks either normalize to a path that is judged on its own merits or are refused with 400; none
// lets billing (allowed on /orders only) reach /admin.
import t from 'tap';
import { startStack } from '../helpers/harness.js';

t.test('path tricks cannot reach a route they are not allowed', async (t) => {
  const s = await startStack();
  t.teardown(() => s.close());
  const billing = s.pki.clients['billing']!;
  const cases: Array<[string, number[]]> = [
    ['/orders/../admin', [403]],
    ['/orders/%2e%2e/admin', [400]],
    ['/orders/.%2e/admin', [400]],
    ['/orders%2F..%2Fadmin', [400]],
    ['/orders%2f..%2fadmin', [400]],
    ['//admin', [403]],
    ['/orders/..;/admin', [400]],
    ['/orders/..%3B/admin', [400]],
    ['/orders/%252e%252e/admin', [400]],
    ['/orders/..\\admin', [400]],
    ['/orders/%5c..%5cadmin', [400]],
    ['/orders/%00/../../admin', [400]],
    ['/%61dmin', [403]],
    ['/./admin', [403]],
    ['/orders/./../admin/', [403]],
    ['/../admin', [400]],
  ];
  for (const [path, expected] of cases) {
    const res = await s.send(billing, { path });
    t.ok(expected.includes(res.status), `${path} -> ${res.status} (expected ${expected.join(' or ')})`);
  }
  const adminHits = s.upstream.seen.filter((r) => !r.url.startsWith('/orders'));
  t.same(adminHits, [], 'nothing outside /orders reached the upstream');

  const ok = await s.send(billing, { path: '/orders/a/../b//c/%7Euser' });
  t.equal(ok.status, 200);
  t.equal(s.upstream.seen.at(-1)?.url, '/orders/b/c/~user', 'the upstream receives the normalized path the policy judged');
});
