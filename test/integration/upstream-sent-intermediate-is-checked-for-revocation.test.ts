// When upstreams.<name>.tls.ca holds only the root, the upstream completes its chain by sending
// its intermediate CA in the handshake. The gateway links the chain from what the upstream
// presented, so that intermediate is checked against the root's CRL like any CA in the bundle: a
// revoked intermediate makes the upstream unreachable (502 GW_ERR_UPSTREAM_CERT_REVOKED), an
// unrevoked one does not. Security: an intermediate the gateway does not hold must not escape
// revocation checking by being sent over the wire. (The intermediate's own CRL cannot be verified
// without it in the bundle, so it is absent here and `missing: allow` admits the leaf.)
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import t, { type Test } from 'tap';
import { createCrl } from '../../src/pki/dev-pki.js';
import { gatewayYaml, makeTestPki, request, startGateway, startUpstream, tempDir, writePkiFiles, type TestPki } from '../helpers/harness.js';

async function stackWithRootOnlyUpstreamCa(t: Test, pki: TestPki, rootCrlPem: string) {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  await writePkiFiles(pki, dir);
  await writeFile(path.join(dir, 'up-root.pem'), pki.root.certPem);
  await writeFile(path.join(dir, 'up-root.crl.pem'), rootCrlPem);
  // The upstream presents leaf + intermediate (its chainPem).
  const upstream = await startUpstream({ server: pki.upstreams['orders']!, ca: pki.caBundlePem });
  t.teardown(() => upstream.close());
  const yaml = gatewayYaml({
    upstreamPort: upstream.port,
    crl: false,
    upstreamExtra: '      crl: [./up-root.crl.pem]\n      revocation: { missing: allow, pollInterval: 1h }',
  });
  const upstreamCa = '      ca: ./ca-bundle.pem\n      servername';
  if (!yaml.includes(upstreamCa)) throw new Error('gatewayYaml changed: cannot point the upstream CA at the root alone');
  const gw = await startGateway({ dir, yaml: yaml.replace(upstreamCa, '      ca: ./up-root.pem\n      servername') });
  t.teardown(() => gw.close());
  return { gw, upstream, send: (p: string) => request(gw.port, pki.clients['billing']!, pki.root.certPem, { path: p }) };
}

t.test('the upstream\'s own intermediate, revoked by the root, makes the upstream unreachable', async (t) => {
  const pki = await makeTestPki();
  const rootCrl = await createCrl(pki.root, { revoked: [{ serial: pki.intermediate.serial, reason: 'caCompromise' }], crlNumber: 2 });
  const s = await stackWithRootOnlyUpstreamCa(t, pki, rootCrl.pem);
  const res = await s.send('/orders/1');
  t.equal(res.status, 502);
  t.match(res.json, { error: { code: 'GW_ERR_UPSTREAM_CERT_REVOKED' } });
  t.equal(s.upstream.seen.length, 0, 'no request reached the upstream');
  t.match(s.gw.logs.find((l) => l['code'] === 'GW_ERR_UPSTREAM_CERT_REVOKED'), { upstreamMessage: new RegExp(`certificate ${pki.intermediate.serial} of .*revoked`) });
});

t.test('control: with the intermediate not revoked, the same setup reaches the upstream', async (t) => {
  const pki = await makeTestPki();
  const s = await stackWithRootOnlyUpstreamCa(t, pki, pki.rootCrl.pem);
  const res = await s.send('/orders/1');
  t.equal(res.status, 200);
  t.equal(s.upstream.seen.length, 1);
});
