/**
 * ChainLinker.fromBundle / bundleCompletes (src/x509/chain-links.ts): completing a verified leaf's
 * chain from the trust bundle alone, the chain that revocation and depth are then checked on.
 * When several bundle CAs share the issuer's name (a re-keyed CA), the one whose key identifiers,
 * or failing those whose signature, match is the issuer, never just the first by name; a leaf that
 * no bundle CA signed gets no chain (the caller refuses rather than check revocation against the
 * wrong CA); names that form a loop in the bundle end the walk instead of running forever.
 */
import 'reflect-metadata';
import * as crypto from 'node:crypto';
import * as x509 from '@peculiar/x509';
import t from 'tap';
import { createRootCa, issueLeaf } from '../../src/pki/dev-pki.js';
import { ChainLinker } from '../../src/x509/chain-links.js';

x509.cryptoProvider.set(crypto.webcrypto);
const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const keyPair = async () => (await crypto.webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as crypto.webcrypto.CryptoKeyPair;
const X = (der: Buffer | ArrayBuffer) => new crypto.X509Certificate(Buffer.from(der as ArrayBuffer));

/** A certificate without key identifiers, so only names and signatures link it. */
async function bare(opts: { subject: string; issuer: string; keys: crypto.webcrypto.CryptoKeyPair; signer: crypto.webcrypto.CryptoKey; ca: boolean }) {
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: crypto.randomBytes(8).toString('hex').replace(/^[89a-f]/, '1'),
    subject: opts.subject,
    issuer: opts.issuer,
    notBefore: new Date(Date.now() - 3_600_000),
    notAfter: new Date(Date.now() + 86_400_000),
    publicKey: opts.keys.publicKey,
    signingKey: opts.signer,
    signingAlgorithm: ALG,
    extensions: opts.ca ? [new x509.BasicConstraintsExtension(true, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true)] : [],
  });
  return X(cert.rawData);
}

t.test('a re-keyed CA: the key identifiers pick the issuer among same-named CAs', async (t) => {
  const oldRoot = await createRootCa({ name: 'old', subject: { CN: 'Shared Root', O: 'Example' } });
  const newRoot = await createRootCa({ name: 'new', subject: { CN: 'Shared Root', O: 'Example' } });
  const leaf = await issueLeaf(newRoot, { subject: { CN: 'billing' }, usage: 'client' });
  const linker = new ChainLinker([X(oldRoot.der), X(newRoot.der)]);
  t.ok(linker.bundleCompletes(leaf.der));
  const chain = linker.fromBundle(X(leaf.der));
  t.equal(chain?.depth, 1);
  t.equal(chain?.links[0]?.issuer?.fingerprint256, X(newRoot.der).fingerprint256, 'the CA that issued it, not the first of that name');
});

t.test('same-named CAs without key identifiers: the signature picks the issuer', async (t) => {
  const [a, b, stranger, leafKeys] = await Promise.all([keyPair(), keyPair(), keyPair(), keyPair()]);
  const rootA = await bare({ subject: 'CN=Shared Root', issuer: 'CN=Shared Root', keys: a, signer: a.privateKey, ca: true });
  const rootB = await bare({ subject: 'CN=Shared Root', issuer: 'CN=Shared Root', keys: b, signer: b.privateKey, ca: true });
  const linker = new ChainLinker([rootA, rootB]);

  const byB = await bare({ subject: 'CN=billing', issuer: 'CN=Shared Root', keys: leafKeys, signer: b.privateKey, ca: false });
  t.ok(linker.bundleCompletes(byB.raw));
  const chain = linker.fromBundle(byB);
  t.equal(chain?.links[0]?.issuer?.fingerprint256, rootB.fingerprint256, 'root B signed it');
  t.equal(chain?.depth, 1);

  const byNeither = await bare({ subject: 'CN=billing', issuer: 'CN=Shared Root', keys: leafKeys, signer: stranger.privateKey, ca: false });
  t.ok(linker.bundleCompletes(byNeither.raw), 'by name the bundle would complete it');
  t.equal(linker.fromBundle(byNeither), null, 'but no bundle CA signed it: no chain');
});

t.test('no chain for a leaf of another CA; no answer but "no" for junk or a loop of names', async (t) => {
  const root = await createRootCa({ subject: { CN: 'Bundle Root' } });
  const other = await createRootCa({ subject: { CN: 'Other Root' } });
  const linker = new ChainLinker([X(root.der)]);
  const foreign = await issueLeaf(other, { subject: { CN: 'billing' }, usage: 'client' });
  t.notOk(linker.bundleCompletes(foreign.der));
  t.equal(linker.fromBundle(X(foreign.der)), null);
  t.notOk(linker.bundleCompletes(Buffer.from('not a certificate')), 'junk is not completed (and does not throw)');

  // Two CAs that name each other as issuer, neither self-issued: following issuer names from a
  // leaf under them never reaches an anchor.
  const [p, q, leafKeys] = await Promise.all([keyPair(), keyPair(), keyPair()]);
  const caP = await bare({ subject: 'CN=P', issuer: 'CN=Q', keys: p, signer: q.privateKey, ca: true });
  const caQ = await bare({ subject: 'CN=Q', issuer: 'CN=P', keys: q, signer: p.privateKey, ca: true });
  const looped = new ChainLinker([caP, caQ]);
  const leaf = await bare({ subject: 'CN=leaf', issuer: 'CN=P', keys: leafKeys, signer: p.privateKey, ca: false });
  t.notOk(looped.bundleCompletes(leaf.raw), 'the walk ends');
  t.equal(looped.fromBundle(leaf), null, 'and no chain comes out of it');
});
