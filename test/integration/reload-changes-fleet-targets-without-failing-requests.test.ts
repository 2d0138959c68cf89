// A reload that changes an upstream's targets, under steady traffic: the removed target takes no
// new request and its pool closes once its in-flight requests end; the kept target carries on
// with the same pool, health and ejection state; the added one joins; no request fails.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { makeTestPki } from '../helpers/harness.js';
import { fleetYaml, hits, sleep, startFleet, startTarget, targetsLine } from '../helpers/fleet.js';

t.test('targets [A, B] become [B, C] by reload under load', async (t) => {
  const pki = await makeTestPki();
  const [a, b, c] = [await startTarget(pki), await startTarget(pki), await startTarget(pki)];
  // A answers slowly, so requests are in flight on it when the reload lands.
  a.handler = (req, res) => {
    req.resume();
    setTimeout(() => res.writeHead(200, { 'content-type': 'text/plain' }).end('a'), 150);
  };
  const f = await startFleet({ pki, count: 2, targets: [a, b, c].slice(0, 2) });
  t.teardown(async () => {
    await f.close();
    await c.close();
  });
  const fleetBefore = f.gw.gateway.runtime.current.upstreams.get('orders')!;
  const targetB = fleetBefore.targets().find((x) => x.origin === b.origin)!;

  let stop = false;
  const failures: string[] = [];
  let served = 0;
  const loop = async () => {
    while (!stop) {
      const r = await f.send(f.billing, { path: '/orders/load' }).catch((err: Error) => ({ status: 0, body: err.message }));
      if (r.status === 200) served++;
      else failures.push(`${r.status} ${r.body.slice(0, 120)}`);
    }
  };
  const loops = Array.from({ length: 4 }, loop);
  await sleep(600);
  t.ok(a.seen.length > 0 && b.seen.length > 0, 'A and B both serve before the reload');
  await writeFile(path.join(f.dir, 'gateway.yaml'), fleetYaml({ upstream: targetsLine([b, c]) }));
  t.match(await f.gw.gateway.reload('test'), { result: 'success' });
  const aAtReload = a.seen.length;
  await sleep(800);
  stop = true;
  await Promise.all(loops);

  t.strictSame(failures, [], 'no request failed across the reload');
  t.ok(served > 20, `traffic flowed (${served} requests)`);
  t.ok(a.seen.length - aAtReload <= 4, `A took no new requests after the swap (at most the ${4} in flight: ${a.seen.length - aAtReload})`);
  t.ok(c.seen.length > 0, 'C joined');
  const fleetAfter = f.gw.gateway.runtime.current.upstreams.get('orders')!;
  t.not(fleetAfter, fleetBefore, 'a new fleet is in force');
  t.equal(fleetAfter.targets().find((x) => x.origin === b.origin), targetB, "B's target, with its pool and state, was taken over");
  const removedA = fleetBefore.targets().find((x) => x.origin === a.origin);
  const deadline = Date.now() + 5_000;
  while (Date.now() < deadline && removedA !== undefined && !removedA.closed) await sleep(25);
  t.ok(removedA === undefined || removedA.closed, "A's pool closed once its requests were done");
  t.equal(targetB.closed, false, "B's pool stays open");
  t.same(
    f.gw.gateway.status().upstreams[0]!.targets.map((x) => x.origin).sort(),
    [b.origin, c.origin].sort(),
    '/status lists the new set',
  );
  const before = hits([a, b, c]);
  for (let i = 0; i < 6; i++) t.equal((await f.send(f.billing, { path: '/orders/after' })).status, 200);
  const after = hits([a, b, c]);
  t.equal(after[0], before[0], 'A is out');
  t.equal(after[1]! - before[1]! + after[2]! - before[2]!, 6);
});

t.test('a target kept across a reload that drops healthCheck is not left down for ever', async (t) => {
  const pki = await makeTestPki();
  const f = await startFleet({ pki, count: 2, upstream: (ts) => `${targetsLine(ts)}\nhealthCheck: { path: /healthz, interval: 100ms, timeout: 80ms, unhealthyThreshold: 1, healthyThreshold: 1 }` });
  t.teardown(() => f.close());
  const [a, b] = f.targets as [(typeof f.targets)[0], (typeof f.targets)[0]];
  b.handler = (req, res) => {
    req.resume();
    res.writeHead(req.url === '/healthz' ? 503 : 200).end();
  };
  const deadline = Date.now() + 5_000;
  while (Date.now() < deadline && f.gw.gateway.status().upstreams[0]!.targets[1]!.healthy) await sleep(25);
  t.equal(f.gw.gateway.status().upstreams[0]!.targets[1]!.healthy, false, 'B is down by its check');
  await writeFile(path.join(f.dir, 'gateway.yaml'), fleetYaml({ upstream: targetsLine([a, b]) }));
  t.match(await f.gw.gateway.reload('test'), { result: 'success' });
  t.equal(f.gw.gateway.status().upstreams[0]!.targets[1]!.healthy, true, 'without checks, B counts as healthy again');
  const before = b.seen.length;
  for (let i = 0; i < 4; i++) t.equal((await f.send(f.billing, { path: '/orders/x' })).status, 200);
  t.ok(b.seen.length > before, 'and takes requests');
});
