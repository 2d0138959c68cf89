/**
 * certificateDn (src/x509/dn.ts) names a certificate's subject or issuer in logs and messages. It
 * never throws: for a certificate the strict reader refuses (one OpenSSL accepted, say with an
 * invalid UTF8String), it falls back to Node's own text of the name, and escapes every control
 * character in it. Security: the DN is attacker-chosen text that ends up in log lines; a CR LF in
 * it must not start a new one, and a certificate must not be able to make logging fail.
 */
import 'reflect-metadata';
import { X509Certificate } from 'node:crypto';
import t from 'tap';
import { createRootCa, issueLeaf } from '../../src/pki/dev-pki.js';
import { certificateDn, nameToRfc4514 } from '../../src/x509/dn.js';

t.test('well-formed certificates: RFC 4514 subject and issuer from the DER', async (t) => {
  const root = await createRootCa({ subject: { CN: 'Test Root', O: 'Example' } });
  const leaf = await issueLeaf(root, { subject: { CN: 'billing', OU: 'payments', O: 'Example' }, usage: 'client' });
  const x = new X509Certificate(leaf.der);
  t.equal(certificateDn(x), 'CN=billing,OU=payments,O=Example');
  t.equal(certificateDn(x, 'issuer'), 'CN=Test Root,O=Example');
  t.equal(certificateDn({ raw: leaf.der }, 'issuer'), 'CN=Test Root,O=Example', 'a PeerCertificate-like object works too');
  t.equal(nameToRfc4514(Buffer.from(leaf.cert.subjectName.toArrayBuffer())), 'CN=billing,OU=payments,O=Example');
});

t.test('a certificate the strict reader refuses is named from Node\'s text, control characters escaped', async (t) => {
  const root = await createRootCa({ subject: { CN: 'Test Root' } });
  const leaf = await issueLeaf(root, { subject: { CN: 'QQQQ' }, usage: 'client' });
  // Replace the subject CN's UTF8String "QQQQ" with bytes that are not UTF-8: Node still parses the
  // certificate (and shows the bytes its own way); the strict reader refuses it.
  const at = leaf.der.indexOf(Buffer.from([0x04, 0x51, 0x51, 0x51, 0x51])) - 1;
  t.ok(at > 0 && [0x0c, 0x13].includes(leaf.der[at]!), 'control: the CN value found');
  const bad = Buffer.from(leaf.der);
  Buffer.from([0x0c, 0x04, 0x61, 0xff, 0xfe, 0x62]).copy(bad, at);

  const peerLike = { raw: bad, subject: { CN: 'a\r\nb', OU: ['x', 'y'] }, issuer: { CN: 'Test Root' } };
  t.equal(certificateDn(peerLike), 'CN=a\\0D\\0Ab, OU=x, OU=y', 'object form (getPeerCertificate), CR LF escaped');
  t.equal(certificateDn(peerLike, 'issuer'), 'CN=Test Root', 'the issuer falls back the same way');
  t.equal(certificateDn({ raw: bad, subject: 'CN=a\u0007b\nO=Example' }), 'CN=a\\07b, O=Example', 'string form (X509Certificate): lines joined, BEL escaped');
  t.equal(certificateDn({ raw: bad }), '', 'no text from Node either: empty, not a throw');
  t.equal(certificateDn({ raw: Buffer.from('not a certificate') }, 'issuer'), '', 'not even DER');
});
