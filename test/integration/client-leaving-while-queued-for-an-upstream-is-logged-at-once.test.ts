// A request waiting for a free upstream connection (every one of the upstream's `connections` is
// busy) whose client goes away gives its place up at once: it is logged as 499 clientAborted while
// the upstream is still busy, it never reaches the upstream, and the next request gets the freed
// connection without waiting behind it.
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { startStack } from '../helpers/harness.js';
import { rawExchange } from '../helpers/raw-exchange.js';

async function until(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

t.test('a queued request whose client leaves is logged as 499 without waiting for a slot', async (t) => {
  let release: () => void = () => undefined;
  const held = new Promise<void>((r) => (release = r));
  const s = await startStack({
    crl: false,
    upstreamExtra: '    connections: 1\n    timeouts: { queue: 30s }',
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
  await until('the slow request to reach the upstream', () => s.upstream.seen.length === 1);

  // Waits in the queue; our side gives up after 500 ms and closes the connection.
  const gaveUp = await rawExchange(s.gw.port, { ca: s.pki.root.certPem, cert: billing.chainPem, key: billing.keyPem }, 'GET /orders/queued HTTP/1.1\r\nHost: localhost\r\n\r\n', { endAfterWrite: false, timeoutMs: 500 });
  t.notOk(gaveUp.closedByServer, 'control: the gateway had not answered; the client left');
  t.same(gaveUp.statuses, []);
  await until('the 499 record', () => s.gw.logs.some((l) => l.msg === 'request' && l['path'] === '/orders/queued'));
  t.match(s.gw.logs.find((l) => l.msg === 'request' && l['path'] === '/orders/queued'), { status: 499, clientAborted: true, upstream: 'orders' });
  t.equal(s.upstream.seen.length, 1, 'logged while the slow request still holds the only connection');

  release();
  t.equal((await slow).status, 200);
  const next = await s.send(billing, { path: '/orders/next' });
  t.equal(next.status, 200, 'the freed connection goes to the next request');
  t.same(s.upstream.seen.map((r) => r.url), ['/orders/slow', '/orders/next'], 'the abandoned request never reached the upstream');
});
