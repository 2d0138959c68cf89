// The fuzz and corpus tests judge what reached the upstream with invariantViolations(); this pins
// the one rule that needs care: a request embedded in the client's bytes (X-Smuggled) is a finding
// when it reached the upstream without the gateway's judgement (no XFCC of the gateway's), or
// under the denied prefix, and not when a mutation made it a request the policy allows, pipelined
// after a complete one (fuzz seed 1316462024).
import t from 'tap';
import { BILLING_SPIFFE, invariantViolations } from '../helpers/front-door-stack.js';

const XFCC = ['x-forwarded-client-cert', `Hash=00;URI=${BILLING_SPIFFE}`];

t.test('an embedded request without the gateway XFCC is smuggling', async (t) => {
  const v = invariantViolations('GET', '/orders/1', '/orders/1', ['host', 'localhost', 'x-smuggled', 'yes'], 'exact');
  t.ok(v.some((p) => p.startsWith('a smuggled request arrived')), v.join('; '));
});

t.test('an embedded request under the denied prefix is a finding even with XFCC', async (t) => {
  const v = invariantViolations('GET', '/orders/admin/users', '/orders/admin/users', ['host', 'localhost', 'x-smuggled', 'yes', ...XFCC], 'exact');
  t.ok(v.some((p) => p.startsWith('reached the denied prefix')), v.join('; '));
});

t.test('a pipelined request the gateway judged and allowed is not smuggling', async (t) => {
  const v = invariantViolations('GET', '/orders/adminusers', '/orders/adminusers', ['host', 'localhost', 'x-smuggled', 'ye', ...XFCC], 'exact');
  t.strictSame(v, []);
});

t.test('an XFCC for another identity still counts as not judged', async (t) => {
  const v = invariantViolations('GET', '/orders/1', '/orders/1', ['host', 'localhost', 'x-smuggled', 'yes', 'x-forwarded-client-cert', 'URI=spiffe://example.org/ns/default/sa/intruder'], 'exact');
  t.ok(v.some((p) => p.startsWith('a smuggled request arrived')), v.join('; '));
});
