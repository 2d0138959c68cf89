// A verified identity that no allow entry admits gets 403 GW_ERR_POLICY_DENIED, never reaches the
// upstream, and the denial is logged with the identity and the rules tried.
import t from 'tap';
import { startStack } from '../helpers/harness.js';

t.test('denied identity gets 403', async (t) => {
  const s = await startStack();
  t.teardown(() => s.close());
  const res = await s.send(s.pki.clients['intruder']!, { path: '/orders/1' });
  t.equal(res.status, 403);
  t.match(res.json, { error: { code: 'GW_ERR_POLICY_DENIED', requestId: String } });
  const billingOnAdmin = await s.send(s.pki.clients['billing']!, { path: '/admin' });
  t.equal(billingOnAdmin.status, 403, 'billing is not allowed on /admin');
  const wrongMethod = await s.send(s.pki.clients['billing']!, { method: 'DELETE', path: '/orders/1' });
  t.equal(wrongMethod.status, 404, 'a method outside the route match finds no route');
  t.equal(s.upstream.seen.length, 0);

  const denial = s.gw.logs.find((l) => l['code'] === 'GW_ERR_POLICY_DENIED' && l['route'] === 'orders');
  t.match(denial, { decision: 'deny', status: 403, client: { spiffe: 'spiffe://example.org/ns/default/sa/intruder' } });
  t.ok(denial?.['policy'], 'the explanation of the rules tried is logged');
});

t.test('deny is checked before allow', async (t) => {
  const s = await startStack({
    routes: `
routes:
  - name: orders
    match: { pathPrefix: /orders }
    upstream: orders
    deny:
      - subject: { CN: billing }
    allow:
      - spiffe: spiffe://example.org/**
`,
  });
  t.teardown(() => s.close());
  t.equal((await s.send(s.pki.clients['billing']!, { path: '/orders' })).status, 403);
  t.equal((await s.send(s.pki.clients['intruder']!, { path: '/orders' })).status, 200);
});

t.test('an empty allow list admits nobody', async (t) => {
  const s = await startStack({
    routes: `
routes:
  - name: closed
    match: { pathPrefix: / }
    upstream: orders
`,
  });
  t.teardown(() => s.close());
  t.equal((await s.send(s.pki.clients['ops-admin']!, { path: '/x' })).status, 403);
  t.equal(s.upstream.seen.length, 0);
});
