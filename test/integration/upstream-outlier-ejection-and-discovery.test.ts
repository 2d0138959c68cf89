// Passive health and DNS discovery over real mTLS. A target that starts failing is ejected after
// consecutiveFailures and comes back after baseEjection; never more than maxEjectionPercent of the
// fleet is out at once. Discovery follows a changed DNS answer (an injected lookup, as a headless
// Service's records would change), keeps the last good set when resolution fails, and verifies
// tls.servername on every discovered address (pod IPs are never the certificate's name).
import t from 'tap';
import { makeTestPki } from '../helpers/harness.js';
import { hits, sleep, startFleet, startTarget, statusHandler } from '../helpers/fleet.js';

const pki = await makeTestPki();

t.test('a failing target is ejected, then comes back after the back-off', async (t) => {
  const f = await startFleet({ pki, count: 3, upstream: (ts) => `targets: [${ts.map((x) => x.origin).join(', ')}]\noutlierDetection: { consecutiveFailures: 3, baseEjection: 3s, maxEjectionPercent: 34 }` });
  t.teardown(() => f.close());
  f.targets[0]!.handler = statusHandler(500);
  let fives = 0;
  for (let i = 0; i < 30; i++) if ((await f.send(f.billing, { path: '/orders/a' })).status === 500) fives++;
  t.equal(fives, 3, 'the failing target answered exactly consecutiveFailures requests before it was ejected');
  const st = f.gw.gateway.status().upstreams[0]!.targets[0]!;
  t.equal(st.ejected, true, '/status shows it ejected');
  t.equal(st.timesEjected, 1);
  t.ok(f.gw.logs.some((l) => l['event'] === 'upstream-target-ejected' && l['target'] === f.targets[0]!.origin), 'the ejection is logged');
  // The cap: a second failing target (34% of 3 = 1 at once) is not ejected while the first is out.
  f.targets[1]!.handler = statusHandler(500);
  for (let i = 0; i < 8; i++) await f.send(f.billing, { path: '/orders/b' });
  // (baseEjection is long enough that the first is still out here even on a busy machine.)
  t.equal(f.gw.gateway.status().upstreams[0]!.targets[0]!.ejected, true, 'the first failing target is still out');
  t.equal(f.gw.gateway.status().upstreams[0]!.targets[1]!.ejected, false, 'maxEjectionPercent keeps the second one in');
  f.targets[1]!.handler = statusHandler(200);
  f.targets[0]!.handler = statusHandler(200);
  const deadline = Date.now() + 10_000;
  while (f.gw.gateway.status().upstreams[0]!.targets[0]!.ejected && Date.now() < deadline) await sleep(50);
  const before = hits(f.targets);
  for (let i = 0; i < 9; i++) t.equal((await f.send(f.billing, { path: '/orders/c' })).status, 200);
  t.ok(hits(f.targets)[0]! > before[0]!, 'after baseEjection the target takes requests again');
  t.equal(f.gw.gateway.status().upstreams[0]!.targets[0]!.ejected, false);
  t.match(await f.gw.gateway.metrics.text(), new RegExp(`mtls_gateway_upstream_ejections_total\\{upstream="orders",target="${f.targets[0]!.origin.replace(/[.]/g, '\\.')}"\\} 1`));
  t.match(await f.gw.gateway.metrics.text(), /mtls_gateway_upstream_target_ejected\{upstream="orders",target="[^"]+"\} 0/);
});

t.test('DNS discovery follows a changed answer and keeps the last good set on failure', async (t) => {
  // Two targets on the same port, one on 127.0.0.1 and one on ::1: the addresses a name resolves to.
  const v4 = await startTarget(pki);
  const v6 = await startTarget(pki, { host: '::1', port: v4.port });
  let answer: string[] | Error = ['127.0.0.1'];
  let lookups = 0;
  const lookup = async (host: string) => {
    lookups++;
    t.equal(host, 'orders-headless.shop.svc.cluster.local', 'the configured name is resolved');
    if (answer instanceof Error) throw answer;
    return answer;
  };
  const f = await startFleet({ pki, count: 2, targets: [v4, v6], lookup, upstream: () => `discovery: { dns: orders-headless.shop.svc.cluster.local, port: ${v4.port}, refresh: 1s }` });
  t.teardown(() => f.close());
  t.equal(lookups, 1, 'resolved once before serving');
  for (let i = 0; i < 4; i++) t.equal((await f.send(f.billing, { path: '/orders/1' })).status, 200);
  t.same(hits([v4, v6]), [4, 0], 'only the resolved address is used');
  answer = ['::1', '127.0.0.1'];
  const deadline = Date.now() + 5_000;
  while (Date.now() < deadline && f.gw.gateway.status().upstreams[0]!.targets.length < 2) await sleep(50);
  t.same(f.gw.gateway.status().upstreams[0]!.targets.map((x) => x.origin).sort(), [`https://127.0.0.1:${v4.port}`, `https://[::1]:${v4.port}`].sort(), 'the new address joined');
  for (let i = 0; i < 6; i++) t.equal((await f.send(f.billing, { path: '/orders/2' })).status, 200);
  t.ok(v6.seen.length >= 2, 'the IPv6 target serves, its certificate verified by servername');
  answer = Object.assign(new Error('queryA ESERVFAIL'), { code: 'ESERVFAIL' });
  const failedBy = Date.now() + 5_000;
  while (Date.now() < failedBy && !f.gw.logs.some((l) => l['event'] === 'upstream-discovery-failed')) await sleep(50);
  t.ok(f.gw.logs.some((l) => l['event'] === 'upstream-discovery-failed' && l['reason'] === 'ESERVFAIL'), 'the failure is logged with its reason');
  t.equal(f.gw.gateway.status().upstreams[0]!.targets.length, 2, 'the last good set stays');
  t.match(f.gw.gateway.status().upstreams[0]!.discovery, { dns: 'orders-headless.shop.svc.cluster.local', lastError: /ESERVFAIL/ });
  t.equal((await f.send(f.billing, { path: '/orders/3' })).status, 200, 'still serving');
  answer = [];
  await sleep(1_200);
  t.equal(f.gw.gateway.status().upstreams[0]!.targets.length, 2, 'an empty answer keeps the last good set too');
  answer = ['::1'];
  const removedBy = Date.now() + 5_000;
  while (Date.now() < removedBy && f.gw.gateway.status().upstreams[0]!.targets.length !== 1) await sleep(50);
  const before = hits([v4, v6]);
  for (let i = 0; i < 4; i++) t.equal((await f.send(f.billing, { path: '/orders/4' })).status, 200);
  t.same(hits([v4, v6]), [before[0]!, before[1]! + 4], 'the removed address takes no new request');
  t.match(await f.gw.gateway.metrics.text(), /mtls_gateway_upstream_discovery_failures_total\{upstream="orders"\} [1-9]/);
});

t.test('a discovered address whose certificate lacks the servername is refused', async (t) => {
  // The gateway's own server certificate does not carry orders.internal.
  const wrong = await startTarget(pki);
  const impostor = await (await import('../helpers/harness.js')).startUpstream({ server: pki.gatewayServer, ca: pki.caBundlePem, host: '::1', port: wrong.port });
  const f = await startFleet({ pki, count: 1, targets: [wrong], lookup: async () => ['::1'], upstream: () => `discovery: { dns: orders.example, port: ${wrong.port}, refresh: 1h }` });
  t.teardown(async () => {
    await f.close();
    await impostor.close();
  });
  const r = await f.send(f.billing, { path: '/orders/1' });
  t.equal(r.status, 502);
  t.equal((r.json as { error: { code: string } }).error.code, 'GW_ERR_UPSTREAM_CERT_NAME_MISMATCH');
  t.equal(impostor.seen.length, 0, 'no request reached it');
});
