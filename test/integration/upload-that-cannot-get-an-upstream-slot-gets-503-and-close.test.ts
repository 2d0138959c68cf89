// A request with a body that cannot get an upstream connection within timeouts.queue gets 503
// GW_ERR_UPSTREAM_OVERLOADED (retry-after: 1) like any other, and because the rest of its body was
// never read, the gateway closes the connection after answering instead of reading it to keep the
// connection alive. Nothing reaches the upstream.
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { startStack } from '../helpers/harness.js';
import { firstJsonBody, rawExchange } from '../helpers/raw-exchange.js';

t.test('an upload queued past timeouts.queue gets 503 and the connection is closed', async (t) => {
  let release: () => void = () => undefined;
  const held = new Promise<void>((r) => (release = r));
  const s = await startStack({
    crl: false,
    upstreamExtra: '    connections: 1\n    timeouts: { queue: 300ms }',
    upstreamHandler: (req, res) => {
      if (req.url === '/orders/slow') void held.then(() => res.end('slow'));
      else res.end('fast');
    },
  });
  t.teardown(() => {
    release();
    return s.close();
  });
  const billing = s.pki.clients['billing']!;
  const slow = s.send(billing, { path: '/orders/slow' });
  while (s.upstream.seen.length === 0) await sleep(20);

  // 1,000 of 100,000 announced bytes: the body has started (so it queues for a slot) and is far
  // from complete when the queue bound passes.
  const head = 'POST /orders/upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\n';
  const started = Date.now();
  const out = await rawExchange(s.gw.port, { ca: s.pki.root.certPem, cert: billing.chainPem, key: billing.keyPem }, head + 'x'.repeat(1_000), { endAfterWrite: false, timeoutMs: 10_000 });
  t.same(out.statuses, [503]);
  t.match(firstJsonBody(out.text), { error: { code: 'GW_ERR_UPSTREAM_OVERLOADED' } });
  t.match(out.text, /\r\nretry-after: 1\r\n/i);
  t.match(out.text, /\r\nconnection: close\r\n/i);
  t.ok(out.closedByServer, 'the gateway closed the connection');
  t.ok(Date.now() - started < 5_000, 'answered after the queue bound, not after the slow request');
  t.match(s.gw.logs.find((l) => l['code'] === 'GW_ERR_UPSTREAM_OVERLOADED'), { path: '/orders/upload', method: 'POST' });

  release();
  t.equal((await slow).status, 200);
  t.same(s.upstream.seen.map((r) => r.url), ['/orders/slow'], 'the upload never reached the upstream');
});
