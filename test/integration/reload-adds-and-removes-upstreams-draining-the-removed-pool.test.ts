// Upstreams follow the config on a reload: an added upstream (with its route) serves at once; a
// removed one stops getting new requests, while a request already in flight on it (admitted under
// the previous snapshot, still streaming) completes; its pool is closed once nothing holds it.
// An unchanged upstream keeps its pool (and pooled connections) across the reload.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { gatewayYaml, startStack, startUpstream } from '../helpers/harness.js';

t.test('a reload adds an upstream, and removes one while its last request completes', async (t) => {
  let releaseSlow: (() => void) | null = null;
  const s = await startStack();
  t.teardown(() => s.close());
  const { pki, dir } = s;
  const billing = pki.clients['billing']!;
  const inventory = await startUpstream({
    server: pki.upstreams['inventory']!,
    ca: pki.caBundlePem,
    handler: (req, res) => {
      if (req.url === '/inventory/slow') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('first half;');
        releaseSlow = () => res.end('second half');
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('inventory');
    },
  });
  t.teardown(() => inventory.close());
  const withInventory = gatewayYaml({
    upstreamPort: s.upstream.port,
    upstreamExtra: `  inventory:
    url: https://127.0.0.1:${inventory.port}
    tls:
      cert: ./gateway-client.crt
      key: ./gateway-client.key
      ca: ./ca-bundle.pem
      servername: inventory.internal`,
    routes: `
routes:
  - name: orders
    match: { pathPrefix: /orders }
    upstream: orders
    allow: [{ spiffe: "spiffe://example.org/ns/*/sa/billing" }]
  - name: inventory
    match: { pathPrefix: /inventory }
    upstream: inventory
    allow: [{ spiffe: "spiffe://example.org/ns/*/sa/billing" }]
`,
  });
  const ordersBefore = s.gw.gateway.runtime.current.upstreams.get('orders');
  t.equal((await s.send(billing, { path: '/inventory/1' })).status, 404, 'no inventory route yet');

  await writeFile(path.join(dir, 'gateway.yaml'), withInventory);
  t.match(await s.gw.gateway.reload('test'), { result: 'success', generation: 2 });
  const added = await s.send(billing, { path: '/inventory/1' });
  t.equal(added.status, 200, 'the added upstream serves at once');
  t.equal(added.body, 'inventory');
  t.equal(s.gw.gateway.runtime.current.upstreams.get('orders'), ordersBefore, 'the unchanged upstream kept its pool');

  // A request in flight on inventory, mid-response, when inventory is removed.
  const slow = s.send(billing, { path: '/inventory/slow' });
  const until = Date.now() + 5_000;
  while (releaseSlow === null && Date.now() < until) await sleep(20);
  t.ok(releaseSlow, 'the slow response started');
  const removedUpstream = s.gw.gateway.runtime.current.upstreams.get('inventory')!;
  const removedTarget = removedUpstream.targets()[0]!;
  await writeFile(path.join(dir, 'gateway.yaml'), gatewayYaml({ upstreamPort: s.upstream.port }));
  t.match(await s.gw.gateway.reload('test'), { result: 'success', generation: 3 });
  t.notOk(s.gw.gateway.runtime.current.upstreams.has('inventory'), 'inventory is gone from the snapshot');
  t.equal((await s.send(billing, { path: '/inventory/2' })).status, 404, 'new requests find no route');
  t.equal(removedTarget.pool.closed, false, 'the removed pool stays open while its request is in flight');
  releaseSlow!();
  const done = await slow;
  t.equal(done.status, 200, 'the in-flight request completed');
  t.equal(done.body, 'first half;second half', 'with its whole body');
  const closeBy = Date.now() + 5_000;
  while (!removedTarget.pool.closed && Date.now() < closeBy) await sleep(20);
  t.ok(removedTarget.pool.closed, 'then the removed pool was closed');
  t.equal((await s.send(billing, { path: '/orders/1' })).status, 200, 'orders still serves');
});
