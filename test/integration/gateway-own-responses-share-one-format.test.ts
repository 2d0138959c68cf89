// The data plane streams allowed requests itself and hands every answer the gateway writes on its
// own to Fastify: refusals decided before forwarding, and upstream failures found after forwarding
// began. Whichever way a refusal went, the client sees one format (JSON error body, the registry's
// status, @fastify/helmet's headers, no-store) and the x-request-id it carries is the reqId of the
// log line that explains it. Proxied responses carry the upstream's headers, not the gateway's.
import t, { type Test } from 'tap';
import type { ClientResponse } from '../helpers/harness.js';
import { startStack } from '../helpers/harness.js';

function assertOwnResponse(t: Test, res: ClientResponse, status: number, code: string) {
  t.equal(res.status, status, `${code}: status`);
  t.match(res.json, { error: { code, requestId: res.headers['x-request-id'] } }, `${code}: body names the code and the request id`);
  t.match(res.headers['content-type'], /^application\/json/, `${code}: JSON`);
  t.equal(res.headers['cache-control'], 'no-store', `${code}: not cacheable`);
  t.equal(res.headers['x-content-type-options'], 'nosniff', `${code}: helmet headers`);
  t.ok(res.headers['strict-transport-security'], `${code}: HSTS from helmet`);
}

t.test('refusals and upstream failures share one format and one request id', async (t) => {
  const s = await startStack();
  t.teardown(() => s.close());
  const billing = s.pki.clients['billing']!;
  const intruder = s.pki.clients['intruder']!;

  const ok = await s.send(billing, { path: '/orders/1', headers: { 'x-request-id': 'trace-0001-allowed' } });
  t.equal(ok.status, 200);
  t.equal(ok.headers['x-request-id'], 'trace-0001-allowed', 'a sane client request id is kept');
  t.equal(ok.headers['x-content-type-options'], undefined, 'a proxied response carries the upstream headers only');
  t.match(s.gw.logs.find((l) => l.msg === 'request' && l.reqId === 'trace-0001-allowed'), { status: 200, route: 'orders', decision: 'allow' });

  const cases: { name: string; client: typeof billing | null; path: string; status: number; code: string }[] = [
    { name: 'no certificate', client: null, path: '/orders/1', status: 401, code: 'GW_ERR_CLIENT_CERT_MISSING' },
    { name: 'denied identity', client: intruder, path: '/orders/1', status: 403, code: 'GW_ERR_POLICY_DENIED' },
    { name: 'no route', client: billing, path: '/nowhere', status: 404, code: 'GW_ERR_ROUTE_NOT_FOUND' },
    { name: 'bad path', client: billing, path: '/orders/%2e%2e/admin', status: 400, code: 'GW_ERR_PATH_INVALID' },
  ];
  for (const c of cases) {
    const res = await s.send(c.client, { path: c.path });
    assertOwnResponse(t, res, c.status, c.code);
    const id = res.headers['x-request-id'];
    t.ok(
      s.gw.logs.some((l) => l.msg === 'request refused' && l.reqId === id && l.code === c.code),
      `${c.name}: the refusal is logged under the request id the client got`,
    );
  }

  // An upstream failure is found after the data plane started forwarding; the 502 still goes out
  // through Fastify, under the request id the failure was logged with.
  await s.upstream.close();
  const res = await s.send(billing, { path: '/orders/2', headers: { 'x-request-id': 'trace-0002-upstream-down' } });
  assertOwnResponse(t, res, 502, 'GW_ERR_UPSTREAM_UNREACHABLE');
  t.equal(res.headers['x-request-id'], 'trace-0002-upstream-down');
  t.match(s.gw.logs.find((l) => l.msg === 'upstream failed' && l.reqId === 'trace-0002-upstream-down'), { code: 'GW_ERR_UPSTREAM_UNREACHABLE', route: 'orders' });
  t.equal(s.gw.logs.filter((l) => l.reqId === 'trace-0002-upstream-down').length, 1, 'one log line for the failure, not a second refusal line');

  // The same with a request body: undici has already consumed and detached the request stream
  // when the failure is known, and the answer still goes out whole.
  const post = await s.send(billing, { method: 'POST', path: '/orders/3', body: 'z'.repeat(100_000), headers: { 'x-request-id': 'trace-0003-post-upstream-down' } });
  assertOwnResponse(t, post, 502, 'GW_ERR_UPSTREAM_UNREACHABLE');
  t.equal(post.headers['x-request-id'], 'trace-0003-post-upstream-down');
  t.notOk(s.gw.logs.some((l) => l.msg === 'request failed'), 'no internal error on the way');
});
