// OcspStapler with an injected lookup and clock: only a verified `good` answer is stapled, only
// inside its thisUpdate..nextUpdate window and only for the certificate it is for; a revoked answer
// drops the staple at once, a failed refresh keeps the answer in force until it expires, and a
// reload to another certificate never staples the old one's answer.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import pino from 'pino';
import t from 'tap';
import { createDevPki } from '../../src/pki/dev-pki.js';
import type { OcspLookupFn, OcspLookupResult } from '../../src/revocation/ocsp-http-lookup.js';
import { certIdFor } from '../../src/revocation/ocsp-request.js';
import type { OcspCertStatus } from '../../src/revocation/ocsp-response.js';
import { OcspStapler, type StapleResult, type StaplingSource } from '../../src/revocation/ocsp-stapler.js';
import { buildOcspResponse, issueLeafWithOcsp } from '../helpers/ocsp-responder.js';

const HOUR = 3600_000;
const pki = await createDevPki();
const issuer = new X509Certificate(pki.intermediate.certPem);
const issuerKey = createPrivateKey(pki.intermediate.keyPem);
const leafA = await issueLeafWithOcsp(pki.intermediate, { ocspUrls: ['http://ocsp.invalid/'], usage: 'server', dns: ['localhost'] });
const leafB = await issueLeafWithOcsp(pki.intermediate, { ocspUrls: ['http://ocsp.invalid/'], usage: 'server', dns: ['localhost'] });
const chainOf = (pem: string) => [new X509Certificate(pem), issuer];

function answer(leafDer: Buffer, status: OcspCertStatus, thisUpdate: number): Buffer {
  return buildOcspResponse({
    signerKey: issuerKey,
    responderCertDer: issuer.raw,
    producedAt: new Date(thisUpdate),
    answers: [{ certId: certIdFor(leafDer, issuer), status, thisUpdate: new Date(thisUpdate), nextUpdate: new Date(thisUpdate + HOUR) }],
  });
}

t.test('stapling lifecycle', async (t) => {
  let now = Math.floor(Date.now() / 1000) * 1000;
  let next: (der: Buffer) => OcspLookupResult = (der) => ({ ok: true, der });
  let status: OcspCertStatus = 'good';
  let source: StaplingSource = { enabled: true, refreshMs: HOUR, chain: chainOf(leafA.certPem) };
  const results: StapleResult[] = [];
  let lookups = 0;
  const lookup: OcspLookupFn = async () => {
    lookups++;
    const leaf = source.chain[0]!.raw;
    return next(answer(leaf, status, now));
  };
  const stapler = new OcspStapler({ source: () => source, lookup, logger: pino({ level: 'silent' }), now: () => now, metrics: { ocspStapleRefreshed: (r) => results.push(r) } });
  t.teardown(() => stapler.stop());
  const settle = () => new Promise((r) => setImmediate(r));

  stapler.start();
  await settle();
  const first = stapler.current(leafA.der);
  t.ok(first, 'a good answer is stapled');
  t.equal(stapler.current(leafB.der), undefined, 'never for another certificate');
  t.equal(stapler.current(leafA.der, now + HOUR), undefined, 'never at or past its nextUpdate');
  t.equal(stapler.current(leafA.der, now - HOUR), undefined, 'never before its thisUpdate');
  t.match(stapler.state(), { enabled: true, url: 'http://ocsp.invalid/', status: 'good', lastError: null });

  // A reload that changes nothing the stapler uses does not fetch again.
  stapler.reconsider();
  await settle();
  t.equal(lookups, 1);

  // A failed refresh keeps the answer in force (until it expires).
  next = () => ({ ok: false, reason: 'ECONNREFUSED' });
  source = { ...source, refreshMs: 2 * HOUR };
  stapler.reconsider();
  await settle();
  t.same(stapler.current(leafA.der), first, 'the answer in force is kept');
  t.match(stapler.state(), { status: 'unavailable', lastError: 'ECONNREFUSED', thisUpdate: String });

  // An answer that verifies and says revoked drops the staple at once.
  next = (der) => ({ ok: true, der });
  status = 'revoked';
  source = { ...source, refreshMs: 3 * HOUR };
  stapler.reconsider();
  await settle();
  t.equal(stapler.current(leafA.der), undefined, 'revoked: nothing is stapled');
  t.match(stapler.state(), { status: 'revoked', thisUpdate: null, nextUpdate: null });

  // A new certificate: its own answer, never the old one's.
  status = 'good';
  source = { ...source, chain: chainOf(leafB.certPem) };
  stapler.reconsider();
  await settle();
  t.ok(stapler.current(leafB.der));
  t.equal(stapler.current(leafA.der), undefined);

  // An answer for the wrong certificate (the responder answers for A while B is served) does not verify.
  next = () => ({ ok: true, der: answer(leafA.der, 'good', now) });
  source = { ...source, refreshMs: 4 * HOUR };
  stapler.reconsider();
  await settle();
  t.match(stapler.state(), { status: 'unavailable', lastError: /certid-mismatch/ });

  // Disabled: nothing is stapled, nothing is fetched.
  source = { ...source, enabled: false };
  stapler.reconsider();
  const before = lookups;
  await settle();
  t.equal(stapler.current(leafB.der), undefined);
  t.equal(lookups, before);
  t.match(stapler.state(), { enabled: false, status: 'disabled' });
  t.same(results, ['good', 'unavailable', 'revoked', 'good', 'unavailable']);
});
