// The keep-alive race, through the whole gateway: an upstream closes a connection it kept alive
// just as the gateway sends the next request on it, without answering. With server.engine: lean
// the gateway's own client sends an idempotent request without a body once more, on a new
// connection, and the client gets its answer; a POST is never sent twice (502
// GW_ERR_UPSTREAM_RESET, and the record says the connection was a reused one). undici's Pool
// (server.engine: node) sends nothing twice: the GET gets the 502 too (recorded here, not required
// of it). Real mTLS on loopback; GW_TEST_ENGINE picks the engine the harness starts.
import type { TLSSocket } from 'node:tls';
import t from 'tap';
import { startStack } from '../helpers/harness.js';

t.test('a kept-alive upstream connection closed under a request', async (t) => {
  // Connections that answered once close under the next request whose path contains "race".
  const answered = new WeakMap<TLSSocket, number>();
  const s = await startStack({
    extra: 'server: { engine: lean }',
    upstreamHandler: (req, res, seen) => {
      const socket = req.socket as TLSSocket;
      const n = answered.get(socket) ?? 0;
      if (n > 0 && seen.url.includes('race')) {
        socket.end();
        return;
      }
      answered.set(socket, n + 1);
      req.resume();
      req.on('end', () => res.end(JSON.stringify({ url: seen.url })));
    },
  });
  t.teardown(() => s.close());
  const engine = process.env['GW_TEST_ENGINE'] ?? 'lean';
  const billing = s.pki.clients['billing']!;

  t.equal((await s.send(billing, { path: '/orders/first' })).status, 200, 'the upstream connection is opened and kept');
  const get = await s.send(billing, { path: '/orders/race-get' });
  const seenGet = s.upstream.seen.filter((r) => r.url === '/orders/race-get').length;
  if (engine === 'lean') {
    t.equal(get.status, 200, 'lean: the GET is answered');
    t.equal(seenGet, 2, 'lean: it reached the upstream twice, the second time on a new connection');
    const record = s.gw.logs.find((l) => l['path'] === '/orders/race-get' && l.msg === 'request');
    t.match(record, { status: 200 }, 'lean: one record, 200');
    t.notOk(record?.['attempts'], 'lean: one attempt for the gateway (the client sent it again, not the retry policy)');
  } else {
    t.comment(`node engine: GET answered ${get.status} (undici sends nothing twice), seen ${seenGet} time(s)`);
  }

  t.equal((await s.send(billing, { path: '/orders/again' })).status, 200);
  const post = await s.send(billing, { path: '/orders/race-post', method: 'POST', body: 'x'.repeat(100) });
  t.equal(post.status, 502, 'a POST is not sent twice: 502');
  t.match(JSON.parse(post.body), { error: { code: 'GW_ERR_UPSTREAM_RESET' } });
  t.equal(s.upstream.seen.filter((r) => r.url === '/orders/race-post').length, 1, 'the POST reached the upstream once');
  const failed = s.gw.logs.find((l) => l.msg === 'upstream failed' && String(l['path']).includes('race-post'));
  t.match(failed, { upstreamError: 'UND_ERR_SOCKET' });
  if (engine === 'lean') t.match(failed?.['upstreamMessage'], /^other side closed \(FIN on request \d+ on a kept-alive connection idle \d+ ms before it; (TLS session resumed; )?request (partly )?sent\)$/, 'lean: the record says the connection was a reused one');
  t.equal((await s.send(billing, { path: '/orders/after' })).status, 200, 'served after');
});
