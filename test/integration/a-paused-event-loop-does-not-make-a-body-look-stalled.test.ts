// server.bodyTimeout judges the client, not the gateway. When the gateway's own event loop pauses
// (a long collection, a process starved of CPU) the socket's idle timer can fire first thing when
// the loop wakes, before the loop reads the bytes the client sent meanwhile: they sit in the
// kernel, unread, and the body looked stalled. Regression: on a busy CI machine a 2 MiB upload got
// 408 this way. The verdict now waits until the loop has read its sockets.
import { once } from 'node:events';
import tls from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import t, { type Test } from 'tap';
import { startStack } from '../helpers/harness.js';
import { statusesIn } from '../helpers/raw-exchange.js';

/** Blocks this process (gateway, client and upstream alike) for `ms`. */
function pauseEventLoop(ms: number): void {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    // busy: nothing else runs
  }
}

/**
 * The body timeout here: short, so the test is quick, but long enough that this process's own
 * scheduling on a loaded machine does not pass it between the two halves of a body (at 200 ms it
 * did, once, with three test runs and a busy loop on two cores: a true 408).
 */
const BODY_TIMEOUT_MS = 500;

/** A gateway with a short body timeout and one raw mTLS connection to it; `text()` is what came back. */
async function stackWithConnection(t: Test) {
  const s = await startStack({ extra: `server: { bodyTimeout: ${BODY_TIMEOUT_MS}ms }` });
  t.teardown(() => s.close());
  const billing = s.pki.clients['billing']!;
  const sock = tls.connect({ host: '127.0.0.1', port: s.gw.port, servername: 'localhost', ca: s.pki.root.certPem, cert: billing.chainPem, key: billing.keyPem });
  t.teardown(() => sock.destroy());
  await once(sock, 'secureConnect');
  let text = '';
  sock.on('data', (c: Buffer) => (text += c.toString('latin1')));
  return { s, sock, text: () => text };
}

t.test('bytes that arrived while the event loop was paused are not a stalled body', async (t) => {
  const { s, sock, text } = await stackWithConnection(t);
  sock.write('POST /orders/paused HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 20\r\n\r\nfirst half');
  // The request is being forwarded, its first half read and passed on.
  for (let i = 0; i < 250 && s.upstream.seen.length === 0; i++) await sleep(20);
  t.equal(s.upstream.seen.length, 1, 'the upstream has the request');
  await sleep(50);
  // The rest goes out and the loop pauses for three body timeouts before anyone reads it. Paused
  // from an immediate, so that the next turn of the loop starts with the timers, as it does after a
  // real pause between turns.
  await new Promise<void>((resolve) =>
    setImmediate(() => {
      sock.write('other half');
      pauseEventLoop(3 * BODY_TIMEOUT_MS);
      resolve();
    }),
  );
  for (let i = 0; i < 250 && statusesIn(text()).length === 0; i++) await sleep(20);
  t.same(statusesIn(text()), [200], 'the body was forwarded and answered');
  t.match(text(), /"bodyBytes":20/, 'all of it');
  t.notOk(s.gw.logs.some((l) => l['code'] === 'GW_ERR_REQUEST_TIMEOUT'), 'nothing judged stalled');
});

t.test('a client that really stops sending is still cut after the body timeout', async (t) => {
  const { s, sock, text } = await stackWithConnection(t);
  const closed = once(sock, 'close');
  const started = Date.now();
  sock.write('POST /orders/stalls HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 20\r\n\r\nfirst half');
  await Promise.race([closed, sleep(5_000)]);
  t.same(statusesIn(text()), [408], 'the stalled body gets 408');
  t.ok(Date.now() - started < 6 * BODY_TIMEOUT_MS, `within a few body timeouts (${Date.now() - started} ms)`);
  t.ok(s.gw.logs.some((l) => l['code'] === 'GW_ERR_REQUEST_TIMEOUT' && l['reason'] === 'body-stalled'), 'logged as a stalled body');
});
