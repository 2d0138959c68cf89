// A CRL that fails validation is refused with a logged reason and changes nothing: at startup
// the gateway does not start (the config names a CRL it cannot trust); on reload the previous
// good CRL stays in force. Covers a wrong signing key and a replacement older than the current CRL.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { webcrypto } from 'node:crypto';
import t from 'tap';
import { createCrl } from '../../src/pki/dev-pki.js';
import { replaceFile } from '../helpers/crl-files.js';
import { gatewayYaml, makeTestPki, startGateway, startStack, tempDir, writePkiFiles } from '../helpers/harness.js';

async function otherKeys() {
  return (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
}

t.test('CRL signed by the wrong key: startup refuses, naming the key', async (t) => {
  const pki = await makeTestPki();
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  await writePkiFiles(pki, dir);
  const forged = await createCrl(pki.intermediate, { revoked: [], crlNumber: 9, signingKeys: await otherKeys() });
  await writeFile(path.join(dir, 'intermediate.crl.pem'), forged.pem);
  await t.rejects(startGateway({ dir, yaml: gatewayYaml({ upstreamPort: 9 }) }), { code: 'GW_ERR_TLS_MATERIAL', message: /tls\.crl\[1\]: CRL refused: .*CRL_SIGNATURE_INVALID/ });
});

t.test('on reload a forged or older CRL is refused and the last good one stays in force', async (t) => {
  const pki = await makeTestPki();
  const s = await startStack({
    pki,
    crlYaml: '  crl: [./root.crl.pem, ./intermediate.crl.pem]\n  revocation: { pollInterval: 1h }',
    beforeStart: async (dir) => {
      const v5 = await createCrl(pki.intermediate, { revoked: [{ serial: pki.clients['revoked']!.serial }], crlNumber: 5 });
      await writeFile(path.join(dir, 'intermediate.crl.pem'), v5.pem);
    },
  });
  t.teardown(() => s.close());
  const file = path.join(s.dir, 'intermediate.crl.pem');
  const store = s.gw.gateway.revocation.get('clients')!;
  t.equal((await s.send(pki.clients['revoked']!, { path: '/orders' })).status, 401);

  // A forged CRL (valid structure, wrong key) that would un-revoke the client.
  const forged = await createCrl(pki.intermediate, { revoked: [], crlNumber: 6, signingKeys: await otherKeys() });
  await replaceFile(file, forged.pem);
  await s.gw.gateway.reload('test');
  t.equal((await s.send(pki.clients['revoked']!, { path: '/orders' })).status, 401, 'still revoked: the forged CRL was refused');
  t.match(s.gw.logs.find((l) => l['event'] === 'crl-refused'), { code: 'CRL_SIGNATURE_INVALID', key: 'tls.crl[1]', source: file });
  t.match(store.describe().find((c) => /Intermediate/.test(c.issuer)), { crlNumber: '5' }, 'CRL number 5 is still in force');

  // An older CRL (number 3) that does not list the client: a rollback, refused.
  const older = await createCrl(pki.intermediate, { revoked: [], crlNumber: 3 });
  await replaceFile(file, older.pem);
  await s.gw.gateway.reload('test');
  t.equal((await s.send(pki.clients['revoked']!, { path: '/orders' })).status, 401, 'still revoked: the older CRL was refused');
  t.ok(s.gw.logs.some((l) => l['event'] === 'crl-refused' && l['code'] === 'CRL_OLDER_THAN_CURRENT'));

  // Garbage in the file: refused too.
  await replaceFile(file, '-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n');
  await s.gw.gateway.reload('test');
  t.equal((await s.send(pki.clients['revoked']!, { path: '/orders' })).status, 401);
  t.ok(s.gw.logs.some((l) => l['event'] === 'crl-refused' && l['code'] === 'CRL_MALFORMED'));

  // A newer valid CRL is accepted.
  const newer = await createCrl(pki.intermediate, { revoked: [], crlNumber: 7 });
  await replaceFile(file, newer.pem);
  await s.gw.gateway.reload('test');
  t.equal((await s.send(pki.clients['revoked']!, { path: '/orders' })).status, 403, 'un-revoked by a newer, valid CRL: now policy decides');
  t.equal((await s.send(pki.clients['billing']!, { path: '/orders' })).status, 200);
});
