// A client certificate's validity window is checked on every request, not only at the handshake:
// a keep-alive connection opened while the certificate was valid gets 401
// GW_ERR_CLIENT_CERT_EXPIRED once its notAfter has passed, and the connection is closed. Security:
// without the per-request check, a connection kept alive (or a resumed session) would outlive
// the certificate it was opened with. The gateway's clock is injected (buildGateway's `now`), so
// "later" needs no waiting; the handshake itself still runs on OpenSSL's real clock, on which the
// certificate is valid.
import https from 'node:https';
import type { TLSSocket } from 'node:tls';
import t from 'tap';
import { gatewayYaml, makeTestPki, request, startGateway, startUpstream, tempDir, writePkiFiles } from '../helpers/harness.js';

t.test('validity is re-checked per request against the gateway clock', async (t) => {
  const pki = await makeTestPki();
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  await writePkiFiles(pki, dir);
  const upstream = await startUpstream({ server: pki.upstreams['orders']!, ca: pki.caBundlePem });
  t.teardown(() => upstream.close());
  let clock = Date.now();
  const gw = await startGateway({ dir, yaml: gatewayYaml({ upstreamPort: upstream.port, crl: false }), now: () => clock });
  t.teardown(() => gw.close());

  const billing = pki.clients['billing']!;
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: pki.root.certPem, cert: billing.chainPem, key: billing.keyPem });
  t.teardown(() => agent.destroy());
  const send = (path: string) => request(gw.port, null, '', { path, agent });

  const first = await send('/orders/1');
  t.equal(first.status, 200, 'valid now: forwarded');

  clock = billing.cert.notAfter.getTime() + 1_000;
  const expired = await send('/orders/2');
  t.equal(expired.socket, first.socket, 'the same keep-alive connection');
  t.equal(expired.status, 401);
  t.match(expired.json, { error: { code: 'GW_ERR_CLIENT_CERT_EXPIRED' } });
  t.equal(expired.headers['connection'], 'close', 'the connection is closed after the answer');
  await closed(first.socket);
  t.match(
    gw.logs.find((l) => l['code'] === 'GW_ERR_CLIENT_CERT_EXPIRED'),
    { msg: 'request refused', status: 401, client: { serial: billing.serial } },
    'the refusal is logged with the client it concerns',
  );

  clock = billing.cert.notBefore.getTime() - 1_000;
  const early = await send('/orders/3');
  t.not(early.socket, first.socket, 'a new connection');
  t.equal(early.status, 401);
  t.match(early.json, { error: { code: 'GW_ERR_CLIENT_CERT_NOT_YET_VALID' } });

  t.same(upstream.seen.map((r) => r.url), ['/orders/1'], 'nothing after the first request reached the upstream');
});

function closed(socket: TLSSocket): Promise<void> {
  return socket.destroyed ? Promise.resolve() : new Promise((r) => socket.once('close', () => r()));
}
