// What a route changes about an admitted request: its rate limit (a token bucket per identity:
// 429 GW_ERR_RATE_LIMITED with Retry-After, before any upstream work), its path rewrite (after
// the policy judged the client's path), the Host it sends (upstream, servername, preserve) and
// its response timeout overriding the upstream's.
import t from 'tap';
import { makeTestPki } from '../helpers/harness.js';
import { startFleet } from '../helpers/fleet.js';

const pki = await makeTestPki();

const ROUTES = `
routes:
  - name: limited
    match: { pathPrefix: /orders/limited }
    upstream: orders
    rateLimit: { key: spiffe, rate: 1/m, burst: 2 }
    allow:
      - spiffe: spiffe://example.org/ns/*/sa/billing
      - subject: { CN: ops-admin, OU: sre }
  - name: by-subject
    match: { pathPrefix: /orders/subject }
    upstream: orders
    rateLimit: { key: subject, rate: 1/h, burst: 1 }
    allow:
      - spiffe: spiffe://example.org/ns/*/sa/billing
  - name: slow
    match: { pathPrefix: /orders/slow }
    upstream: orders
    timeouts: { response: 1s }
    allow:
      - spiffe: spiffe://example.org/ns/*/sa/billing
  - name: preserve
    match: { pathPrefix: /orders/preserve }
    upstream: orders
    host: preserve
    allow:
      - spiffe: spiffe://example.org/ns/*/sa/billing
  - name: servername
    match: { pathPrefix: /orders/servername }
    upstream: orders
    host: servername
    allow:
      - spiffe: spiffe://example.org/ns/*/sa/billing
  - name: orders
    match: { pathPrefix: /orders }
    upstream: orders
    rewrite: { prefix: /v1/orders }
    allow:
      - spiffe: spiffe://example.org/ns/*/sa/billing
`;

t.test('route rate limits, rewrites, Host and timeouts', async (t) => {
  const f = await startFleet({ pki, count: 1, routes: ROUTES });
  t.teardown(() => f.close());
  const target = f.targets[0]!;
  const ops = pki.clients['ops-admin']!;

  await t.test('rate limit: a bucket per identity, 429 with Retry-After beyond it', async (t) => {
    const before = target.seen.length;
    t.equal((await f.send(f.billing, { path: '/orders/limited/1' })).status, 200);
    t.equal((await f.send(f.billing, { path: '/orders/limited/2' })).status, 200);
    const limited = await f.send(f.billing, { method: 'POST', path: '/orders/limited/3', body: 'x'.repeat(10_000), headers: { 'content-type': 'text/plain' } });
    t.equal(limited.status, 429);
    t.equal((limited.json as { error: { code: string } }).error.code, 'GW_ERR_RATE_LIMITED');
    const retryAfter = Number(limited.headers['retry-after']);
    t.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After ${retryAfter}s: a token comes back within a minute at 1/m`);
    t.equal(target.seen.length, before + 2, 'the limited request never reached the upstream');
    t.equal((await f.send(ops, { path: '/orders/limited/4' })).status, 200, 'another identity has its own bucket');
    const rec = f.gw.logs.find((l) => l['code'] === 'GW_ERR_RATE_LIMITED')!;
    t.match(rec, { route: 'limited', key: 'spiffe', msg: 'request refused' });
    t.match(await f.gw.gateway.metrics.text(), /mtls_gateway_rate_limited_total\{route="limited"\} 1/);
    t.match(await f.gw.gateway.metrics.text(), /mtls_gateway_requests_total\{route="limited",decision="allow",status="429"\} 1/);
  });

  await t.test('rate limit keyed by subject', async (t) => {
    t.equal((await f.send(f.billing, { path: '/orders/subject/1' })).status, 200);
    t.equal((await f.send(f.billing, { path: '/orders/subject/2' })).status, 429);
  });

  await t.test('a reload that keeps the rateLimit keeps the buckets', async (t) => {
    t.match(await f.gw.gateway.reload('test'), { result: 'success' });
    t.equal((await f.send(f.billing, { path: '/orders/limited/5' })).status, 429, 'still empty after the reload');
  });

  await t.test('rewrite: the upstream gets the rewritten path, the log both', async (t) => {
    const r = await f.send(f.billing, { path: '/orders/42?expand=1' });
    t.equal(r.status, 200);
    t.equal((r.json as { url: string }).url, '/v1/orders/42?expand=1');
    const rec = f.gw.logs.filter((l) => l.msg === 'request').at(-1)!;
    t.match(rec, { path: '/orders/42', upstreamPath: '/v1/orders/42', route: 'orders' });
    t.equal((await f.send(f.billing, { path: '/orders' })).json && ((await f.send(f.billing, { path: '/orders' })).json as { url: string }).url, '/v1/orders', 'the bare prefix too');
  });

  await t.test('Host: upstream (default), servername, preserve', async (t) => {
    const def = (await f.send(f.billing, { path: '/orders/h', headers: { host: 'api.example.com' } })).json as { headers: Record<string, string> };
    t.equal(def.headers['host'], `127.0.0.1:${target.port}`, "default: the target's host:port");
    t.equal(def.headers['x-forwarded-host'], 'api.example.com', 'the client Host goes in X-Forwarded-Host');
    const sn = (await f.send(f.billing, { path: '/orders/servername/h', headers: { host: 'api.example.com' } })).json as { headers: Record<string, string> };
    t.equal(sn.headers['host'], 'orders.internal', 'servername');
    const keep = (await f.send(f.billing, { path: '/orders/preserve/h', headers: { host: 'api.example.com' } })).json as { headers: Record<string, string> };
    t.equal(keep.headers['host'], 'api.example.com', "preserve: the client's Host");
  });

  await t.test("a route's response timeout overrides the upstream's", async (t) => {
    target.handler = (req, res) => {
      req.resume();
      setTimeout(() => res.writeHead(200).end('late'), 6_000).unref();
    };
    const started = Date.now();
    const r = await f.send(f.billing, { path: '/orders/slow/1' });
    t.equal(r.status, 504);
    t.equal((r.json as { error: { code: string } }).error.code, 'GW_ERR_UPSTREAM_TIMEOUT');
    // undici's response timer has about a second's resolution (its fast timers).
    t.ok(Date.now() - started < 3_000, `cut at the route timeout (1s), not the upstream default (30s): ${Date.now() - started}ms`);
  });
});
