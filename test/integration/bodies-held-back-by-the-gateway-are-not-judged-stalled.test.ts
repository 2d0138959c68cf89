// server.bodyTimeout cuts clients that stop sending a body they announced, but a body that sits
// unread because the gateway is the slow side (the request waits for a free upstream connection)
// is not the client's fault: the timer re-arms while body bytes wait to be read, and a body that
// arrived whole is never judged stalled. Both requests below wait several body timeouts for the
// upstream and are then forwarded in full.
// Regression: the small body used to lose its connection without an answer. Once a request's body
// is complete Node emits the socket's 'timeout' on the response only, not on the request, and
// destroys the socket when nothing listens there.
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { echoHandler, startStack } from '../helpers/harness.js';

t.test('bodies waiting on an upstream slot outlive server.bodyTimeout', async (t) => {
  let release: () => void = () => undefined;
  const held = new Promise<void>((r) => (release = r));
  const s = await startStack({
    crl: false,
    extra: 'server: { bodyTimeout: 200ms }',
    upstreamExtra: '    connections: 1\n    timeouts: { queue: 30s }',
    upstreamHandler: (req, res, seen) => {
      if (req.url === '/orders/slow') void held.then(() => echoHandler(req, res, seen));
      else echoHandler(req, res, seen);
    },
  });
  t.teardown(() => {
    release();
    return s.close();
  });
  const billing = s.pki.clients['billing']!;
  const slow = s.send(billing, { path: '/orders/slow' });
  while (s.upstream.seen.length === 0) await sleep(20);

  const big = Buffer.alloc(2 * 1024 * 1024, 0x62);
  // More than the socket and stream buffers take: part of it waits unread in the gateway.
  const large = s.send(billing, { method: 'POST', path: '/orders/large', body: big, headers: { 'content-type': 'application/octet-stream' } });
  // Small enough to arrive whole while it waits.
  const small = s.send(billing, { method: 'POST', path: '/orders/small', body: 'ten bytes!', headers: { 'content-type': 'text/plain' } });
  await sleep(1_200); // six body timeouts
  t.notOk(s.gw.logs.some((l) => l['code'] === 'GW_ERR_REQUEST_TIMEOUT'), 'nothing judged stalled while waiting');

  release();
  const [slowRes, largeRes, smallRes] = await Promise.all([slow, large, small]);
  t.equal(slowRes.status, 200);
  t.equal(largeRes.status, 200, 'the large body was forwarded');
  t.match(largeRes.json, { url: '/orders/large', bodyBytes: big.length }, 'all of it');
  t.equal(smallRes.status, 200, 'the small body was forwarded');
  t.match(smallRes.json, { url: '/orders/small', bodyBytes: 10 });
  t.notOk(s.gw.logs.some((l) => l['code'] === 'GW_ERR_REQUEST_TIMEOUT'), 'no 408 at any point');
});
