// WebSocket through the gateway: an admitted upgrade is tunnelled to the upstream over the
// gateway's own mTLS connection, with the gateway's identity headers, the subprotocol negotiated
// end to end, and large messages both ways without the gateway buffering them; an idle tunnel is
// closed; an upstream that refuses the upgrade has its answer relayed; an upstream that is down
// gets the gateway's own error. docs/websocket.md.
import { randomBytes } from 'node:crypto';
import { TLSSocket } from 'node:tls';
import t from 'tap';
import { WebSocket } from 'ws';
import { closed, nextMessage, startWebSocketStack } from '../helpers/websocket-stack.js';

t.test('echo through the gateway: identity headers, X-Forwarded-*, subprotocol, one access record', async (t) => {
  const s = await startWebSocketStack();
  t.teardown(() => s.close());
  const billing = s.pki.clients['billing']!;
  const ws = await s.connect(billing, '/ws/echo?room=1', { protocols: ['chat.v2', 'chat.v1'], headers: { 'x-request-id': 'ws-test-request-0001', 'x-forwarded-client-cert': 'By=forged' } });
  t.equal(ws.protocol, 'chat.v2', 'Sec-WebSocket-Protocol negotiated end to end');
  ws.send('hello');
  t.equal((await nextMessage(ws)).toString(), 'hello', 'echoed through the tunnel');
  ws.send(Buffer.from([0, 1, 2, 255]), { binary: true });
  t.same([...(await nextMessage(ws))], [0, 1, 2, 255], 'binary frames pass untouched');

  t.equal(s.upstream.upgrades.length, 1);
  const seen = s.upstream.upgrades[0]!;
  t.equal(seen.url, '/ws/echo?room=1');
  t.equal(seen.peerCN, 'gateway', 'the upstream saw the gateway\'s own client certificate');
  t.match(seen.headers['x-forwarded-client-cert'], /URI=spiffe:\/\/example\.org\/ns\/default\/sa\/billing/);
  t.notMatch(seen.headers['x-forwarded-client-cert'], /forged/, 'the client\'s XFCC was replaced');
  t.equal(seen.headers['x-forwarded-proto'], 'https');
  t.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
  t.equal(seen.headers['x-forwarded-host'], `127.0.0.1:${s.gw.port}`);
  t.equal(seen.headers['x-request-id'], 'ws-test-request-0001');
  t.equal(seen.headers['upgrade'], 'websocket');
  t.equal(seen.headers['connection'], 'Upgrade');
  t.equal(seen.headers['sec-websocket-protocol'], 'chat.v2,chat.v1', 'Sec-WebSocket-* unchanged (as the client wrote it)');
  t.ok(seen.headers['sec-websocket-key']);
  t.equal(seen.headers['sec-websocket-version'], '13');

  ws.close(1000, 'bye');
  t.equal(await closed(ws), 1000, 'the close handshake crosses the gateway');
  await t.resolves(until(() => s.gw.logs.some((l) => l.msg === 'request' && l['websocket'] === true)));
  const rec = s.gw.logs.find((l) => l.msg === 'request' && l['websocket'] === true)!;
  t.match(rec, { reqId: 'ws-test-request-0001', status: 101, route: 'ws', upstream: 'orders', decision: 'allow', path: '/ws/echo', closedBy: String });
  t.ok((rec['bytesIn'] as number) > 5 && (rec['bytesOut'] as number) > 5, 'bytes each way are recorded');
  t.type(rec['durationMs'], 'number');
  const metrics = await s.gw.gateway.metrics.registry.metrics();
  t.match(metrics, /mtls_gateway_requests_total\{route="ws",decision="allow",status="101"\} 1/);
});

t.test('a 10 MB message each way crosses the tunnel with bounded gateway buffers', async (t) => {
  const s = await startWebSocketStack();
  t.teardown(() => s.close());
  // The gateway's two tunnel sockets: the client's (as the server hands it to the upgrade
  // listeners) and the gateway's own connection to the upstream (the TLS socket whose peer is the
  // upstream's port; the test, the gateway and the upstream share this process).
  const upgraded: TLSSocket[] = [];
  s.gw.gateway.app.server.on('upgrade', (_req, socket) => upgraded.push(socket as TLSSocket));
  const ws = await s.connect(s.pki.clients['billing']!, '/ws/big');
  const toUpstream = (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles().filter((h): h is TLSSocket => h instanceof TLSSocket && h.remotePort === s.upstream.port);
  const gatewaySockets = () => [...upgraded, ...toUpstream];
  t.equal(gatewaySockets().length, 2, 'control: both tunnel sockets of the gateway are found');
  let most = 0;
  const sampler = setInterval(() => {
    for (const sock of gatewaySockets()) most = Math.max(most, sock.writableLength + sock.readableLength);
  }, 2);
  t.teardown(() => clearInterval(sampler));
  const message = randomBytes(10 * 1024 * 1024);
  ws.send(message);
  const echoed = await nextMessage(ws);
  clearInterval(sampler);
  t.equal(echoed.length, message.length);
  t.ok(echoed.equals(message), 'the 10 MB message came back intact');
  t.ok(most < 1024 * 1024, `the gateway never held more than ${most} bytes in a tunnel socket's buffers (message: 10 MB)`);
  ws.close();
  await closed(ws);
});

t.test('an idle tunnel is closed on both sides after routes[].timeouts.idle, and logged', async (t) => {
  const s = await startWebSocketStack();
  t.teardown(() => s.close());
  const ws = await s.connect(s.pki.clients['billing']!, '/idle/x');
  t.equal(s.upstream.upgrades[0]?.url, '/ws/idle/x', 'the route rewrite applies to the upgrade');
  ws.send('ping');
  await nextMessage(ws);
  const code = await closed(ws);
  t.equal(code, 1006, 'the gateway cut the idle tunnel (it does not speak WebSocket, so no close frame)');
  await t.resolves(until(() => s.upstream.sockets.every((u) => u.readyState === WebSocket.CLOSED)), 'the upstream side closed too');
  await t.resolves(until(() => s.gw.logs.some((l) => l.msg === 'request' && l['route'] === 'ws-idle')));
  t.match(s.gw.logs.find((l) => l.msg === 'request' && l['route'] === 'ws-idle'), { status: 101, closedBy: 'gateway', reason: 'idle', upstreamPath: '/ws/idle/x' });
});

t.test('an upstream that refuses the upgrade has its answer relayed; the connection closes', async (t) => {
  const s = await startWebSocketStack();
  t.teardown(() => s.close());
  const err = (await s.connect(s.pki.clients['billing']!, '/ws/refuse').catch((e: unknown) => e)) as { status?: number; headers?: Record<string, string>; body?: string };
  t.equal(err.status, 403, "the upstream's status reaches the client");
  t.equal(err.headers?.['x-upstream'], 'refused', "with the upstream's headers");
  t.equal(err.headers?.['connection'], 'close');
  t.ok(err.headers?.['x-request-id'], 'and the request id');
  t.equal(s.upstream.upgrades.length, 1);
  await t.resolves(until(() => s.gw.logs.some((l) => l.msg === 'request' && l['status'] === 403)));
  t.match(s.gw.logs.find((l) => l.msg === 'request' && l['status'] === 403), { websocket: true, route: 'ws', target: `https://127.0.0.1:${s.upstream.port}` });
});

t.test('an upstream that is down gets the gateway\'s own 502', async (t) => {
  const s = await startWebSocketStack();
  t.teardown(() => s.close());
  await s.upstream.close();
  const err = (await s.connect(s.pki.clients['billing']!, '/ws/echo').catch((e: unknown) => e)) as { status?: number; body?: string };
  t.equal(err.status, 502);
  t.match(JSON.parse(err.body ?? '{}'), { error: { code: 'GW_ERR_UPSTREAM_UNREACHABLE', requestId: String } });
  t.match(s.gw.logs.find((l) => l.msg === 'upstream failed'), { websocket: true, code: 'GW_ERR_UPSTREAM_UNREACHABLE', upstreamError: 'ECONNREFUSED' });
});

t.test('a drain waits for an open tunnel until server.drainTimeout, then cuts it on both sides', async (t) => {
  const s = await startWebSocketStack({ extra: 'server: { drainTimeout: 400ms }' });
  t.teardown(() => s.close());
  const ws = await s.connect(s.pki.clients['billing']!, '/ws/long');
  const drained = s.gw.gateway.drain('SIGTERM');
  ws.send('during the drain');
  t.equal((await nextMessage(ws)).toString(), 'during the drain', 'the tunnel keeps working while the drain waits');
  await drained;
  t.equal(await closed(ws), 1006, 'cut at the drain deadline');
  t.ok(s.gw.logs.some((l) => l['event'] === 'drain-timeout'), 'the drain timed out on the tunnel');
  await until(() => s.gw.logs.some((l) => l.msg === 'request' && l['path'] === '/ws/long'));
  t.match(s.gw.logs.find((l) => l.msg === 'request' && l['path'] === '/ws/long'), { status: 101, closedBy: 'gateway' });
  await t.resolves(until(() => s.upstream.sockets.every((u) => u.readyState === WebSocket.CLOSED)), 'the upstream side closed too');
});

t.test('a close without a drain cuts open tunnels at once', async (t) => {
  const s = await startWebSocketStack();
  t.teardown(() => s.close());
  const ws = await s.connect(s.pki.clients['billing']!, '/ws/open');
  await s.gw.gateway.close();
  t.equal(await closed(ws), 1006);
  await until(() => s.gw.logs.some((l) => l.msg === 'request' && l['path'] === '/ws/open'));
  t.match(s.gw.logs.find((l) => l.msg === 'request' && l['path'] === '/ws/open'), { status: 101, closedBy: 'gateway', reason: 'shutdown' });
});

/** Polls a condition (bounded), for effects that follow a close asynchronously. */
async function until(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
