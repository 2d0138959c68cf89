// When no target can take a request the answer is 503 at once, with the right code: every target
// down by its health check or refusing connections gives GW_ERR_UPSTREAM_UNAVAILABLE (never a
// connect timeout per target in turn), and the circuit-breaking limits give
// GW_ERR_UPSTREAM_OVERLOADED without waiting. Both with Retry-After.
import t from 'tap';
import { makeTestPki, type UpstreamHandler } from '../helpers/harness.js';
import { refusedPort, sleep, startFleet, statusHandler } from '../helpers/fleet.js';

const pki = await makeTestPki();

function code(r: { json: unknown }): string | undefined {
  return (r.json as { error?: { code?: string } } | undefined)?.error?.code;
}

t.test('every target refusing connections: 503 UNAVAILABLE after trying each once', async (t) => {
  const ports = [await refusedPort(), await refusedPort(), await refusedPort()];
  const f = await startFleet({ pki, count: 0, upstream: () => `targets: [${ports.map((p) => `https://127.0.0.1:${p}`).join(', ')}]` });
  t.teardown(() => f.close());
  const started = Date.now();
  const r = await f.send(f.billing, { path: '/orders/1' });
  t.equal(r.status, 503);
  t.equal(code(r), 'GW_ERR_UPSTREAM_UNAVAILABLE');
  t.equal(r.headers['retry-after'], '1');
  t.ok(Date.now() - started < 2_000, 'answered without waiting for a timeout');
  const rec = f.gw.logs.find((l) => l['code'] === 'GW_ERR_UPSTREAM_UNAVAILABLE')!;
  t.equal(rec['reason'], 'all-refused');
  t.equal((rec['attempts'] as unknown[]).length, 3, 'each target tried exactly once');
  t.same(new Set((rec['attempts'] as { target: string }[]).map((a) => a.target)).size, 3, 'three different targets');
});

t.test('a single-origin upstream that refuses keeps answering 502 UNREACHABLE', async (t) => {
  const port = await refusedPort();
  const f = await startFleet({ pki, count: 0, upstream: () => `url: https://127.0.0.1:${port}` });
  t.teardown(() => f.close());
  const r = await f.send(f.billing, { path: '/orders/1' });
  t.equal(r.status, 502);
  t.equal(code(r), 'GW_ERR_UPSTREAM_UNREACHABLE');
});

t.test('every target down by its health check: 503 UNAVAILABLE at once, then served when one recovers', async (t) => {
  const f = await startFleet({ pki, count: 2, upstream: (ts) => `targets: [${ts[0]!.origin}, ${ts[1]!.origin}]\nhealthCheck: { path: /healthz, interval: 100ms, timeout: 80ms, unhealthyThreshold: 2, healthyThreshold: 1 }` });
  t.teardown(() => f.close());
  const down: UpstreamHandler = statusHandler(503);
  for (const target of f.targets) target.handler = down;
  const deadline = Date.now() + 5_000;
  while (Date.now() < deadline && !f.gw.gateway.status().upstreams[0]!.targets.every((x) => !x.healthy)) await sleep(25);
  t.ok(f.gw.gateway.status().upstreams[0]!.targets.every((x) => !x.healthy), '/status shows both targets down');
  const seenBefore = f.targets.map((x) => x.seen.filter((s) => s.url !== '/healthz').length);
  const r = await f.send(f.billing, { path: '/orders/1' });
  t.equal(r.status, 503);
  t.equal(code(r), 'GW_ERR_UPSTREAM_UNAVAILABLE');
  t.equal(f.gw.logs.find((l) => l['code'] === 'GW_ERR_UPSTREAM_UNAVAILABLE')?.['reason'], 'all-down');
  t.same(
    f.targets.map((x) => x.seen.filter((s) => s.url !== '/healthz').length),
    seenBefore,
    'no target was sent the request',
  );
  f.targets[1]!.handler = (req, res, seen) => {
    if (req.url === '/healthz') return void res.writeHead(200).end('ok');
    statusHandler(200)(req, res, seen);
  };
  const until = Date.now() + 5_000;
  while (Date.now() < until && !f.gw.gateway.status().upstreams[0]!.targets[1]!.healthy) await sleep(25);
  t.equal((await f.send(f.billing, { path: '/orders/2' })).status, 200, 'served again once a target passes its check');
  t.ok(f.gw.logs.some((l) => l['event'] === 'upstream-target-unhealthy'), 'going down is logged');
  t.ok(f.gw.logs.some((l) => l['event'] === 'upstream-target-healthy'), 'coming back is logged');
  t.equal(f.targets[0]!.seen.at(-1)?.headers['user-agent'], 'mtls-gateway-health-check', 'checks identify themselves');
  t.equal(f.targets[0]!.seen.at(-1)?.peerCN, 'gateway', "checks present the gateway's client certificate");
  t.equal(f.targets[0]!.seen.at(-1)?.headers.host, 'orders.internal', 'with the servername as Host');
});

t.test('limits: beyond maxPending or maxRequests, 503 OVERLOADED without waiting', async (t) => {
  const releases: (() => void)[] = [];
  const hold: UpstreamHandler = (req, res) => {
    req.resume();
    releases.push(() => res.writeHead(200).end('done'));
  };
  const f = await startFleet({ pki, count: 1, upstream: (ts) => `targets: [${ts[0]!.origin}]\nlimits: { maxConnections: 1, maxPending: 1, maxRequests: 2 }\ntimeouts: { queue: 30s }` });
  t.teardown(() => f.close());
  f.targets[0]!.handler = hold;
  const first = f.send(f.billing, { path: '/orders/1' });
  while (releases.length < 1) await sleep(10);
  // The second waits for the one connection (pending 1 of 1).
  const second = f.send(f.billing, { path: '/orders/2' });
  await sleep(150);
  const started = Date.now();
  const third = await f.send(f.billing, { path: '/orders/3' });
  t.equal(third.status, 503);
  t.equal(code(third), 'GW_ERR_UPSTREAM_OVERLOADED');
  t.equal(third.headers['retry-after'], '1');
  t.ok(Date.now() - started < 2_000, 'refused at once, not after timeouts.queue');
  t.equal(f.gw.logs.find((l) => l['code'] === 'GW_ERR_UPSTREAM_OVERLOADED')?.['reason'], 'max-requests', 'two outstanding: maxRequests is the limit hit');
  releases.shift()!();
  t.equal((await first).status, 200);
  while (releases.length < 1) await sleep(10);
  releases.shift()!();
  t.equal((await second).status, 200, 'the waiting request was served in turn');
  t.match(await f.gw.gateway.metrics.text(), /mtls_gateway_upstream_rejections_total\{upstream="orders",reason="max-requests"\} 1/);
});

t.test('limits: maxPending refuses the request that would wait beyond it', async (t) => {
  const releases: (() => void)[] = [];
  const f = await startFleet({ pki, count: 1, upstream: (ts) => `targets: [${ts[0]!.origin}]\nlimits: { maxConnections: 1, maxPending: 0 }` });
  t.teardown(() => f.close());
  f.targets[0]!.handler = (req, res) => {
    req.resume();
    releases.push(() => res.writeHead(200).end('done'));
  };
  const first = f.send(f.billing, { path: '/orders/1' });
  while (releases.length < 1) await sleep(10);
  const second = await f.send(f.billing, { path: '/orders/2' });
  t.equal(second.status, 503);
  t.equal(f.gw.logs.find((l) => l['code'] === 'GW_ERR_UPSTREAM_OVERLOADED')?.['reason'], 'max-pending');
  releases.shift()!();
  t.equal((await first).status, 200);
});
