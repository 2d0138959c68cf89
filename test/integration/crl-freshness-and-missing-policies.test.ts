// What a stale CRL (past nextUpdate) and a missing CRL mean is an explicit policy:
// stale: deny | grace (with `grace: <duration>`) | allow, and missing: deny | allow.
// Fail-open outcomes are allowed loudly (a warning per connection).
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { createCrl } from '../../src/pki/dev-pki.js';
import { makeTestPki, startStack, type TestPki } from '../helpers/harness.js';

const MIN = 60_000;

async function staleIntermediateCrl(pki: TestPki, dir: string) {
  // Issued 2 h ago, nextUpdate 10 min ago.
  const now = Date.now();
  const crl = await createCrl(pki.intermediate, { revoked: [{ serial: pki.clients['revoked']!.serial }], crlNumber: 2, thisUpdate: new Date(now - 120 * MIN), nextUpdate: new Date(now - 10 * MIN) });
  await writeFile(path.join(dir, 'intermediate.crl.pem'), crl.pem);
}

const staleCases = [
  { revocation: '{ stale: deny }', billing: 401, code: 'GW_ERR_CLIENT_CERT_REVOCATION_UNKNOWN' },
  { revocation: '{ stale: grace, grace: 1h }', billing: 200, code: null },
  { revocation: '{ stale: grace, grace: 5m }', billing: 401, code: 'GW_ERR_CLIENT_CERT_REVOCATION_UNKNOWN' },
  { revocation: '{ stale: allow }', billing: 200, code: null },
];

for (const c of staleCases) {
  t.test(`expired CRL with revocation: ${c.revocation}`, async (t) => {
    const pki = await makeTestPki();
    const s = await startStack({ pki, crlYaml: `  crl: [./root.crl.pem, ./intermediate.crl.pem]\n  revocation: ${c.revocation}`, beforeStart: (dir) => staleIntermediateCrl(pki, dir) });
    t.teardown(() => s.close());
    const r = await s.send(pki.clients['billing']!, { path: '/orders' });
    t.equal(r.status, c.billing);
    if (c.code) t.match(r.json, { error: { code: c.code } });
    else t.ok(s.gw.logs.some((l) => l['event'] === 'revocation-fail-open'), 'admitted loudly: a fail-open warning is logged');
    t.ok(s.gw.logs.some((l) => l['event'] === 'crl-stale'), 'the stale CRL is reported');
    t.equal((await s.send(pki.clients['revoked']!, { path: '/orders' })).status, 401, 'a serial listed on a stale CRL stays revoked in every mode');
  });
}

t.test('warns ahead of nextUpdate', async (t) => {
  const pki = await makeTestPki();
  const s = await startStack({
    pki,
    crlYaml: '  crl: [./root.crl.pem, ./intermediate.crl.pem]\n  revocation: { warnBefore: 2h }',
    beforeStart: async (dir) => {
      const crl = await createCrl(pki.intermediate, { revoked: [], crlNumber: 2, thisUpdate: new Date(Date.now() - MIN), nextUpdate: new Date(Date.now() + 30 * MIN) });
      await writeFile(path.join(dir, 'intermediate.crl.pem'), crl.pem);
    },
  });
  t.teardown(() => s.close());
  t.match(s.gw.logs.find((l) => l['event'] === 'crl-expiring'), { issuer: /Intermediate/, domain: 'clients' });
  t.equal((await s.send(pki.clients['billing']!, { path: '/orders' })).status, 200);
});

const missingCases = [
  { crl: '[./intermediate.crl.pem]', revocation: '{ missing: deny }', billing: 401, why: 'chain scope needs the root CRL to check the intermediate' },
  { crl: '[./intermediate.crl.pem]', revocation: '{ missing: allow }', billing: 200, why: 'the intermediate is admitted without a CRL, loudly' },
  { crl: '[./intermediate.crl.pem]', revocation: '{ missing: deny, scope: leaf }', billing: 200, why: 'leaf scope only needs the intermediate CRL' },
  { crl: '[./root.crl.pem]', revocation: '{ missing: deny, scope: leaf }', billing: 401, why: 'no CRL for the leaf\'s issuer' },
];
for (const c of missingCases) {
  t.test(`missing CRL: crl ${c.crl}, revocation ${c.revocation}`, async (t) => {
    const pki = await makeTestPki();
    const s = await startStack({ pki, crlYaml: `  crl: ${c.crl}\n  revocation: ${c.revocation}` });
    t.teardown(() => s.close());
    const r = await s.send(pki.clients['billing']!, { path: '/orders' });
    t.equal(r.status, c.billing, c.why);
    if (c.billing === 401) t.match(r.json, { error: { code: 'GW_ERR_CLIENT_CERT_REVOCATION_UNKNOWN' } });
  });
}
