// `mtls-gateway cert inspect`: the identity exactly as the gateway computes it, the checks the
// gateway makes before policy, and route by route whether the identity is admitted, on a table of
// certificates (allowed, subject-only, unknown, revoked, expired, not yet valid, foreign CA,
// server-only, a CA presented as a client).
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { inspectCertificate, type InspectResult } from '../../src/cli/cert-inspect.js';
import { createCrl, type Issued } from '../../src/pki/dev-pki.js';
import { writeDevPki } from '../../src/pki/write-dev-pki.js';
import { cli, shippedLayout } from '../helpers/demo-cli.js';
import { makeTestPki } from '../helpers/harness.js';
import { issueLeafWithOcsp, startOcspResponder } from '../helpers/ocsp-responder.js';

const BILLING = 'spiffe://example.org/ns/default/sa/billing';

t.test('cert inspect on a table of certificates', async (t) => {
  const root = t.testdir();
  const { config, certs } = await shippedLayout(root, { pki: false });
  const pki = await makeTestPki();
  await writeDevPki(pki, certs);
  const extra: Record<string, Issued> = { expired: pki.expired, 'not-yet-valid': pki.notYetValid, 'server-only': pki.serverOnly, rogue: pki.rogueClient };
  for (const [name, issued] of Object.entries(extra)) await writeFile(path.join(certs, `client-${name}.crt`), issued.chainPem);

  type Row = [file: string, accepted: boolean, code: string | null, spiffe: string | null, orders: string | null, inventory: string | null];
  // orders/inventory: the allowing rule, or null for deny.
  const table: Row[] = [
    ['client-billing.crt', true, null, BILLING, 'routes[0].allow[0]', null],
    ['client-ops-admin.crt', true, null, null, 'routes[0].allow[1]', 'routes[1].allow[0]'],
    ['client-intruder.crt', true, null, 'spiffe://example.org/ns/default/sa/intruder', null, null],
    ['client-revoked.crt', false, 'GW_ERR_CLIENT_CERT_REVOKED', 'spiffe://example.org/ns/default/sa/revoked', null, null],
    ['client-expired.crt', false, 'GW_ERR_CLIENT_CERT_EXPIRED', BILLING, 'routes[0].allow[0]', null],
    ['client-not-yet-valid.crt', false, 'GW_ERR_CLIENT_CERT_NOT_YET_VALID', BILLING, 'routes[0].allow[0]', null],
    ['client-rogue.crt', false, 'GW_ERR_CLIENT_CERT_UNTRUSTED', BILLING, 'routes[0].allow[0]', null],
    ['client-server-only.crt', false, 'GW_ERR_CLIENT_CERT_USAGE', BILLING, 'routes[0].allow[0]', null],
    ['intermediate-ca.crt', false, 'GW_ERR_CLIENT_CERT_USAGE', null, null, null],
  ];
  for (const [file, accepted, code, spiffe, orders, inventory] of table) {
    const r: InspectResult = await inspectCertificate({ file: path.join(certs, file), configFile: config });
    t.equal(r.identity.spiffe?.uri ?? null, spiffe, `${file}: SPIFFE ID`);
    t.equal(r.config!.verdict.accepted, accepted, `${file}: accepted before policy`);
    t.equal(r.config!.verdict.code, code, `${file}: code`);
    const [o, i] = r.config!.routes;
    t.equal(o!.route, 'orders');
    t.equal(o!.rule, orders, `${file}: orders`);
    t.equal(o!.allowed, orders !== null);
    t.equal(i!.route, 'inventory');
    t.equal(i!.rule, inventory, `${file}: inventory`);
  }

  // The identity is the gateway's own: fingerprint over the DER, canonical serial, RFC 4514 names.
  const billing = await inspectCertificate({ file: path.join(certs, 'client-billing.crt'), configFile: null });
  t.equal(billing.config, null);
  t.equal(billing.identity.fingerprint256, createHash('sha256').update(pki.clients['billing']!.der).digest('hex'));
  t.equal(billing.identity.serial, pki.clients['billing']!.serial);
  t.equal(billing.identity.subject.rfc4514, 'CN=billing,OU=payments,O=Example');
  t.equal(billing.identity.issuer.rfc4514, 'CN=Example Dev Intermediate CA,O=Example');
  t.same(billing.identity.san.uri, [BILLING]);
  t.equal(billing.usage, 'clientAuth');

  // Why a route denies: the closest allow entry and the fields that failed.
  const intruder = await inspectCertificate({ file: path.join(certs, 'client-intruder.crt'), configFile: config });
  t.match(intruder.config!.routes[0]!.because, /closest routes\[0\]\.allow\[0\].*spiffe wants "spiffe:\/\/example\.org\/ns\/\*\/sa\/billing", has "spiffe:\/\/example\.org\/ns\/default\/sa\/intruder"/);

  // A deny entry decides before allow entries.
  const withDeny = path.join(root, 'config', 'deny.yaml');
  await writeFile(withDeny, (await readFile(config, 'utf8')).replace('    upstream: orders\n', '    upstream: orders\n    deny:\n      - subject: { OU: payments }\n'));
  const denied = await inspectCertificate({ file: path.join(certs, 'client-billing.crt'), configFile: withDeny });
  t.match(denied.config!.routes[0], { allowed: false, rule: 'routes[0].deny[0]', because: /denied by routes\[0\]\.deny\[0\]/ });

  // Revocation settings: no CRL configured means nothing is checked; a missing or stale CRL for an
  // issuer in the chain means the status is unknown, and the gateway refuses.
  const noCrl = path.join(root, 'config', 'no-crl.yaml');
  await writeFile(noCrl, (await readFile(config, 'utf8')).replace(/^  crl: .*\n/m, ''));
  const unchecked = await inspectCertificate({ file: path.join(certs, 'client-revoked.crt'), configFile: noCrl });
  t.equal(unchecked.config!.verdict.accepted, true);
  t.match(unchecked.config!.verdict.checks.find((c) => c.name === 'revocation')!.detail, /not checked/);
  const rootOnly = path.join(root, 'config', 'root-crl-only.yaml');
  await writeFile(rootOnly, (await readFile(config, 'utf8')).replace(/^  crl: .*\n/m, '  crl: [../certs/root.crl.pem]\n'));
  t.equal((await inspectCertificate({ file: path.join(certs, 'client-billing.crt'), configFile: rootOnly })).config!.verdict.code, 'GW_ERR_CLIENT_CERT_REVOCATION_UNKNOWN');
  const stale = await createCrl(pki.intermediate, { thisUpdate: new Date(Date.now() - 9 * 86_400_000), nextUpdate: new Date(Date.now() - 86_400_000), crlNumber: 9 });
  await writeFile(path.join(certs, 'stale.crl.pem'), stale.pem);
  const staleConfig = path.join(root, 'config', 'stale.yaml');
  await writeFile(staleConfig, (await readFile(config, 'utf8')).replace(/^  crl: .*\n/m, '  crl: [../certs/root.crl.pem, ../certs/stale.crl.pem]\n'));
  const staleVerdict = (await inspectCertificate({ file: path.join(certs, 'client-billing.crt'), configFile: staleConfig })).config!.verdict;
  t.equal(staleVerdict.code, 'GW_ERR_CLIENT_CERT_REVOCATION_UNKNOWN');
  t.match(staleVerdict.checks.find((c) => c.name === 'revocation')!.detail, /expired at/);

  // The binary: text and JSON output, exit codes.
  const [text, json, noFile, missing] = await Promise.all([
    cli(['cert', 'inspect', path.join(certs, 'client-ops-admin.crt'), '--config', config]),
    cli(['cert', 'inspect', path.join(certs, 'client-billing.crt'), '--json']),
    cli(['cert', 'inspect']),
    cli(['cert', 'inspect', path.join(certs, 'nope.crt')]),
  ]);
  t.equal(text.code, 0, text.stderr);
  t.match(text.stdout, /^subject: +CN=ops-admin,OU=sre,O=Example$/m);
  t.match(text.stdout, /^spiffe: +\(none\)$/m);
  t.match(text.stdout, /^fingerprint: +[0-9a-f]{64}/m);
  t.match(text.stdout, /^gateway: +accepts the certificate/m);
  t.match(text.stdout, /routes\[0\] orders +pathPrefix=\/orders methods=GET,POST +allow +allowed by routes\[0\]\.allow\[1\] \[subject\.CN=ops-admin, subject\.OU=sre\]/);
  t.match(text.stdout, /routes\[1\] inventory .* allow +allowed by routes\[1\]\.allow\[0\]/);
  t.equal(json.code, 0, json.stderr);
  t.match(JSON.parse(json.stdout), { identity: { spiffe: { uri: BILLING, trustDomain: 'example.org' }, serial: pki.clients['billing']!.serial }, config: null });
  t.equal(noFile.code, 2);
  t.equal(missing.code, 1);
  t.match(missing.stderr, /ENOENT/);
});

t.test('cert inspect --config asks the OCSP responder as the gateway would (tls.ocsp)', async (t) => {
  const root = t.testdir();
  const { config, certs } = await shippedLayout(root, { pki: false });
  const pki = await makeTestPki();
  await writeDevPki(pki, certs);
  const responder = await startOcspResponder({ issuerCertPem: pki.intermediate.certPem, issuerKeyPem: pki.intermediate.keyPem });
  t.teardown(() => responder.close());
  const good = await issueLeafWithOcsp(pki.intermediate, { ocspUrls: [responder.url], cn: 'ocsp-good', uris: [BILLING] });
  const revoked = await issueLeafWithOcsp(pki.intermediate, { ocspUrls: [responder.url], cn: 'ocsp-revoked', uris: [BILLING] });
  responder.setStatus(revoked.serial, 'revoked', { reason: 'keyCompromise' });
  await writeFile(path.join(certs, 'ocsp-good.crt'), good.chainPem);
  await writeFile(path.join(certs, 'ocsp-revoked.crt'), revoked.chainPem);
  const withOcsp = async (mode: string) => {
    const file = path.join(root, 'config', `ocsp-${mode}.yaml`);
    await writeFile(file, (await readFile(config, 'utf8')).replace(/^tls:\n/m, `tls:\n  ocsp: { mode: ${mode} }\n`));
    return file;
  };
  const prefer = await withOcsp('prefer');
  const g = (await inspectCertificate({ file: path.join(certs, 'ocsp-good.crt'), configFile: prefer })).config!.verdict;
  t.equal(g.accepted, true);
  t.match(g.checks.find((c) => c.name === 'ocsp'), { ok: true, detail: new RegExp(`^good from ${responder.url.replace(/[.]/g, '\\.')}`) });
  const r = (await inspectCertificate({ file: path.join(certs, 'ocsp-revoked.crt'), configFile: prefer })).config!.verdict;
  t.equal(r.code, 'GW_ERR_CLIENT_CERT_REVOKED');
  t.match(r.checks.find((c) => c.name === 'ocsp'), { ok: false, detail: /^revoked from / });
  // The dev PKI's billing certificate names no responder: prefer leaves it to the CRLs, require refuses.
  const plain = (await inspectCertificate({ file: path.join(certs, 'client-billing.crt'), configFile: prefer })).config!.verdict;
  t.match(plain.checks.find((c) => c.name === 'ocsp'), { ok: true, detail: /no responder known.*the CRLs decide/ });
  const strict = (await inspectCertificate({ file: path.join(certs, 'client-billing.crt'), configFile: await withOcsp('require') })).config!.verdict;
  t.equal(strict.code, 'GW_ERR_CLIENT_CERT_REVOCATION_UNKNOWN');
  responder.setMode('down');
  const down = (await inspectCertificate({ file: path.join(certs, 'ocsp-good.crt'), configFile: prefer })).config!.verdict;
  t.equal(down.code, 'GW_ERR_CLIENT_CERT_REVOCATION_UNKNOWN', 'onUnavailable deny');
  t.match(down.checks.find((c) => c.name === 'ocsp'), { detail: /no usable answer/ });
});
