// The authenticator's per-certificate verdict cache holds at most 4096 certificates and drops the
// oldest first. Security: clients choose their certificates, so without the bound a client with a
// stream of distinct (trusted) certificates would grow the cache without limit. Sockets here are
// stand-ins exposing what the authenticator reads (as in
// authenticate-connection-caches-per-certificate); the certificates are one real certificate with
// its serial rewritten, which gives distinct certificates (distinct fingerprints) with the same
// issuer linkage. Their signatures no longer verify, which the authenticator never checks: OpenSSL
// did that before it runs.
import 'reflect-metadata';
import { createHash, X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import t from 'tap';
import { ConnectionAuthenticator } from '../../src/identity/authenticate-connection.js';
import { createIntermediateCa, createRootCa, issueLeaf } from '../../src/pki/dev-pki.js';

const LIMIT = 4096;

function socketFor(der: Buffer): TLSSocket {
  const summary = { raw: der, fingerprint256: createHash('sha256').update(der).digest('hex'), serialNumber: 'n/a', subject: { CN: 'c' } };
  return {
    authorized: true,
    authorizationError: undefined,
    getPeerCertificate: () => summary,
    isSessionReused: () => false,
  } as unknown as TLSSocket;
}

t.test('the per-certificate cache keeps the newest 4096 certificates', async (t) => {
  const root = await createRootCa({ subject: { CN: 'Root' } });
  const inter = await createIntermediateCa(root, { subject: { CN: 'Inter' } });
  const leaf = await issueLeaf(inter, { subject: { CN: 'billing' }, usage: 'client' });
  // The serial INTEGER follows the version ([0] { INTEGER 2 }); its content bytes are rewritten in
  // place (same length) for each variant.
  const at = leaf.der.indexOf(Buffer.from([0xa0, 0x03, 0x02, 0x01, 0x02])) + 5;
  const length = leaf.der[at + 1]!;
  t.ok(leaf.der[at] === 0x02 && length >= 8 && length < 0x80, 'control: the serial INTEGER found in the DER');
  const variant = (i: number): Buffer => {
    const der = Buffer.from(leaf.der);
    der[at + 2] = 0x11; // positive and minimal whatever the random serial was
    der.writeUInt32BE(i, at + 2 + length - 4);
    return der;
  };
  t.not(new X509Certificate(variant(1)).fingerprint256, new X509Certificate(variant(2)).fingerprint256, 'control: variants are distinct certificates');
  t.equal(new X509Certificate(variant(7)).serialNumber.slice(-8), '00000007', 'control: the rewritten serial is what a parser reads');
  const auth = new ConnectionAuthenticator({ verifyDepth: 3, now: Date.now, trust: [root.der, inter.der].map((d) => new X509Certificate(d)), revocation: null });
  const identityOf = (i: number) => {
    const v = auth.verdict(socketFor(variant(i)));
    if (!v.ok) throw new Error(`variant ${i} refused: ${v.reason}`);
    return v.identity;
  };

  const first = identityOf(0);
  t.equal(identityOf(0), first, 'a second connection with the same certificate hits the cache');
  const kept = new Map<number, unknown>();
  for (let i = 1; i <= LIMIT; i++) {
    const id = identityOf(i);
    if (i === 1 || i === LIMIT) kept.set(i, id);
  }
  t.equal(identityOf(LIMIT), kept.get(LIMIT), 'the newest certificate is still cached');
  t.not(identityOf(0), first, 'the oldest was dropped when the cache was full: judged afresh');
  t.not(identityOf(1), kept.get(1), 'and making room for it dropped the next oldest');
  t.equal(identityOf(LIMIT), kept.get(LIMIT), 'the newest is still cached');
});
