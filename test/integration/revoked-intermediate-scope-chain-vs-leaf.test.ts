// scope: chain checks every certificate of the chain against its issuer's CRL, so a revoked
// intermediate refuses its whole subtree; scope: leaf checks the end-entity certificate only.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { createCrl } from '../../src/pki/dev-pki.js';
import { makeTestPki, startStack } from '../helpers/harness.js';

for (const scope of ['chain', 'leaf'] as const) {
  t.test(`revoked intermediate, scope: ${scope}`, async (t) => {
    const pki = await makeTestPki();
    const s = await startStack({
      pki,
      crlYaml: `  crl: [./root-revoking-intermediate.crl.pem, ./intermediate.crl.pem]\n  revocation: { scope: ${scope} }`,
      beforeStart: async (dir) => {
        const rootCrl = await createCrl(pki.root, { revoked: [{ serial: pki.intermediate.serial, reason: 'caCompromise' }], crlNumber: 2 });
        await writeFile(path.join(dir, 'root-revoking-intermediate.crl.pem'), rootCrl.pem);
      },
    });
    t.teardown(() => s.close());
    const billing = await s.send(pki.clients['billing']!, { path: '/orders' });
    const revokedLeaf = await s.send(pki.clients['revoked']!, { path: '/orders' });
    if (scope === 'chain') {
      t.equal(billing.status, 401, 'every client under the revoked intermediate is refused');
      t.match(billing.json, { error: { code: 'GW_ERR_CLIENT_CERT_REVOKED' } });
      t.match(s.gw.logs.find((l) => l['event'] === 'client-revoked'), { serial: pki.intermediate.serial, reason: 'cACompromise', issuer: /Root/ });
      t.equal(s.upstream.seen.length, 0);
    } else {
      t.equal(billing.status, 200, 'the intermediate is not checked in leaf scope');
    }
    t.equal(revokedLeaf.status, 401, 'a revoked leaf is refused in both scopes');
  });
}
