// Balancing across a fleet's targets, over real mTLS: round-robin rotates (weights give smooth
// weighted round-robin), least-request keeps new requests off a target that is busy, random
// spreads. Every target is its own server with the same certificate, as the pods of a Service.
import t from 'tap';
import { makeTestPki, type UpstreamHandler } from '../helpers/harness.js';
import { hits, sleep, startFleet, startTarget, targetsLine } from '../helpers/fleet.js';

const pki = await makeTestPki();

t.test('round-robin: equal weights rotate, one request each in turn', async (t) => {
  const f = await startFleet({ pki, count: 3 });
  t.teardown(() => f.close());
  for (let i = 0; i < 30; i++) t.equal((await f.send(f.billing, { path: `/orders/${i}` })).status, 200);
  t.same(hits(f.targets), [10, 10, 10], 'exactly a third each');
  const targetsLogged = f.gw.logs.filter((l) => l.msg === 'request').map((l) => l['target']);
  t.same(targetsLogged.slice(0, 3).sort(), f.targets.map((x) => x.origin).sort(), 'the access record names the target that answered');
});

t.test('round-robin with weights: 3:1:1, smoothly interleaved', async (t) => {
  const targets = [await startTarget(pki), await startTarget(pki), await startTarget(pki)];
  const f = await startFleet({ pki, count: 3, targets, upstream: (ts) => `${targetsLine(ts)}\nweights: { ${ts[0]!.origin}: 3 }` });
  t.teardown(() => f.close());
  const order: number[] = [];
  for (let i = 0; i < 25; i++) {
    const before = hits(f.targets);
    t.equal((await f.send(f.billing, { path: '/orders/w' })).status, 200);
    order.push(hits(f.targets).findIndex((n, k) => n > before[k]!));
  }
  t.same(hits(f.targets), [15, 5, 5], 'shares follow the weights exactly');
  const runs = order.join('').match(/0+/g)!.map((r) => r.length);
  t.ok(Math.max(...runs) <= 2, `the heavy target never takes three in a row (${order.join('')})`);
});

t.test('least-request keeps new requests off a target that is busy', async (t) => {
  const released: (() => void)[] = [];
  const slow: UpstreamHandler = (req, res) => {
    req.resume();
    released.push(() => res.writeHead(200).end('slow'));
  };
  const f = await startFleet({ pki, count: 3, upstream: (ts) => `${targetsLine(ts)}\nbalance: least-request` });
  t.teardown(() => f.close());
  f.targets[0]!.handler = slow;
  // Send until one request is held on target 0 (the others answer at once).
  const held: Promise<unknown>[] = [];
  for (let i = 0; i < 30 && f.targets[0]!.seen.length < 1; i++) {
    held.push(f.send(f.billing, { path: '/orders/held' }));
    await sleep(40);
  }
  const deadline = Date.now() + 5_000;
  while (f.targets[0]!.seen.length < 1 && Date.now() < deadline) await sleep(20);
  t.equal(f.targets[0]!.seen.length, 1, 'target 0 holds a request');
  // Every request sent so far has reached its target (on a busy machine one sent just before target
  // 0 took its request may still be on its way), so the counts below hold only the new ones.
  const reached = () => hits(f.targets).reduce((a, b) => a + b, 0);
  while (reached() < held.length && Date.now() < deadline) await sleep(20);
  t.equal(reached(), held.length, 'every earlier request reached a target');
  const before = hits(f.targets);
  for (let i = 0; i < 20; i++) t.equal((await f.send(f.billing, { path: '/orders/quick' })).status, 200);
  const after = hits(f.targets);
  t.equal(after[0]! - before[0]!, 0, 'the busy target got none of the new requests');
  t.equal(after[1]! - before[1]! + after[2]! - before[2]!, 20, 'the idle ones took them all');
  for (const r of released) r();
  await Promise.all(held);
});

t.test('random spreads across every target', async (t) => {
  const f = await startFleet({ pki, count: 3, upstream: (ts) => `${targetsLine(ts)}\nbalance: random` });
  t.teardown(() => f.close());
  for (let i = 0; i < 60; i++) t.equal((await f.send(f.billing, { path: '/orders/r' })).status, 200);
  const h = hits(f.targets);
  t.equal(h.reduce((a, b) => a + b, 0), 60);
  // Each share is 20 expected; below 5 has probability under 1e-4 per target.
  for (const [i, n] of h.entries()) t.ok(n >= 5, `target ${i} got ${n} of 60`);
});
