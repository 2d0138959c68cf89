// What an upgrade meets on the upstream side: an upstream that switches to another protocol, sends
// garbage or never answers gets the gateway's own 502/504; a client that leaves while waiting is
// logged as 499; an upstream that ends the tunnel is recorded as the closer; a dead target is
// failed over like a plain request; the route's rate limit and the upstream's maxRequests refuse
// upgrades before anything reaches the upstream. docs/websocket.md.
import net from 'node:net';
import tls from 'node:tls';
import t from 'tap';
import { closed, nextMessage, startWebSocketStack, type WebSocketStack } from '../helpers/websocket-stack.js';

const ROUTES = `
routes:
  - name: ws
    match: { pathPrefix: /ws }
    upstream: orders
    timeouts: { response: 300ms }
    allow:
      - spiffe: spiffe://example.org/ns/*/sa/billing
  - name: limited
    match: { pathPrefix: /limited }
    upstream: orders
    rewrite: { prefix: /ws/limited }
    rateLimit: { key: spiffe, rate: 1/h, burst: 1 }
    allow:
      - spiffe: spiffe://example.org/ns/*/sa/billing
`;

async function refusal(s: WebSocketStack, p: string): Promise<{ status: number | undefined; code: unknown }> {
  return s.connect(s.pki.clients['billing']!, p).then(
    async (ws) => {
      ws.terminate();
      return { status: 101, code: null };
    },
    (e: { status?: number; body?: string }) => ({ status: e.status, code: (JSON.parse(e.body || '{}') as { error?: { code?: unknown } }).error?.code }),
  );
}

async function until(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

t.test('a misbehaving upstream gets the gateway\'s own answers', async (t) => {
  const s = await startWebSocketStack({ routes: ROUTES });
  t.teardown(() => s.close());
  t.same(await refusal(s, '/ws/wrong-protocol'), { status: 502, code: 'GW_ERR_UPSTREAM_PROTOCOL' }, 'a 101 to another protocol');
  t.same(await refusal(s, '/ws/garbage'), { status: 502, code: 'GW_ERR_UPSTREAM_PROTOCOL' }, 'an answer that is not HTTP');
  t.same(await refusal(s, '/ws/silent'), { status: 504, code: 'GW_ERR_UPSTREAM_TIMEOUT' }, 'no answer within routes[].timeouts.response');
  t.match(s.gw.logs.find((l) => l.msg === 'upstream failed' && l['code'] === 'GW_ERR_UPSTREAM_TIMEOUT'), { websocket: true, path: '/ws/silent' });

  // An upstream that drops the tunnel: the client's side closes too, and the upstream is the closer.
  const ws = await s.connect(s.pki.clients['billing']!, '/ws/hangup');
  t.equal(await closed(ws), 1006, 'the client side closes with the upstream side');
  await until(() => s.gw.logs.some((l) => l.msg === 'request' && l['path'] === '/ws/hangup'));
  t.match(s.gw.logs.find((l) => l.msg === 'request' && l['path'] === '/ws/hangup'), { status: 101, closedBy: 'upstream' });
});

t.test('a client that leaves before the upstream answered is logged as 499', async (t) => {
  const s = await startWebSocketStack({ routes: ROUTES });
  t.teardown(() => s.close());
  const billing = s.pki.clients['billing']!;
  const sock = tls.connect({ host: '127.0.0.1', port: s.gw.port, servername: 'localhost', ca: s.pki.root.certPem, cert: billing.chainPem, key: billing.keyPem });
  sock.on('error', () => undefined);
  await new Promise((r) => sock.once('secureConnect', r));
  sock.write('GET /ws/silent HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n');
  await until(() => s.upstream.upgrades.length === 1);
  sock.destroy();
  await until(() => s.gw.logs.some((l) => l.msg === 'request' && l['status'] === 499));
  t.match(s.gw.logs.find((l) => l.msg === 'request' && l['status'] === 499), { websocket: true, clientAborted: true, path: '/ws/silent' });
});

t.test("the route's rate limit refuses an upgrade before the upstream sees it", async (t) => {
  const s = await startWebSocketStack({ routes: ROUTES });
  t.teardown(() => s.close());
  const first = await s.connect(s.pki.clients['billing']!, '/limited/a');
  t.same(await refusal(s, '/limited/b'), { status: 429, code: 'GW_ERR_RATE_LIMITED' });
  t.equal(s.upstream.upgrades.length, 1, 'only the first upgrade reached the upstream');
  first.close();
  await closed(first);
});

t.test('open tunnels count against limits.maxRequests', async (t) => {
  const s = await startWebSocketStack({ upstreamExtra: '    limits: { maxRequests: 1 }' });
  t.teardown(() => s.close());
  const first = await s.connect(s.pki.clients['billing']!, '/ws/one');
  t.same(await refusal(s, '/ws/two'), { status: 503, code: 'GW_ERR_UPSTREAM_OVERLOADED' }, 'a second tunnel is over the limit');
  t.equal(s.upstream.upgrades.length, 1);
  first.close();
  await closed(first);
  await until(() => s.gw.logs.some((l) => l.msg === 'request' && l['path'] === '/ws/one'));
  const again = await s.connect(s.pki.clients['billing']!, '/ws/three');
  again.send('room again');
  t.equal((await nextMessage(again)).toString(), 'room again', 'once the first closed, a new one opens');
  again.close();
  await closed(again);
});

t.test('a target that refuses connections is failed over, as for plain requests', async (t) => {
  const dead = net.createServer();
  await new Promise<void>((r) => dead.listen(0, '127.0.0.1', () => r()));
  const deadPort = (dead.address() as net.AddressInfo).port;
  await new Promise((r) => dead.close(r));
  const s = await startWebSocketStack({ upstream: (port) => `targets: [https://127.0.0.1:${deadPort}, https://127.0.0.1:${port}]\nbalance: round-robin` });
  t.teardown(() => s.close());
  for (const p of ['/ws/a', '/ws/b', '/ws/c']) {
    const ws = await s.connect(s.pki.clients['billing']!, p);
    ws.send(p);
    t.equal((await nextMessage(ws)).toString(), p, `${p} reached the live target`);
    ws.close();
    await closed(ws);
  }
  t.match(await s.gw.gateway.metrics.registry.metrics(), /mtls_gateway_upstream_retries_total\{upstream="orders",reason="connect-failure"\} [1-9]/);
});
