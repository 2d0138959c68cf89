// Pins a security decision: when the trust bundle holds only the root and the client sends its
// intermediate itself, the chain used for revocation and depth is the one the client presented, so
// a revoked intermediate still refuses its subtree. A CRL can only be trusted from a CA the
// gateway knows: loading the intermediate's CRL without the intermediate in tls.clientCA stops
// startup with an error naming the key, rather than silently dropping that CRL.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { createCrl } from '../../src/pki/dev-pki.js';
import { gatewayYaml, makeTestPki, request, startGateway, startUpstream, tempDir, writePkiFiles } from '../helpers/harness.js';

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
  const gw = await startGateway({ dir, yaml: rootOnly });
  const send = (port: number, who: string) => request(port, pki.clients[who]!, pki.root.certPem, { path: '/orders' });
  t.equal((await send(gw.port, 'billing')).status, 200, 'the chain verifies through the client-sent intermediate');
  await gw.close();

  const rootCrl = await createCrl(pki.root, { revoked: [{ serial: pki.intermediate.serial, reason: 'caCompromise' }], crlNumber: 2 });
  await writeFile(path.join(dir, 'root.crl.pem'), rootCrl.pem);
  const gw2 = await startGateway({ dir, yaml: rootOnly });
  t.teardown(() => gw2.close());
  const billing = await send(gw2.port, 'billing');
  t.equal(billing.status, 401, 'the revoked, client-sent intermediate refuses its subtree');
  t.match(billing.json, { error: { code: 'GW_ERR_CLIENT_CERT_REVOKED' } });
  t.match(gw2.logs.find((l) => l['event'] === 'client-revoked'), { serial: pki.intermediate.serial, reason: 'cACompromise' });
});
