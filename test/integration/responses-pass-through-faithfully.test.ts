// What the upstream answers reaches the client unchanged apart from hop-by-hop headers: status
// codes without bodies (204, 304, HEAD), chunked bodies, repeated headers such as set-cookie, and
// a client that goes away mid-response aborts the upstream request instead of leaking it.
import https from 'node:https';
import t from 'tap';
import { startStack } from '../helpers/harness.js';

t.test('responses pass through faithfully', async (t) => {
  let aborted = 0;
  const s = await startStack({
    upstreamHandler: (req, res) => {
      const url = req.url ?? '';
      if (url.startsWith('/orders/no-content')) return void res.writeHead(204, { 'x-kind': 'none' }).end();
      if (url.startsWith('/orders/not-modified')) return void res.writeHead(304, { etag: '"v1"' }).end();
      if (url.startsWith('/orders/cookies')) {
        res.writeHead(201, [['set-cookie', 'a=1'], ['set-cookie', 'b=2'], ['connection', 'x-hop'], ['x-hop', 'secret'], ['x-kept', 'yes']].flat());
        return void res.end('made');
      }
      if (url.startsWith('/orders/chunked')) {
        res.writeHead(200, { 'content-type': 'text/plain' });
        let i = 0;
        const tick = setInterval(() => {
          res.write(`chunk${i}\n`);
          if (++i === 5) {
            clearInterval(tick);
            res.end();
          }
        }, 5);
        return;
      }
      if (url.startsWith('/orders/slow-headers')) {
        // Answers only after the client has given up.
        const timer = setTimeout(() => res.writeHead(200, { 'content-length': '4' }).end('late'), 300);
        res.on('close', () => clearTimeout(timer));
        return;
      }
      if (url.startsWith('/orders/endless')) {
        res.writeHead(200);
        const tick = setInterval(() => res.write(Buffer.alloc(16 * 1024)), 5);
        res.on('close', () => {
          clearInterval(tick);
          aborted++;
        });
        return;
      }
      res.writeHead(200, { 'content-length': '5' }).end(req.method === 'HEAD' ? undefined : 'hello');
    },
  });
  t.teardown(() => s.close());
  const billing = s.pki.clients['billing']!;

  const noContent = await s.send(billing, { path: '/orders/no-content' });
  t.equal(noContent.status, 204);
  t.equal(noContent.headers['x-kind'], 'none');
  t.equal(noContent.body, '');
  const notModified = await s.send(billing, { path: '/orders/not-modified' });
  t.equal(notModified.status, 304);
  t.equal(notModified.headers['etag'], '"v1"');
  const get = await s.send(billing, { method: 'GET', path: '/orders/plain' });
  t.equal(get.body, 'hello');
  // The admin route has no method list; ops-admin may use it.
  const head = await s.send(s.pki.clients['ops-admin']!, { method: 'HEAD', path: '/admin/plain' });
  t.equal(head.status, 200);
  t.equal(head.headers['content-length'], '5', 'HEAD keeps the upstream\'s content-length');
  t.equal(head.body, '', 'and has no body');
  const cookies = await s.send(billing, { method: 'POST', path: '/orders/cookies', body: 'x' });
  t.equal(cookies.status, 201);
  t.same(cookies.headers['set-cookie'], ['a=1', 'b=2'], 'repeated headers stay separate');
  t.equal(cookies.headers['x-kept'], 'yes');
  t.equal(cookies.headers['x-hop'], undefined, 'a header the upstream named in Connection does not cross');
  const chunked = await s.send(billing, { path: '/orders/chunked' });
  t.equal(chunked.body, 'chunk0\nchunk1\nchunk2\nchunk3\nchunk4\n');

  // The client reads a little of an endless response, then leaves: the upstream request ends too.
  await new Promise<void>((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port: s.gw.port, servername: 'localhost', path: '/orders/endless', ca: s.pki.root.certPem, cert: billing.chainPem, key: billing.keyPem, agent: false },
      (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      },
    );
    req.on('error', () => undefined);
    req.on('close', () => resolve());
    req.end();
    setTimeout(() => reject(new Error('no data')), 10_000).unref();
  });
  for (let i = 0; i < 200 && aborted === 0; i++) await new Promise((r) => setTimeout(r, 25));
  t.equal(aborted, 1, 'the upstream request was closed when the client went away');
  t.ok(s.gw.logs.some((l) => l.msg === 'request' && l['path'] === '/orders/endless' && l['clientAborted'] === true), 'logged as a client abort');

  // Regression (found by the benchmark, which crashed the gateway): clients that leave before the
  // upstream's response starts cost their own requests only; the gateway logs them as 499 and keeps
  // serving. With a request body, undici detaches the aborted request from its socket
  // (req.socket = null), which the abort path once dereferenced.
  const leavers: Array<{ method: string; body?: string }> = [{ method: 'GET' }, { method: 'POST', body: 'x'.repeat(64 * 1024) }, { method: 'PUT', body: 'y'.repeat(10) }];
  for (const [i, l] of leavers.entries()) {
    await new Promise<void>((resolve) => {
      const req = https.request({ method: l.method, host: '127.0.0.1', port: s.gw.port, servername: 'localhost', path: `/orders/slow-headers/${i}`, ca: s.pki.root.certPem, cert: billing.chainPem, key: billing.keyPem, agent: false });
      req.on('error', () => undefined);
      req.on('close', () => resolve());
      req.end(l.body);
      setTimeout(() => req.destroy(), 100);
    });
  }
  const early = () => s.gw.logs.filter((l) => l.msg === 'request' && String(l['path']).startsWith('/orders/slow-headers') && l['status'] === 499 && l['clientAborted'] === true);
  for (let i = 0; i < 200 && early().length < leavers.length; i++) await new Promise((r) => setTimeout(r, 25));
  t.equal(early().length, leavers.length, 'each early leaver (GET, POST, PUT) is logged as 499');
  t.notOk(s.gw.logs.some((l) => l.msg === 'request failed'), 'no internal error on the way');
  const after = await s.send(billing, { path: '/orders/still-serving' });
  t.equal(after.status, 200, 'the gateway still serves after clients left before the response started');
});
