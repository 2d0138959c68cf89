// ChainLinker.fromPeer turns the chain Node reports for a peer into revocation links, and refuses
// (null) any chain that does not end at a self-signed certificate of the trust bundle. OpenSSL only
// authorizes chains that end at an anchor, so a shorter one means the TLS stack lost part of it
// (Node 24.21 drops client-sent intermediates, nodejs/node#65579); checking revocation on it would
// skip the missing CA. Synthetic chains, so this holds on every Node version.
import 'reflect-metadata';
import { X509Certificate } from 'node:crypto';
import type { DetailedPeerCertificate } from 'node:tls';
import t from 'tap';
import { createIntermediateCa, createRootCa, issueLeaf } from '../../src/pki/dev-pki.js';
import { ChainLinker } from '../../src/x509/chain-links.js';

function peer(der: Buffer, issuer?: DetailedPeerCertificate | 'self'): DetailedPeerCertificate {
  const x = new X509Certificate(der);
  const p = { raw: der, fingerprint256: x.fingerprint256, serialNumber: x.serialNumber, subject: { CN: x.subject.replace(/^.*CN=/s, '') } } as unknown as DetailedPeerCertificate;
  if (issuer === 'self') p.issuerCertificate = p;
  else if (issuer) p.issuerCertificate = issuer;
  return p;
}

t.test('fromPeer links complete chains and refuses truncated ones', async (t) => {
  const root = await createRootCa({ subject: { CN: 'Root' } });
  const inter = await createIntermediateCa(root, { subject: { CN: 'Inter' } });
  const leaf = await issueLeaf(inter, { subject: { CN: 'billing' }, usage: 'client' });
  const otherRoot = await createRootCa({ subject: { CN: 'Root' } });
  const linker = new ChainLinker([new X509Certificate(root.der)]);

  const full = linker.fromPeer(peer(leaf.der, peer(inter.der, peer(root.der, 'self'))));
  t.ok(full, 'leaf -> intermediate -> bundle root is linked');
  t.equal(full?.depth, 2, 'two CA certificates above the leaf');
  t.same(full?.links.map((l) => [l.serial, l.isCa, l.issuer?.serialNumber]), [
    [leaf.serial, false, inter.serial],
    [inter.serial, true, root.serial],
  ], 'each certificate with the CA that issued it');

  t.equal(linker.fromPeer(peer(leaf.der)), null, 'the leaf alone (the intermediate lost): refused');
  t.equal(linker.fromPeer(peer(leaf.der, peer(inter.der))), null, 'stops at the intermediate, root missing: refused');
  t.equal(linker.fromPeer(peer(leaf.der, peer(inter.der, peer(otherRoot.der, 'self')))), null, 'ends at a self-signed certificate outside the bundle: refused');
  t.equal(linker.fromPeer(peer(root.der, 'self'))?.depth, 0, 'a bundle anchor presented as itself has no links above it');
});
