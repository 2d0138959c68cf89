// Pins a denial-of-service defence: clients that announce a request body and then send none (or
// send a little and stall) used to hold the upstream's pooled connections indefinitely, and every
// other client of that upstream waited with them. A body now takes an upstream connection only
// once it starts to arrive, a stalled body is cut after server.bodyTimeout (408), and a request
// that cannot get an upstream connection within timeouts.queue gets 503 instead of waiting.
import t from 'tap';
import { startStack } from '../helpers/harness.js';
import { rawExchange } from '../helpers/raw-exchange.js';

t.test('stalled uploads do not hold upstream connections; other clients are served', async (t) => {
  const s = await startStack({ upstreamExtra: '    connections: 2\n    timeouts: { queue: 10s }', extra: 'server: { bodyTimeout: 1s }' });
  t.teardown(() => s.close());
  const billing = s.pki.clients['billing']!;
  const creds = { ca: s.pki.root.certPem, cert: billing.chainPem, key: billing.keyPem };
  // Heads announcing a body, no body: more of them than the upstream has connections.
  const silent = Array.from({ length: 6 }, () => rawExchange(s.gw.port, creds, 'POST /orders/up HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n', { endAfterWrite: false, timeoutMs: 8_000 }));
  // Bodies that start, then stall: these hold connections until the body timeout cuts them.
  const trickle = Array.from({ length: 2 }, () => rawExchange(s.gw.port, creds, 'POST /orders/up HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nabc', { endAfterWrite: false, timeoutMs: 8_000 }));
  await new Promise((r) => setTimeout(r, 200));
  const started = Date.now();
  const other = await s.send(billing, { path: '/orders/other' });
  t.equal(other.status, 200, "another client's GET is served while the uploads stall");
  t.ok(Date.now() - started < 5_000, `served within the body timeout's reach (${Date.now() - started} ms)`);
  const outcomes = await Promise.all([...silent, ...trickle]);
  for (const o of outcomes) {
    t.ok(o.closedByServer, 'the gateway closed the stalled connection itself');
    t.ok(o.statuses.length === 0 || (o.statuses.length === 1 && o.statuses[0] === 408), `a stalled upload gets 408 or a closed connection (got ${o.statuses.join(',') || 'close'})`);
  }
  t.ok(outcomes.filter((o) => o.statuses[0] === 408).length >= 6, 'uploads that never sent a byte get 408');
  t.ok(s.gw.logs.some((l) => l['code'] === 'GW_ERR_REQUEST_TIMEOUT' && l['reason'] === 'body-stalled'), 'the stall is logged with its reason');
  t.equal((await s.send(billing, { path: '/orders/after' })).status, 200, 'the upstream pool is usable afterwards');
});

t.test('a request that cannot get an upstream connection in time gets 503, not a wait', async (t) => {
  let releaseSlow: () => void = () => undefined;
  const slowDone = new Promise<void>((r) => (releaseSlow = r));
  const s = await startStack({
    upstreamExtra: '    connections: 1\n    timeouts: { queue: 300ms }',
    upstreamHandler: (req, res) => {
      if (req.url === '/orders/slow') void slowDone.then(() => res.end('slow'));
      else res.end('fast');
    },
  });
  t.teardown(() => s.close());
  const billing = s.pki.clients['billing']!;
  const slow = s.send(billing, { path: '/orders/slow' });
  await new Promise((r) => setTimeout(r, 200));
  const started = Date.now();
  const queued = await s.send(billing, { path: '/orders/fast' });
  t.equal(queued.status, 503);
  t.match(queued.json, { error: { code: 'GW_ERR_UPSTREAM_OVERLOADED' } });
  t.equal(queued.headers['retry-after'], '1');
  t.ok(Date.now() - started < 3_000, 'answered after the queue bound, not after the slow request');
  releaseSlow();
  t.equal((await slow).status, 200, 'the request holding the connection completes');
  t.equal((await s.send(billing, { path: '/orders/fast' })).status, 200, 'the freed connection serves the next request');
});
