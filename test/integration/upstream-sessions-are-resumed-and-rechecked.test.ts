// Upstream TLS sessions are resumed (upstreams.X.tls.sessionResumption, on by default): once the
// gateway has connected to a target, its later connections resume that session, as the upstream
// itself sees it (isSessionReused on its side), and still carry requests; with
// sessionResumption: false every connection is a full handshake, as before. A resumed connection is
// judged again before use (test/security/resumed-upstream-sessions-cannot-outrun-revocation).
import http2 from 'node:http2';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import t, { type Test } from 'tap';
import { gatewayYaml, makeTestPki, request, startGateway, tempDir, writePkiFiles, type TestPki } from '../helpers/harness.js';

/** An mTLS upstream that closes every connection after its answer and records each handshake's resumption. */
async function startClosingUpstream(pki: TestPki) {
  const resumed: boolean[] = [];
  const srv = https.createServer({ key: pki.upstreams['orders']!.keyPem, cert: pki.upstreams['orders']!.chainPem, ca: pki.caBundlePem, requestCert: true, rejectUnauthorized: true }, (req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/plain', connection: 'close' });
      res.end(`resumed=${(req.socket as TLSSocket).isSessionReused()}`);
    });
  });
  srv.on('secureConnection', (s: TLSSocket) => resumed.push(s.isSessionReused()));
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    port: (srv.address() as AddressInfo).port,
    resumed,
    close: () => new Promise<void>((r) => (srv.closeAllConnections(), srv.close(() => r()))),
  };
}

async function stack(t: Test, upstreamExtra: string) {
  const pki = await makeTestPki();
  const { dir, cleanup } = await tempDir();
  await writePkiFiles(pki, dir);
  const upstream = await startClosingUpstream(pki);
  const gw = await startGateway({ dir, yaml: gatewayYaml({ upstreamPort: upstream.port, upstreamExtra }) });
  t.teardown(async () => {
    await gw.close();
    await upstream.close();
    await cleanup();
  });
  const send = (p: string) => request(gw.port, pki.clients['billing']!, pki.root.certPem, { path: p });
  return { upstream, send, gw };
}

t.test('later connections to a target resume its TLS session (the default)', async (t) => {
  const s = await stack(t, '');
  const bodies: string[] = [];
  for (let i = 0; i < 4; i++) {
    const r = await s.send(`/orders/${i}`);
    t.equal(r.status, 200, `request ${i} answered`);
    bodies.push(r.body);
  }
  t.same(s.upstream.resumed, [false, true, true, true], 'one full handshake, then every new connection resumed');
  t.same(bodies, ['resumed=false', 'resumed=true', 'resumed=true', 'resumed=true'], 'requests ride the resumed connections');
});

t.test('protocol: http2: a new HTTP/2 session to the target resumes the TLS session', async (t) => {
  const pki = await makeTestPki();
  const { dir, cleanup } = await tempDir();
  await writePkiFiles(pki, dir);
  const resumed: boolean[] = [];
  const srv = http2.createSecureServer({ key: pki.upstreams['orders']!.keyPem, cert: pki.upstreams['orders']!.chainPem, ca: pki.caBundlePem, requestCert: true, rejectUnauthorized: true });
  srv.on('stream', (stream) => {
    stream.respond({ ':status': 200, 'content-type': 'text/plain' });
    stream.end(`resumed=${(stream.session!.socket as TLSSocket).isSessionReused()}`);
    // GOAWAY after each answer: the next request needs a new session, so a new connection.
    stream.session!.close();
  });
  srv.on('secureConnection', (s: TLSSocket) => resumed.push(s.isSessionReused()));
  const sessionsClosed: Promise<unknown>[] = [];
  srv.on('session', (session) => sessionsClosed.push(new Promise((r) => session.once('close', r))));
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as AddressInfo).port;
  const gw = await startGateway({ dir, yaml: gatewayYaml({ upstreamPort: port, upstream: `url: https://127.0.0.1:${port}\nprotocol: http2` }) });
  t.teardown(async () => {
    await gw.close();
    await new Promise<void>((r) => srv.close(() => r()));
    await cleanup();
  });
  const bodies: string[] = [];
  for (let i = 0; i < 3; i++) {
    const r = await request(gw.port, pki.clients['billing']!, pki.root.certPem, { path: `/orders/${i}` });
    t.equal(r.status, 200);
    bodies.push(r.body);
    // The gateway has seen the GOAWAY and closed that session before the next request is sent.
    await sessionsClosed.at(-1);
  }
  t.same(resumed, [false, true, true]);
  t.same(bodies, ['resumed=false', 'resumed=true', 'resumed=true']);
});

t.test('sessionResumption: false: every connection is a full handshake', async (t) => {
  const s = await stack(t, '      sessionResumption: false');
  for (let i = 0; i < 3; i++) t.equal((await s.send(`/orders/${i}`)).status, 200);
  t.same(s.upstream.resumed, [false, false, false]);
});

t.test('hostile values for sessionResumption are refused at load', async (t) => {
  const pki = await makeTestPki();
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  await writePkiFiles(pki, dir);
  for (const v of ['"yes"', '1', 'null', '[]', '{}', `"${'x'.repeat(100_000)}"`]) {
    await t.rejects(startGateway({ dir, yaml: gatewayYaml({ upstreamPort: 1, upstreamExtra: `      sessionResumption: ${v}` }) }), /sessionResumption/, `sessionResumption: ${v.slice(0, 20)}`);
  }
  await t.rejects(startGateway({ dir, yaml: gatewayYaml({ upstreamPort: 1, upstreamExtra: '      sessionResumption: true\n      sessionResumption: false' }) }), /sessionResumption|duplicate|Map keys must be unique/i, 'a duplicated key');
});
