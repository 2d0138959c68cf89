/**
 * Policy explanations: the trace agrees with `decide`, names the failing match parts and selector
 * fields with expected patterns and actual values, and picks the closest miss.
 */
import t from 'tap';
import type { RouteConfig } from '../../src/config/schema.js';
import type { PeerIdentity } from '../../src/identity/peer-identity.js';
import { compilePolicy } from '../../src/policy/compile-policy.js';
import { decide } from '../../src/policy/decide.js';
import { describeSelector, explain, formatExplanation } from '../../src/policy/explain.js';
import type { RequestAttributes } from '../../src/policy/types.js';

const id: PeerIdentity = {
  subject: {
    attributes: [
      { type: 'O', value: 'Acme' },
      { type: 'OU', value: 'payments' },
      { type: 'OU', value: 'eu' },
      { type: 'CN', value: 'billing-api' },
    ],
    rfc4514: 'CN=billing-api,OU=eu,OU=payments,O=Acme',
  },
  issuer: { attributes: [{ type: 'CN', value: 'Acme CA' }], rfc4514: 'CN=Acme CA' },
  san: { dns: ['billing.example.com'], uri: [], email: [], ip: ['10.1.2.3'] },
  spiffe: { uri: 'spiffe://example.org/ns/default/sa/billing', trustDomain: 'example.org', path: '/ns/default/sa/billing' },
  serial: '0A',
  fingerprint256: 'cd'.repeat(32),
  notBefore: new Date(0),
  notAfter: new Date(0),
};

const routes: RouteConfig[] = [
  { name: 'admin', match: { host: 'admin.example.com', pathPrefix: '/', methods: ['POST'] }, upstream: 'u', allow: [], deny: [] },
  {
    name: 'orders',
    match: { pathPrefix: '/orders' },
    upstream: 'u',
    deny: [{ subject: { OU: 'contractors' } }],
    allow: [
      { spiffe: 'spiffe://example.org/ns/*/sa/frontend' },
      { spiffe: 'spiffe://example.org/ns/*/sa/billing', subject: { OU: 'finance', CN: 'billing-*' } },
      { dns: '*.example.com', ip: '192.168.0.0/16', serial: 'FF' },
    ],
  },
  { name: 'closed', match: { path: '/closed' }, upstream: 'u', allow: [], deny: [] },
  { name: 'open', match: { path: '/open' }, upstream: 'u', allow: [{ ip: '10.0.0.0/8' }], deny: [{ subject: { CN: 'billing-*' } }] },
];
const policy = compilePolicy(routes);
const req = (path: string, method = 'GET', host: string | null = 'api.example.com'): RequestAttributes => ({ method, host, path });

t.test('explain agrees with decide', async (t) => {
  for (const r of [req('/orders'), req('/closed'), req('/open'), req('/nothing'), req('/', 'POST', 'admin.example.com')]) {
    t.equal(explain(policy, id, r).decision, decide(policy, id, r), `${r.method} ${r.host} ${r.path}`);
  }
});

t.test('route trace: every route tried, with the parts that failed', async (t) => {
  const e = explain(policy, id, req('/orders/1'));
  t.same(
    e.routes.map((r) => [r.name, r.matched, r.failed]),
    [
      ['admin', false, ['host', 'method']],
      ['orders', true, []],
    ],
    'stops at the deciding route',
  );
  t.equal(e.routes[0]?.match, 'host=admin.example.com pathPrefix=/ methods=POST');

  const none = explain(policy, id, req('/nothing', 'DELETE', null));
  t.equal(none.decision.kind, 'no-route');
  t.equal(none.routes.length, 4);
  t.same(none.routes[2]?.failed, ['path']);
  t.same(none.deny, []);
  t.same(none.allow, []);
  t.equal(none.closestMiss, null);
  t.match(none.summary, /^no-route: nothing matches DELETE \(no host\) \/nothing \(4 routes tried\)/);
});

t.test('selector trace and closest miss', async (t) => {
  const e = explain(policy, id, req('/orders'));
  t.equal(e.decision.kind, 'deny');
  t.same(e.deny.map((s) => [s.rule, s.matched]), [['routes[1].deny[0]', false]]);
  t.same(e.deny[0]?.fields, [{ field: 'subject.OU', path: 'routes[1].deny[0].subject.OU', expected: 'contractors', actual: ['payments', 'eu'], matched: false }]);
  t.same(
    e.allow.map((s) => [s.rule, s.matchedFields, s.totalFields]),
    [
      ['routes[1].allow[0]', 0, 1],
      ['routes[1].allow[1]', 2, 3],
      ['routes[1].allow[2]', 1, 3],
    ],
  );
  t.equal(e.closestMiss?.rule, 'routes[1].allow[1]');
  t.same(
    e.closestMiss?.fields.map((f) => [f.field, f.matched, f.expected, f.actual]),
    [
      ['spiffe', true, 'spiffe://example.org/ns/*/sa/billing', ['spiffe://example.org/ns/default/sa/billing']],
      ['subject.OU', false, 'finance', ['payments', 'eu']],
      ['subject.CN', true, 'billing-*', ['billing-api']],
    ],
  );
  t.equal(
    e.summary,
    'deny: route "orders" (routes[1]): no allow entry matched; closest routes[1].allow[1] (2/3 fields) failed subject.OU expected "finance", got ["payments","eu"]',
  );
  const text = formatExplanation(e);
  t.match(text, /closest miss: routes\[1\]\.allow\[1\]/);
  t.match(text, /FAIL subject\.OU: expected "finance", actual "payments", "eu"/);
  t.match(text, /routes\[0\] "admin" \(host=admin\.example\.com pathPrefix=\/ methods=POST\): no match \(host, method\)/);
});

t.test('closest miss: ties go to the first entry; none for an empty allow list or a deny rule', async (t) => {
  const tie = compilePolicy([
    { name: 't', match: { pathPrefix: '/' }, upstream: 'u', deny: [], allow: [{ dns: 'x.example.com', ip: '10.0.0.0/8' }, { dns: 'y.example.com', ip: '10.0.0.0/8' }] },
  ]);
  t.equal(explain(tie, id, req('/')).closestMiss?.rule, 'routes[0].allow[0]');

  const closed = explain(policy, id, req('/closed'));
  t.equal(closed.closestMiss, null);
  t.match(closed.summary, /empty allow list, so it admits nobody/);
  t.match(formatExplanation(closed), /allow: \(none: nobody is admitted\)/);

  const denied = explain(policy, id, req('/open'));
  t.same(denied.decision.kind === 'deny' && [denied.decision.reason, denied.decision.rule], ['denied-by-rule', 'routes[3].deny[0]']);
  t.equal(denied.closestMiss, null);
  t.equal(denied.allow[0]?.matched, true, 'allow entries are still traced');
  t.equal(denied.summary, 'deny: route "open" (routes[3]) by routes[3].deny[0]');
});

t.test('allow summary, missing values, and JSON-safe output', async (t) => {
  const ok = explain(policy, { ...id, subject: { ...id.subject, attributes: [{ type: 'CN', value: 'other' }] } }, req('/open'));
  t.equal(ok.summary, 'allow: route "open" (routes[3]) by routes[3].allow[0]');

  const noSpiffe = explain(policy, { ...id, spiffe: null }, req('/orders'));
  t.same(noSpiffe.allow[0]?.fields[0]?.actual, []);
  t.doesNotThrow(() => JSON.stringify(noSpiffe), 'no cycles');
});

t.test('describeSelector', async (t) => {
  t.equal(describeSelector({ spiffe: 'spiffe://example.org/ns/*/sa/billing' }), 'spiffe=spiffe://example.org/ns/*/sa/billing');
  t.equal(
    describeSelector({ subject: { OU: 'payments', O: 'Acme, Inc.' }, ip: '10.0.0.0/8' }),
    'ip=10.0.0.0/8, subject.OU=payments, subject.O="Acme, Inc."',
  );
  t.equal(describeSelector(policy.routes[1]!.allow[1]!), 'spiffe=spiffe://example.org/ns/*/sa/billing, subject.OU=finance, subject.CN=billing-*');
});

t.test('a route in audit mode: the decision stays deny, the summary says would-deny and forwarded', async (t) => {
  const audited = compilePolicy([{ ...routes[1]!, audit: true }]);
  const e = explain(audited, id, req('/orders/1'));
  t.equal(e.decision.kind, 'deny', 'the policy decision itself is unchanged');
  t.match(e.summary, /^would-deny: route "orders" \(routes\[0\]\): no allow entry matched/);
  t.match(e.summary, /audit mode: logged and counted as would-deny, and forwarded/);
  t.match(formatExplanation(e), /decision: would-deny/);
  const allowed = explain(compilePolicy([{ ...routes[3]!, deny: [], audit: true }]), id, req('/open'));
  t.match(allowed.summary, /^allow: /, 'an allow in audit mode is a plain allow');
  t.throws(() => compilePolicy([{ ...routes[1]!, audit: 'yes' as unknown as boolean }]), /routes\[0\]\.audit: must be true or false/);
});
