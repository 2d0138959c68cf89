// Pins a security decision: when the trust bundle holds only the root and the client sends its
// intermediate itself, the chain used for revocation and depth is the one the client presented, so
// a revoked intermediate still refuses its subtree. A CRL can only be trusted from a CA the
// gateway knows: loading the intermediate's CRL without the intermediate in tls.clientCA stops
// startup with an error naming the key, rather than silently dropping that CRL.
//
// Node 24.21 loses the intermediates a client sends from getPeerCertificate(true) on server sockets
// (nodejs/node#65579). There the gateway cannot see the intermediate at all, so it must refuse the
// connection (GW_ERR_CLIENT_CERT_INVALID) rather than check revocation and depth on a chain with a
// CA missing; this test bypassed revocation on Node 24 before that refusal existed. Which of the
// two outcomes applies is decided by probing the runtime, and both are asserted exactly.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import tls, { type DetailedPeerCertificate } from 'node:tls';
import t from 'tap';
import { createCrl } from '../../src/pki/dev-pki.js';
import { gatewayYaml, makeTestPki, request, startGateway, startUpstream, tempDir, writePkiFiles, type TestPki } from '../helpers/harness.js';

/** Whether this Node reports a client-sent intermediate in getPeerCertificate(true) on a server socket. */
function runtimeReportsClientChain(pki: TestPki): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const billing = pki.clients['billing']!;
    const server = tls.createServer({ key: pki.gatewayServer.keyPem, cert: pki.gatewayServer.chainPem, ca: [pki.root.certPem], requestCert: true, rejectUnauthorized: true }, (socket) => {
      const leaf = socket.getPeerCertificate(true) as DetailedPeerCertificate;
      resolve(leaf.issuerCertificate?.raw?.equals(pki.intermediate.der) ?? false);
      socket.end();
      server.close();
    });
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      const c = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: pki.root.certPem, cert: billing.chainPem, key: billing.keyPem });
      c.on('error', reject);
      c.on('data', () => undefined);
    });
  });
}

t.test('revocation with an intermediate that only the client sends', async (t) => {
  const pki = await makeTestPki();
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  await writePkiFiles(pki, dir);
  await writeFile(path.join(dir, 'root-only.pem'), pki.root.certPem);
  const up = await startUpstream({ server: pki.upstreams['orders']!, ca: pki.caBundlePem });
  t.teardown(() => up.close());
  const base = gatewayYaml({ upstreamPort: up.port }).replace('clientCA: ./ca-bundle.pem', 'clientCA: ./root-only.pem');

  await t.rejects(startGateway({ dir, yaml: base }), { code: 'GW_ERR_TLS_MATERIAL', message: /tls\.crl\[1\]: CRL refused: .*CRL_ISSUER_UNKNOWN/ }, 'an intermediate CRL needs the intermediate in tls.clientCA');

  const rootOnly = base.replace('  crl: [./root.crl.pem, ./intermediate.crl.pem]', '  crl: [./root.crl.pem]\n  revocation: { missing: allow }');
  const reportsChain = await runtimeReportsClientChain(pki);
  t.comment(`${process.version} ${reportsChain ? 'reports' : 'drops (nodejs/node#65579)'} client-sent intermediates`);
  const gw = await startGateway({ dir, yaml: rootOnly });
  const send = (port: number, who: string) => request(port, pki.clients[who]!, pki.root.certPem, { path: '/orders' });
  const before = await send(gw.port, 'billing');
  if (reportsChain) {
    t.equal(before.status, 200, 'the chain verifies through the client-sent intermediate');
  } else {
    t.equal(before.status, 401, 'without the intermediate in view the connection is refused, not half-checked');
    t.match(before.json, { error: { code: 'GW_ERR_CLIENT_CERT_INVALID' } });
    t.match(gw.logs.find((l) => l['event'] === 'client-rejected'), { code: 'GW_ERR_CLIENT_CERT_INVALID', reason: /not available from the TLS stack.*add the intermediate CAs to tls\.clientCA/ });
  }
  await gw.close();

  const rootCrl = await createCrl(pki.root, { revoked: [{ serial: pki.intermediate.serial, reason: 'caCompromise' }], crlNumber: 2 });
  await writeFile(path.join(dir, 'root.crl.pem'), rootCrl.pem);
  const gw2 = await startGateway({ dir, yaml: rootOnly });
  t.teardown(() => gw2.close());
  const billing = await send(gw2.port, 'billing');
  t.equal(billing.status, 401, 'the revoked, client-sent intermediate refuses its subtree');
  if (reportsChain) {
    t.match(billing.json, { error: { code: 'GW_ERR_CLIENT_CERT_REVOKED' } });
    t.match(gw2.logs.find((l) => l['event'] === 'client-revoked'), { serial: pki.intermediate.serial, reason: 'cACompromise' });
  } else {
    t.match(billing.json, { error: { code: 'GW_ERR_CLIENT_CERT_INVALID' } });
  }

  // With the intermediate in tls.clientCA the chain comes from the bundle on every Node version,
  // so the revocation is found and named whatever the runtime reports.
  const withIntermediate = rootOnly.replace('clientCA: ./root-only.pem', 'clientCA: ./ca-bundle.pem');
  const gw3 = await startGateway({ dir, yaml: withIntermediate });
  t.teardown(() => gw3.close());
  const again = await send(gw3.port, 'billing');
  t.equal(again.status, 401);
  t.match(again.json, { error: { code: 'GW_ERR_CLIENT_CERT_REVOKED' } }, 'revoked by the root CRL, found through the bundle');
  t.match(gw3.logs.find((l) => l['event'] === 'client-revoked'), { serial: pki.intermediate.serial, reason: 'cACompromise' });
});
