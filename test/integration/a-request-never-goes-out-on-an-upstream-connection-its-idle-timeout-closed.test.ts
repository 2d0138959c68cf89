// A pooled upstream connection whose keep-alive idle time ran out is closed by the gateway; a
// request that comes in the same turn of the event loop, after that timer fired and before the
// socket's 'close' event (libuv runs close callbacks at the end of the turn), must not be sent on
// it. Found from outside (2026-12-05): with `server.engine: lean`, a chunked POST arriving just as
// the connection it was given reached its idle time got `502 GW_ERR_UPSTREAM_RESET` ("other side
// closed ... request sent"): the upstream never saw it, the gateway had closed that connection
// itself. Common in production, as an upstream's `Keep-Alive: timeout=5` (Node's default) makes
// the idle time 3 s. A GET was sent again on a new connection (the keep-alive race replay), a
// request with a body was lost.
//
// Made deterministic here: the test's timer is armed after the connection went idle, for the same
// duration plus a margin, and the thread is then blocked past both, so both fire in one timers
// phase, the connection's first. Both HTTP/1.1 clients (the gateway's own, the default; undici's
// Pool, `server.engine: node`), real mTLS over loopback.
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { UpstreamTarget } from '../../src/proxy/upstream-target.js';
import { Http1UpstreamClient } from '../../src/proxy/http1-upstream-client.js';
import { makeTestPki } from '../helpers/harness.js';
import { targetSettings } from '../helpers/target-settings.js';

const IDLE_MS = 300;

/** Blocks the thread (no timer, no I/O callback runs meanwhile). */
function block(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

t.test('a request never goes out on an upstream connection its idle timeout closed', async (t) => {
  const pki = await makeTestPki();
  const up = pki.upstreams['orders']!;
  let connections = 0;
  const server = https.createServer({ key: up.keyPem, cert: up.chainPem, ca: pki.caBundlePem, requestCert: true, rejectUnauthorized: true, keepAliveTimeout: 60_000 }, (req, res) => {
    let n = 0;
    req.on('data', (c: Buffer) => (n += c.length));
    req.on('end', () => res.writeHead(200, { 'content-length': String(String(n).length) }).end(String(n)));
  });
  server.on('secureConnection', () => connections++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  const origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;

  for (const client of ['lean', 'undici'] as const) {
    for (const method of ['POST', 'PUT', 'GET'] as const) {
      await t.test(`${client}, ${method}${method === 'GET' ? '' : ' with a body'}`, async (t) => {
        const target = new UpstreamTarget(origin, 1, targetSettings(pki, { protocol: 'http1', http1Client: client, keepAlive: IDLE_MS }));
        t.teardown(() => target.close());
        const opened = connections;
        const first = await target.pool.request({ method: 'GET', path: '/first' });
        t.equal(first.statusCode, 200);
        await first.body.text();
        // The connection idles from about now (the lean client's settling turn, undici's resume).
        await new Promise((r) => setTimeout(r, 20));

        const outcome = await new Promise<{ status: number; body: string } | { error: string }>((resolve) => {
          setTimeout(() => {
            target.pool
              .request({ method, path: '/second', ...(method === 'GET' ? {} : { body: Buffer.from('hello') }) })
              .then(async (r) => resolve({ status: r.statusCode, body: await r.body.text() }))
              .catch((err: Error & { code?: string }) => resolve({ error: `${err.code ?? ''} ${err.message}` }));
          }, IDLE_MS);
          block(IDLE_MS + 100);
        });
        t.same(outcome, { status: 200, body: method === 'GET' ? '0' : '5' }, 'answered by the upstream');
        t.equal(connections - opened, 2, 'the idle connection closed; the request went out on a new one');
        if (target.pool instanceof Http1UpstreamClient) t.equal(target.pool.stats.replayed, 0, 'not sent on the closed connection first (no replay)');
      });
    }
  }
});
