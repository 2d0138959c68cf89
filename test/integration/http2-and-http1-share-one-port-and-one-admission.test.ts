// One port, two protocols: a client that negotiates h2 by ALPN is judged exactly like an HTTP/1.1
// client (certificate, revocation per request, path normalization, Host/:authority, policy) and
// gets the same answers and codes; admitted streams reach the HTTP/1.1 upstream with XFCC; a
// revocation or a drain closes an HTTP/2 connection with GOAWAY; listen.http2: false offers only
// HTTP/1.1.
import path from 'node:path';
import { constants } from 'node:http2';
import tls from 'node:tls';
import t from 'tap';
import { createCrl } from '../../src/pki/dev-pki.js';
import { replaceFile, waitForGeneration } from '../helpers/crl-files.js';
import { goawayOf, h2connect, h2request } from '../helpers/h2-client.js';
import { makeTestPki, request, startStack } from '../helpers/harness.js';

t.test('an h2 client gets the same admission and answers as HTTP/1.1 on the same port', async (t) => {
  const pki = await makeTestPki();
  const s = await startStack({ pki, crlYaml: '  crl: [./root.crl.pem, ./intermediate.crl.pem]\n  revocation: { pollInterval: 100ms }' });
  t.teardown(() => s.close());
  const ca = pki.root.certPem;

  const billing = await h2connect(s.gw.port, pki.clients['billing']!, ca);
  t.teardown(() => billing.destroy());
  t.equal((billing.socket as tls.TLSSocket).alpnProtocol, 'h2', 'ALPN chose h2');

  const ok = await h2request(billing, { path: '/orders/1?x=1' });
  t.equal(ok.status, 200, 'allowed');
  const echoed = ok.json as { url: string; headers: Record<string, string> };
  t.equal(echoed.url, '/orders/1?x=1');
  t.match(echoed.headers['x-forwarded-client-cert'], /URI=spiffe:\/\/example\.org\/ns\/default\/sa\/billing/, 'the upstream sees XFCC');
  t.equal(echoed.headers['x-forwarded-proto'], 'https');
  t.notOk(Object.keys(echoed.headers).some((h) => h.startsWith(':')), 'no pseudo-header reaches the HTTP/1.1 upstream');
  t.equal(ok.headers['x-request-id'], echoed.headers['x-request-id'], 'one request id both ways');
  t.match(
    s.gw.logs.find((l) => l['msg'] === 'request' && l['reqId'] === ok.headers['x-request-id']),
    { httpVersion: '2.0', method: 'GET', path: '/orders/1', route: 'orders', status: 200 },
    'the access record says the request came over HTTP/2',
  );

  // Many streams at once on the one connection.
  const many = await Promise.all(Array.from({ length: 20 }, (_, i) => h2request(billing, { path: `/orders/${i}` })));
  t.same(
    many.map((r) => r.status),
    Array(20).fill(200),
    'concurrent streams on one connection',
  );

  // A streamed request body (no content-length: HTTP/2 need not announce it).
  const body = Buffer.alloc(512 * 1024, 7);
  const post = await h2request(billing, { method: 'POST', path: '/orders/upload', body });
  t.equal(post.status, 200);
  t.equal((post.json as { bodyBytes: number }).bodyBytes, body.length, 'the whole body arrived upstream');

  const denied = await h2request(billing, { path: '/admin/x' });
  t.equal(denied.status, 403);
  t.match(denied.json, { error: { code: 'GW_ERR_POLICY_DENIED' } });
  t.match(s.gw.logs.find((l) => l['msg'] === 'request refused' && l['reqId'] === denied.headers['x-request-id']), { httpVersion: '2.0', code: 'GW_ERR_POLICY_DENIED' }, 'and so does the refusal record');
  const noRoute = await h2request(billing, { path: '/nowhere' });
  t.equal(noRoute.status, 404);
  t.match(noRoute.json, { error: { code: 'GW_ERR_ROUTE_NOT_FOUND' } });
  // Path tricks: the same answer as over HTTP/1.1, and never the denied route.
  for (const trick of ['/orders/../admin/x', '/orders/%2e%2e/admin/x', '/orders/..%2fadmin', '//admin/x', '/orders/%00', '/orders/%2F..%2Fadmin', '/orders;/../admin', '/orders/x%5c..%5cadmin']) {
    const r = await h2request(billing, { path: trick });
    const h1 = await s.send(pki.clients['billing']!, { path: trick });
    t.equal(r.status, h1.status, `path trick ${trick}: ${r.status} over h2 as over HTTP/1.1`);
    t.same((r.json as { error?: { code?: string } } | undefined)?.error?.code, (h1.json as { error?: { code?: string } } | undefined)?.error?.code);
    t.ok(r.status === 400 || r.status === 403 || r.status === 404, 'refused');
  }
  for (const malformed of ['orders/1', '*', 'http://localhost/orders/1']) {
    const r = await h2request(billing, { path: malformed });
    t.equal(r.rstCode, constants.NGHTTP2_PROTOCOL_ERROR, `:path ${malformed} is a malformed stream (RFC 9113 8.3.1): reset, not answered`);
  }
  const encoded = await h2request(billing, { path: '/orders/..%2fadmin' });
  t.equal(encoded.status, 400);
  t.match(encoded.json, { error: { code: 'GW_ERR_PATH_INVALID' } });
  const mismatch = await h2request(billing, { path: '/orders/1', headers: { ':authority': 'localhost', host: 'other.example' } });
  t.equal(mismatch.status, 400, ':authority and Host that disagree');
  t.match(mismatch.json, { error: { code: 'GW_ERR_HOST_INVALID' } });
  const badAuthority = await h2request(billing, { path: '/orders/1', headers: { ':authority': 'user@localhost' } });
  // Node 24's nghttp2 resets the stream itself; on Node 20 the gateway's Host check answers 400.
  t.ok(badAuthority.status === 400 || badAuthority.rstCode === constants.NGHTTP2_PROTOCOL_ERROR, `userinfo in :authority is refused (${badAuthority.status || 'reset ' + badAuthority.rstCode})`);
  const connect = await h2request(billing, { method: 'CONNECT', headers: { ':authority': 'localhost:443' } });
  t.equal(connect.status, 501, 'CONNECT is refused');
  t.match(connect.json, { error: { code: 'GW_ERR_METHOD_NOT_SUPPORTED' } });
  t.equal(billing.destroyed, false, 'refusals end streams, not the connection');
  const still = await h2request(billing, { path: '/orders/2' });
  t.equal(still.status, 200, 'the connection keeps serving');

  // The same port still speaks HTTP/1.1.
  const h1 = await s.send(pki.clients['billing']!, { path: '/orders/1' });
  t.equal(h1.status, 200);
  t.not(h1.socket.alpnProtocol, 'h2', 'a client that offers no ALPN gets HTTP/1.1');

  // No certificate: 401 on the stream, then GOAWAY once it is answered.
  const anonymous = await h2connect(s.gw.port, null, ca);
  t.teardown(() => anonymous.destroy());
  const anonGone = goawayOf(anonymous);
  const none = await h2request(anonymous, { path: '/orders/1' });
  t.equal(none.status, 401);
  t.match(none.json, { error: { code: 'GW_ERR_CLIENT_CERT_MISSING' } });
  t.equal(await anonGone, constants.NGHTTP2_NO_ERROR, 'an untrusted connection is closed with GOAWAY after its answer');

  // A certificate revoked before the connection.
  const revoked = await h2connect(s.gw.port, pki.clients['revoked']!, ca);
  t.teardown(() => revoked.destroy());
  const r = await h2request(revoked, { path: '/orders/1' });
  t.equal(r.status, 401);
  t.match(r.json, { error: { code: 'GW_ERR_CLIENT_CERT_REVOKED' } });

  // A revocation while the h2 connection is open: GOAWAY INADEQUATE_SECURITY, at once.
  const ops = await h2connect(s.gw.port, pki.clients['ops-admin']!, ca);
  t.teardown(() => ops.destroy());
  t.equal((await h2request(ops, { path: '/orders/1' })).status, 200);
  const billingGone = goawayOf(billing);
  const from = s.gw.gateway.revocation.get('clients')!.index.generation;
  const crl = await createCrl(pki.intermediate, { revoked: [{ serial: pki.clients['revoked']!.serial }, { serial: pki.clients['billing']!.serial }], crlNumber: 2 });
  await replaceFile(path.join(s.dir, 'intermediate.crl.pem'), crl.pem);
  await waitForGeneration(s.gw.gateway, 'clients', from);
  t.equal(await billingGone, constants.NGHTTP2_INADEQUATE_SECURITY, 'the revoked client gets GOAWAY INADEQUATE_SECURITY');
  t.ok(billing.destroyed || billing.closed, 'and its connection is gone');
  t.equal((await h2request(ops, { path: '/orders/2' })).status, 200, 'an unrevoked h2 connection carries on');
  t.ok(s.gw.logs.some((l) => l['event'] === 'client-revoked' && l['when'] === 'live-connection'), 'the closure is logged');

  // A reload keeps offering h2 (setSecureContext must not reset ALPN).
  const reload = await s.gw.gateway.reload('test');
  t.equal(reload.result, 'success');
  const after = await h2connect(s.gw.port, pki.clients['ops-admin']!, ca);
  t.teardown(() => after.destroy());
  t.equal((after.socket as tls.TLSSocket).alpnProtocol, 'h2', 'h2 after a reload');
  t.equal((await h2request(after, { path: '/orders/3' })).status, 200);
});

t.test('a drain sends GOAWAY and lets the streams in flight finish', async (t) => {
  const pki = await makeTestPki();
  let release: (() => void) | null = null;
  const held = new Promise<void>((r) => (release = r));
  const s = await startStack({
    pki,
    upstreamHandler: (req, res) => {
      req.resume();
      if (req.url === '/orders/slow') void held.then(() => res.end('slow done'));
      else res.end('fast');
    },
  });
  t.teardown(() => s.close());
  const c = await h2connect(s.gw.port, pki.clients['billing']!, pki.root.certPem);
  t.teardown(() => c.destroy());
  const slow = h2request(c, { path: '/orders/slow' });
  // The slow stream is with the upstream before the drain starts.
  while (s.upstream.seen.length === 0) await new Promise((r) => setTimeout(r, 10));
  const goaway = goawayOf(c);
  const drained = s.gw.gateway.drain('SIGTERM');
  t.equal(await goaway, constants.NGHTTP2_NO_ERROR, 'GOAWAY NO_ERROR');
  release!();
  const r = await slow;
  t.equal(r.status, 200);
  t.equal(r.body, 'slow done', 'the stream in flight finished');
  await drained;
});

t.test('listen.http2: false offers HTTP/1.1 only', async (t) => {
  const pki = await makeTestPki();
  const s = await startStack({ pki, extra: '' });
  t.teardown(() => s.close());
  // The stack above serves h2; rebuild its config with http2 off and restart on another port.
  const yaml = (await import('node:fs/promises')).readFile(path.join(s.dir, 'gateway.yaml'), 'utf8');
  const { startGateway } = await import('../helpers/harness.js');
  const off = await startGateway({ dir: s.dir, file: path.join(s.dir, 'gateway-h1.yaml'), yaml: (await yaml).replace('listen: { host: 127.0.0.1, port: 0 }', 'listen: { host: 127.0.0.1, port: 0, http2: false }') });
  t.teardown(() => off.close());
  const alpn = await new Promise<string | false | null>((resolve, reject) => {
    const c = pki.clients['billing']!;
    const sock = tls.connect({ host: '127.0.0.1', port: off.port, servername: 'localhost', ca: pki.root.certPem, cert: c.chainPem, key: c.keyPem, ALPNProtocols: ['h2', 'http/1.1'] }, () => {
      resolve(sock.alpnProtocol);
      sock.destroy();
    });
    sock.on('error', reject);
  });
  t.not(alpn, 'h2', 'h2 is not negotiated');
  const h1 = await request(off.port, pki.clients['billing']!, pki.root.certPem, { path: '/orders/1' });
  t.equal(h1.status, 200, 'HTTP/1.1 is served');
});
