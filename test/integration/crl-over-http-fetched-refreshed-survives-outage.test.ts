// A CRL served over HTTP is fetched at startup, fetched again on its refresh interval (a new CRL
// revokes a client), and survives the CRL server going away: the last good copy stays in force,
// and a gateway started while the server is down uses the copy cached on disk.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { createCrl } from '../../src/pki/dev-pki.js';
import { waitForGeneration } from '../helpers/crl-files.js';
import { gatewayYaml, makeTestPki, request, startGateway, startUpstream, tempDir, writePkiFiles } from '../helpers/harness.js';

t.test('CRL over HTTP', async (t) => {
  const pki = await makeTestPki();
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  await writePkiFiles(pki, dir);
  let body = pki.intermediateCrl.der;
  const hits: Array<{ ifNoneMatch: string | undefined }> = [];
  const crlServer = http.createServer((req, res) => {
    hits.push({ ifNoneMatch: req.headers['if-none-match'] });
    const etag = `"${body.length}-${body.readUInt32BE(body.length - 4)}"`;
    if (req.headers['if-none-match'] === etag) {
      res.writeHead(304).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/pkix-crl', etag }).end(body);
  });
  await new Promise<void>((r) => crlServer.listen(0, '127.0.0.1', r));
  const crlPort = (crlServer.address() as AddressInfo).port;
  let serverUp = true;
  const stopCrlServer = () =>
    new Promise<void>((r) => {
      if (!serverUp) return r();
      serverUp = false;
      crlServer.closeAllConnections();
      crlServer.close(() => r());
    });
  t.teardown(stopCrlServer);
  const up = await startUpstream({ server: pki.upstreams['orders']!, ca: pki.caBundlePem });
  t.teardown(() => up.close());

  const crlYaml = `  crl:
    - ./root.crl.pem
    - { url: http://127.0.0.1:${crlPort}/intermediate.crl, refresh: 1s, timeout: 2s, cache: ./cache/intermediate.crl }
  revocation: { pollInterval: 1h }`;
  const yaml = gatewayYaml({ upstreamPort: up.port, crlYaml });
  const gw = await startGateway({ dir, yaml });
  const send = (port: number, who: string) => request(port, pki.clients[who]!, pki.root.certPem, { path: '/orders' });
  t.equal((await send(gw.port, 'billing')).status, 200);
  t.equal((await send(gw.port, 'revoked')).status, 401, 'the fetched CRL is in force');
  t.ok(hits.length >= 1, 'fetched at startup');

  // The CA publishes a new CRL revoking billing; the next refresh picks it up.
  const from = gw.gateway.revocation.get('clients')!.index.generation;
  body = (await createCrl(pki.intermediate, { revoked: [{ serial: pki.clients['revoked']!.serial }, { serial: pki.clients['billing']!.serial }], crlNumber: 2 })).der;
  await waitForGeneration(gw.gateway, 'clients', from);
  const refreshed = await send(gw.port, 'billing');
  t.equal(refreshed.status, 401, 'refreshed: billing is now revoked');
  t.match(refreshed.json, { error: { code: 'GW_ERR_CLIENT_CERT_REVOKED' } });
  t.ok(hits.some((h) => h.ifNoneMatch !== undefined), 'refreshes are conditional requests');

  // The CRL server goes away: the last good CRL stays in force.
  await stopCrlServer();
  await new Promise((r) => setTimeout(r, 1500));
  t.equal((await send(gw.port, 'billing')).status, 401, 'still revoked with the CRL server down');
  t.ok(gw.logs.some((l) => l['event'] === 'crl-fetch-failed' && l['code'] === 'CRL_FETCH_NETWORK'), 'the failed refresh is logged');
  await gw.close();

  // A gateway started while the server is down starts from the disk cache.
  const gw2 = await startGateway({ dir, yaml });
  t.teardown(() => gw2.close());
  const afterRestart = await send(gw2.port, 'billing');
  t.equal(afterRestart.status, 401, 'the cached CRL (number 2) is in force after a restart');
  t.match(afterRestart.json, { error: { code: 'GW_ERR_CLIENT_CERT_REVOKED' } });
  const inForce = gw2.gateway.revocation.get('clients')!.describe().find((c) => /Intermediate/.test(c.issuer));
  t.match(inForce, { crlNumber: '2', source: /disk cache/ }, JSON.stringify(inForce));
});
