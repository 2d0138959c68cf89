// tls.crlFromDistributionPoints: the CRL distribution point a client CA certificate names is
// fetched like a configured url source. Here an intermediate CA names, as its CDP, a loopback URL
// that serves the root's CRL. When that CRL revokes the intermediate, a client issued by it is
// refused with GW_ERR_CLIENT_CERT_REVOKED (scope: chain) if the flag is on and admitted if it is
// off. An unreachable CDP works like an unreachable url source: no CRL for the root, so the
// `missing` policy applies (deny by default). A reload that brings a CA with a CDP into the
// bundle derives its URL then.
// Security: this pins that revoking an intermediate at the URL its certificate names takes effect
// for every client under it once the operator has opted in.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { webcrypto } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import t from 'tap';
import { createCrl, issueLeaf, loadCa, type Ca } from '../../src/pki/dev-pki.js';
import { gatewayYaml, makeTestPki, request, startGateway, startUpstream, tempDir, writePkiFiles } from '../helpers/harness.js';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

/** An intermediate CA under `root` whose certificate names `cdpUrl` as its CRL distribution point (dev-pki cannot add one). */
async function intermediateWithCdp(root: Ca, cdpUrl: string): Promise<Ca> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256' } as const;
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: '7a01',
    subject: 'CN=CDP Intermediate CA, O=Example',
    issuer: root.cert.subjectName,
    notBefore: new Date(now - 3600_000),
    notAfter: new Date(now + 30 * 86_400_000),
    publicKey: keys.publicKey,
    signingKey: root.keys.privateKey,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(root.cert),
      new x509.CRLDistributionPointsExtension([`ldap://ldap.example/cn=Root?certificateRevocationList`, cdpUrl]),
    ],
  });
  const keyPem = webcryptoKeyPem(Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)));
  return loadCa({ certPem: cert.toString('pem'), keyPem, issuer: root, name: 'cdp-intermediate' });
}

function webcryptoKeyPem(pkcs8: Buffer): string {
  return `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString('base64').replace(/.{64}/g, '$&\n')}\n-----END PRIVATE KEY-----\n`;
}

t.test('CRL distribution points of client CAs', async (t) => {
  const pki = await makeTestPki();
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  await writePkiFiles(pki, dir);

  // The CDP server: serves the root's CRL, or cuts the connection (unreachable).
  let rootCrl: Buffer | null = null;
  let hits = 0;
  const cdpServer = http.createServer((req, res) => {
    hits++;
    if (rootCrl === null) req.socket.destroy();
    else res.writeHead(200, { 'content-type': 'application/pkix-crl' }).end(rootCrl);
  });
  await new Promise<void>((r) => cdpServer.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => cdpServer.close(() => r())));
  const cdpUrl = `http://127.0.0.1:${(cdpServer.address() as AddressInfo).port}/root.crl`;

  const cdpCa = await intermediateWithCdp(pki.root, cdpUrl);
  const client = await issueLeaf(cdpCa, { name: 'cdp-billing', subject: { CN: 'billing', OU: 'payments', O: 'Example' }, uris: ['spiffe://example.org/ns/default/sa/billing'], usage: 'client' });
  const cleanRootCrl = (await createCrl(pki.root, { crlNumber: 10 })).der;
  const revokingRootCrl = (await createCrl(pki.root, { crlNumber: 11, revoked: [{ serial: cdpCa.serial, reason: 'caCompromise' }] })).der;
  const bundleWithCdp = cdpCa.certPem + pki.intermediate.certPem + pki.root.certPem;
  await writeFile(path.join(dir, 'ca-bundle.pem'), bundleWithCdp);
  // The CDP intermediate's own CRL (it revokes nobody) covers the client; the root's comes from the CDP.
  await writeFile(path.join(dir, 'cdp-intermediate.crl.pem'), (await createCrl(cdpCa, { crlNumber: 1 })).pem);

  const up = await startUpstream({ server: pki.upstreams['orders']!, ca: pki.caBundlePem });
  t.teardown(() => up.close());
  const withCrl = (extra: string) => `  crl: [./cdp-intermediate.crl.pem]\n  crlFromDistributionPoints: true\n  revocation: { pollInterval: 1h${extra} }`;
  const run = async (crlYaml: string) => {
    const gw = await startGateway({ dir, yaml: gatewayYaml({ upstreamPort: up.port, crlYaml }) });
    const res = await request(gw.port, client, pki.root.certPem, { path: '/orders' });
    await gw.close();
    return { res, logs: gw.logs };
  };
  const events = (logs: Array<Record<string, unknown>>, event: string) => logs.filter((l) => l['event'] === event);

  t.test('flag on, the root CRL at the CDP revokes nobody: admitted, and the URL was derived and fetched', async (t) => {
    rootCrl = cleanRootCrl;
    hits = 0;
    const { res, logs } = await run(withCrl(''));
    t.equal(res.status, 200, res.body);
    t.ok(hits >= 1, 'the CDP was fetched');
    t.match(events(logs, 'crl-distribution-points'), [{ level: 30, domain: 'clients', urls: [cdpUrl] }], 'one info record lists the derived URL (not the ldap one)');
    t.ok(events(logs, 'crl-loaded').some((l) => l['source'] === cdpUrl && /Root/.test(String(l['issuer']))), 'the root CRL from the CDP is in force');
  });

  t.test('flag on, the root CRL at the CDP revokes the intermediate: the client under it is refused', async (t) => {
    rootCrl = revokingRootCrl;
    const { res } = await run(withCrl(''));
    t.equal(res.status, 401);
    t.match(res.json, { error: { code: 'GW_ERR_CLIENT_CERT_REVOKED' } });
  });

  t.test('flag on without tls.crl: the CDP alone creates the client store', async (t) => {
    rootCrl = revokingRootCrl;
    // missing: allow lets the leaf (whose issuer has no CRL here) through to the intermediate's check.
    const { res, logs } = await run('  crlFromDistributionPoints: true\n  revocation: { missing: allow, pollInterval: 1h }');
    t.equal(res.status, 401);
    t.match(res.json, { error: { code: 'GW_ERR_CLIENT_CERT_REVOKED' } });
    t.same(events(logs, 'revocation-off'), [], 'revocation is on');
  });

  t.test('flag off: the CDP is not consulted and the client is admitted', async (t) => {
    rootCrl = revokingRootCrl;
    hits = 0;
    const { res, logs } = await run('');
    t.equal(res.status, 200, res.body);
    t.equal(hits, 0, 'nothing fetched');
    t.same(events(logs, 'crl-distribution-points'), []);
  });

  t.test('flag on, the CDP unreachable: no CRL for the root, so missing: deny refuses', async (t) => {
    rootCrl = null;
    const { res, logs } = await run(withCrl(''));
    t.equal(res.status, 401);
    t.match(res.json, { error: { code: 'GW_ERR_CLIENT_CERT_REVOCATION_UNKNOWN' } });
    t.match(events(logs, 'crl-source-unavailable'), [{ key: 'tls.crlFromDistributionPoints[0]', source: cdpUrl }]);
  });

  t.test('a URL already in tls.crl is not fetched twice', async (t) => {
    rootCrl = revokingRootCrl;
    const { res, logs } = await run(`  crl: [./cdp-intermediate.crl.pem, { url: "${cdpUrl}", refresh: 1h }]\n  crlFromDistributionPoints: true\n  revocation: { pollInterval: 1h }`);
    t.equal(res.status, 401);
    t.match(res.json, { error: { code: 'GW_ERR_CLIENT_CERT_REVOKED' } });
    t.same(events(logs, 'crl-distribution-points'), [], 'nothing derived beyond what is configured');
    t.match(events(logs, 'crl-distribution-points-none'), [], 'the CA did name one');
  });

  t.test('no CA names a CDP: warned once, then a reload with a CA that does derives its URL', async (t) => {
    rootCrl = revokingRootCrl;
    await writeFile(path.join(dir, 'ca-bundle.pem'), pki.caBundlePem);
    t.teardown(() => writeFile(path.join(dir, 'ca-bundle.pem'), bundleWithCdp));
    const gw = await startGateway({ dir, yaml: gatewayYaml({ upstreamPort: up.port, crlYaml: '  crlFromDistributionPoints: true\n  revocation: { missing: allow, pollInterval: 1h }' }) });
    t.teardown(() => gw.close());
    t.match(events(gw.logs, 'crl-distribution-points-none'), [{ level: 40, domain: 'clients' }]);
    t.equal(events(gw.logs, 'revocation-off').length, 1, 'revocation stays off, as without the flag');
    t.equal((await request(gw.port, pki.clients['billing']!, pki.root.certPem, { path: '/orders' })).status, 200);
    t.match(await gw.gateway.reload('test'), { result: 'success' }, 'same bundle');
    t.equal(events(gw.logs, 'crl-distribution-points-none').length, 1, 'not repeated for the same bundle');

    await writeFile(path.join(dir, 'ca-bundle.pem'), bundleWithCdp);
    t.match(await gw.gateway.reload('test'), { result: 'success' });
    t.match(events(gw.logs, 'crl-distribution-points'), [{ urls: [cdpUrl] }]);
    const res = await request(gw.port, client, pki.root.certPem, { path: '/orders' });
    t.equal(res.status, 401);
    t.match(res.json, { error: { code: 'GW_ERR_CLIENT_CERT_REVOKED' } });
  });
});
