// Pins a security decision: with /orders/admin denied and /orders allowed, spellings of
// /orders/admin that servlet containers, IIS and some routers rewrite before routing (";params",
// case, trailing dots and blanks, encoded control characters) were allowed and forwarded verbatim.
// By default they are refused with 400; with server.paths.caseSensitive: false the route match
// folds case, so /orders/ADMIN meets the /orders/admin rule.
import t from 'tap';
import { FRONT_DOOR_ROUTES_YAML } from '../helpers/front-door-stack.js';
import { startStack } from '../helpers/harness.js';

// /orders/admin admits nobody; /orders admits the billing SPIFFE ID.
const ROUTES = FRONT_DOOR_ROUTES_YAML;

const TRICKS = [
  '/orders/admin;x=1/users',
  '/orders/admin;/users',
  '/orders/admin%3B/users',
  '/orders/admin%3b/users',
  '/orders/admin./users',
  '/orders/admin../users',
  '/orders/admin%20/users',
  '/orders/%20admin/users',
  '/orders/admin%09/users',
  '/orders/admin%00/users',
  '/orders/admin%0d%0a/users',
  '/orders/admin%7f/users',
];

t.test('default: spellings an upstream would normalize are refused, /orders/ADMIN is forwarded as sent', async (t) => {
  const s = await startStack({ routes: ROUTES });
  t.teardown(() => s.close());
  const billing = s.pki.clients['billing']!;
  t.equal((await s.send(billing, { path: '/orders/admin/users' })).status, 403, 'the plain spelling is denied');
  for (const path of TRICKS) {
    const res = await s.send(billing, { path });
    t.equal(res.status, 400, `${path}: 400`);
    t.match(res.json, { error: { code: 'GW_ERR_PATH_INVALID' } });
  }
  // Case-sensitive by default: the upstream's contract is to route on the exact path it receives
  // (docs/policies.md). It gets exactly that path.
  const upper = await s.send(billing, { path: '/orders/ADMIN/users' });
  t.equal(upper.status, 200);
  t.same(s.upstream.seen.map((r) => r.url), ['/orders/ADMIN/users'], 'only the exact, judged path reached the upstream');
  const reasons = s.gw.logs.filter((l) => l['code'] === 'GW_ERR_PATH_INVALID').map((l) => l['reason']);
  t.ok(reasons.includes('semicolon') && reasons.includes('trimmable-segment') && reasons.includes('encoded-control'), 'the log names each reason');
});

t.test('caseSensitive: false makes every case spelling meet the deny rule', async (t) => {
  const s = await startStack({ routes: ROUTES, extra: 'server: { paths: { caseSensitive: false } }' });
  t.teardown(() => s.close());
  const billing = s.pki.clients['billing']!;
  for (const path of ['/orders/ADMIN/users', '/orders/Admin', '/ORDERS/admin', '/orders/%41dmin/x']) {
    t.equal((await s.send(billing, { path })).status, 403, `${path}: 403`);
  }
  const ok = await s.send(billing, { path: '/Orders/42' });
  t.equal(ok.status, 200, 'case-folded match still admits the allowed route');
  t.same(s.upstream.seen.map((r) => r.url), ['/Orders/42'], 'the path is forwarded as the client spelled it');
});

t.test('allowSemicolons and allowTrimmableSegments are explicit opt-ins', async (t) => {
  const s = await startStack({ routes: ROUTES, extra: 'server: { paths: { allowSemicolons: true, allowTrimmableSegments: true } }' });
  t.teardown(() => s.close());
  const billing = s.pki.clients['billing']!;
  t.equal((await s.send(billing, { path: '/orders/42;v=1' })).status, 200);
  t.equal((await s.send(billing, { path: '/orders/file.' })).status, 200);
  t.equal((await s.send(billing, { path: '/orders/..;/orders/admin' })).status, 400, 'Tomcat "..;" stays refused');
  t.equal((await s.send(billing, { path: '/orders/admin%09/users' })).status, 400, 'encoded control characters stay refused');
  t.same(s.upstream.seen.map((r) => r.url), ['/orders/42;v=1', '/orders/file.']);
});
