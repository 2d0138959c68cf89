// OcspStore against the test responder over loopback: one lookup per certificate however many ask
// at once, answers and failures cached (a failure only briefly), a bounded LRU, refreshes for held
// certificates, and a refresh that fails keeps the answer in force until it expires. And
// combineLeaf(), the pure rule that joins a leaf's OCSP state with its CRL verdict.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import pino from 'pino';
import t, { type Test } from 'tap';
import { createDevPki, issueLeaf } from '../../src/pki/dev-pki.js';
import { combineLeaf, type OcspPolicy } from '../../src/revocation/combined-revocation.js';
import { createOcspHttpLookup, type OcspLookupFn } from '../../src/revocation/ocsp-http-lookup.js';
import { certIdFor, ocspUrlsOf } from '../../src/revocation/ocsp-request.js';
import { OcspStore, type OcspState } from '../../src/revocation/ocsp-store.js';
import type { RevocationVerdict } from '../../src/revocation/revocation-policy.js';
import type { ChainLink } from '../../src/x509/chain-links.js';
import { buildOcspResponse, issueLeafWithOcsp, startOcspResponder } from '../helpers/ocsp-responder.js';

const quiet = pino({ level: 'silent' });

async function fixture(t: Test, opts: { validityMs?: number; cacheSize?: number } = {}) {
  const pki = await createDevPki();
  const responder = await startOcspResponder({ issuerCertPem: pki.intermediate.certPem, issuerKeyPem: pki.intermediate.keyPem, ...(opts.validityMs ? { validityMs: opts.validityMs } : {}) });
  t.teardown(() => responder.close());
  const issuer = new X509Certificate(pki.intermediate.certPem);
  const base = createOcspHttpLookup();
  let lookups = 0;
  const lookup: OcspLookupFn = (r) => {
    lookups++;
    return base(r);
  };
  const changes: number[] = [];
  const store = new OcspStore({
    domain: 'clients',
    timeoutMs: 2_000,
    maxBytes: 65_536,
    cacheSize: opts.cacheSize ?? 100,
    nonce: false,
    responderFor: (leafDer) => ocspUrlsOf(leafDer)[0] ?? null,
    lookup,
    logger: quiet,
    now: Date.now,
    onChange: () => changes.push(Date.now()),
  });
  t.teardown(() => store.stop());
  const leaf = async (cn: string) => {
    const issued = await issueLeafWithOcsp(pki.intermediate, { ocspUrls: [responder.url], cn });
    const x = new X509Certificate(issued.certPem);
    return { issued, der: x.raw, serial: issued.serial };
  };
  const settle = async (der: Buffer, serial: string): Promise<OcspState> => {
    for (let i = 0; i < 3; i++) {
      const s = store.state(der, issuer, serial, 'CN=x');
      if (s.kind !== 'pending') return s;
      await s.done;
    }
    return store.state(der, issuer, serial, 'CN=x');
  };
  return { pki, responder, issuer, store, leaf, settle, lookups: () => lookups, changes };
}

t.test('concurrent askers share one lookup, and the answer is cached', async (t) => {
  const f = await fixture(t);
  const c = await f.leaf('a');
  const states = Array.from({ length: 10 }, () => f.store.state(c.der, f.issuer, c.serial, 'CN=a'));
  t.ok(states.every((s) => s.kind === 'pending'));
  await Promise.all(states.map((s) => (s.kind === 'pending' ? s.done : null)));
  t.equal(f.lookups(), 1);
  t.match(f.store.state(c.der, f.issuer, c.serial, 'CN=a'), { kind: 'answer', answer: { status: 'good' } });
  t.equal(f.lookups(), 1);
  t.equal(f.store.counts.hits, 1);
});

t.test('a failure is cached briefly, so an outage costs one lookup per certificate, not one per connection', async (t) => {
  const f = await fixture(t);
  f.responder.setMode('down');
  const c = await f.leaf('b');
  t.match(await f.settle(c.der, c.serial), { kind: 'unavailable' });
  for (let i = 0; i < 5; i++) f.store.state(c.der, f.issuer, c.serial, 'CN=b');
  t.equal(f.lookups(), 1);
});

t.test('a certificate without a responder is no-responder, with no lookup', async (t) => {
  const f = await fixture(t);
  const plain = await issueLeaf(f.pki.intermediate, { name: 'plain', subject: { CN: 'plain' }, usage: 'client' });
  const x = new X509Certificate(plain.certPem);
  t.same(f.store.state(x.raw, f.issuer, plain.serial, 'CN=plain'), { kind: 'no-responder' });
  t.equal(f.lookups(), 0);
});

t.test('the cache is bounded: the least recently used answer goes first', async (t) => {
  const f = await fixture(t, { cacheSize: 2 });
  const [a, b, c] = await Promise.all([f.leaf('a'), f.leaf('b'), f.leaf('c')]);
  await f.settle(a.der, a.serial);
  await f.settle(b.der, b.serial);
  f.store.state(a.der, f.issuer, a.serial, 'CN=a'); // a is now the most recent
  await f.settle(c.der, c.serial); // evicts b
  t.equal(f.store.size, 2);
  t.equal(f.lookups(), 3);
  t.match(f.store.state(a.der, f.issuer, a.serial, 'CN=a'), { kind: 'answer' });
  t.match(f.store.state(b.der, f.issuer, b.serial, 'CN=b'), { kind: 'pending' }, 'b was evicted and is looked up again');
});

t.test('a held certificate is refreshed before expiry; a failed refresh keeps the valid answer; a changed one calls onChange', async (t) => {
  // OCSP times are whole seconds (GeneralizedTime): an answer made at x.9 s says thisUpdate x, so
  // it arrives with up to a second less than its validity left. With 4 s the refresh (at 3/4, 3 s
  // after thisUpdate) always comes a full second before the answer expires; with 2 s the failed
  // refresh could land a few ms before expiry and the check below see the answer already gone.
  const f = await fixture(t, { validityMs: 4_000 });
  const c = await f.leaf('held');
  const release = f.store.hold(f.issuer, c.serial);
  t.teardown(release);
  t.match(await f.settle(c.der, c.serial), { kind: 'answer', answer: { status: 'good' } });
  f.responder.setMode('down');
  // The refresh at 3 s fails: the answer (valid to 4 s) stays in force.
  await waitFor(() => f.lookups() >= 2, 5_000);
  t.match(f.store.state(c.der, f.issuer, c.serial, 'CN=held'), { kind: 'answer', answer: { status: 'good' } }, 'kept after a failed refresh');
  f.responder.setMode('normal');
  f.responder.setStatus(c.serial, 'revoked');
  await waitFor(() => f.changes.length > 0, 6_000);
  t.match(f.store.state(c.der, f.issuer, c.serial, 'CN=held'), { kind: 'answer', answer: { status: 'revoked' } });
});

t.test('an answer already past 3/4 of its validity (pre-signed) is not asked for again every second', async (t) => {
  const pki = await createDevPki();
  const issuer = new X509Certificate(pki.intermediate.certPem);
  const leafIssued = await issueLeafWithOcsp(pki.intermediate, { ocspUrls: ['http://127.0.0.1:9/'], cn: 'presigned' });
  const leafDer = new X509Certificate(leafIssued.certPem).raw;
  const certId = certIdFor(leafDer, issuer);
  let lookups = 0;
  const lookup: OcspLookupFn = async () => {
    lookups++;
    const now = Date.now();
    // Signed 90 s ago, valid 10 s more: its 3/4 point is long past.
    const der = buildOcspResponse({
      signerKey: createPrivateKey(pki.intermediate.keyPem),
      responderCertDer: issuer.raw,
      producedAt: new Date(now - 90_000),
      answers: [{ certId: { issuerNameHash: certId.issuerNameHash, issuerKeyHash: certId.issuerKeyHash, serialDer: certId.serialDer }, status: 'good', thisUpdate: new Date(now - 90_000), nextUpdate: new Date(now + 10_000) }],
    });
    return { ok: true, der };
  };
  const store = new OcspStore({ domain: 'clients', timeoutMs: 1000, maxBytes: 65_536, cacheSize: 10, nonce: false, responderFor: () => 'http://127.0.0.1:9/', lookup, logger: quiet, now: Date.now });
  t.teardown(() => store.stop());
  t.teardown(store.hold(issuer, leafIssued.serial));
  const s = store.state(leafDer, issuer, leafIssued.serial, 'CN=presigned');
  if (s.kind === 'pending') await s.done;
  t.match(store.state(leafDer, issuer, leafIssued.serial, 'CN=presigned'), { kind: 'answer', answer: { status: 'good' } });
  await new Promise((r) => setTimeout(r, 2_500));
  t.equal(lookups, 1, 'the next refresh is at half the 10 s left, not at the 1 s floor');
});

t.test('combineLeaf: every OCSP state against every CRL verdict', async (t) => {
  const leaf: ChainLink = { serial: 'AB', subject: 'CN=leaf', isCa: false, issuer: null, raw: Buffer.alloc(0) };
  const prefer: OcspPolicy = { mode: 'prefer', onUnavailable: 'deny' };
  const require: OcspPolicy = { mode: 'require', onUnavailable: 'deny' };
  const allow: OcspPolicy = { mode: 'prefer', onUnavailable: 'allow' };
  const crlOk: RevocationVerdict = { ok: true, validUntil: 5_000, failOpen: null };
  const crlRevoked: RevocationVerdict = { ok: false, revoked: true, serial: 'AB', subject: 'CN=leaf', issuer: 'CN=ca', reason: 'keyCompromise', revokedAt: null, crlNumber: '3', validUntil: Infinity };
  const crlUnknown: RevocationVerdict = { ...crlRevoked, revoked: false, reason: 'no CRL' };
  const answer = (status: 'good' | 'revoked' | 'unknown'): OcspState => ({
    kind: 'answer',
    url: 'http://r',
    expiresAt: 9_000,
    answer: { status, thisUpdate: new Date(0), nextUpdate: new Date(9_000), producedAt: new Date(0), revokedAt: null, reason: null, signer: 'issuer' },
  });
  const unavailable: OcspState = { kind: 'unavailable', reason: 'down', url: 'http://r', until: 7_000 };
  t.match(combineLeaf(leaf, answer('good'), prefer, crlOk), { ok: true, validUntil: 5_000 });
  t.match(combineLeaf(leaf, answer('good'), prefer, null), { ok: true, validUntil: 9_000 });
  t.match(combineLeaf(leaf, answer('good'), prefer, crlUnknown), { ok: true }, 'a good answer establishes the status a missing CRL could not');
  t.match(combineLeaf(leaf, answer('good'), prefer, crlRevoked), { ok: false, revoked: true, crlNumber: '3' }, 'a CRL listing wins');
  t.match(combineLeaf(leaf, answer('revoked'), allow, crlOk), { ok: false, revoked: true, source: 'ocsp' });
  t.match(combineLeaf(leaf, answer('unknown'), allow, crlOk), { ok: false, revoked: false, source: 'ocsp' });
  t.match(combineLeaf(leaf, { kind: 'no-responder' }, prefer, crlOk), crlOk);
  t.match(combineLeaf(leaf, { kind: 'no-responder' }, prefer, null), { ok: true, failOpen: null });
  t.match(combineLeaf(leaf, { kind: 'no-responder' }, require, crlOk), { ok: false, revoked: false, reason: /no responder/ });
  t.match(combineLeaf(leaf, unavailable, prefer, crlOk), { ok: false, revoked: false, validUntil: 7_000 });
  t.match(combineLeaf(leaf, unavailable, allow, crlOk), { ok: true, validUntil: 5_000, failOpen: /onUnavailable: allow/ });
  t.match(combineLeaf(leaf, unavailable, allow, crlUnknown), { ok: false, revoked: false, reason: 'no CRL' });
  t.match(combineLeaf(leaf, unavailable, allow, null), { ok: true, validUntil: 7_000, failOpen: /onUnavailable: allow/ });
  const done = Promise.resolve();
  const pending = combineLeaf(leaf, { kind: 'pending', done }, allow, crlOk);
  t.ok(!pending.ok && pending.pending === done, 'a running lookup is a refusal that carries its promise');
});

async function waitFor(cond: () => boolean, ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 25));
  }
}
