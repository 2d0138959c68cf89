// RFC 9440 header values (src/identity/rfc9440.ts): each certificate is an RFC 8941 Byte Sequence
// of its exact DER, and Client-Cert-Chain lists the intermediates of the chain the gateway
// verified, issuer of the leaf first, trust anchor left out. Checked on a real four-level
// hierarchy linked by src/x509/chain-links.ts, as the authenticator links it.
import 'reflect-metadata';
import { X509Certificate } from 'node:crypto';
import t from 'tap';
import { byteSequence, clientCertChainValue, Rfc9440Fields } from '../../src/identity/rfc9440.js';
import { createDevPki, createIntermediateCa, issueLeaf } from '../../src/pki/dev-pki.js';
import { ChainLinker, type ChainLink } from '../../src/x509/chain-links.js';

/** RFC 8941 sf-binary: ":" base64 (with padding) ":". */
const SF_BINARY = /^:([A-Za-z0-9+/]*={0,2}):$/;

/** Parses an RFC 8941 List of Byte Sequences (no parameters) into the bytes of each item. */
function parseByteSequenceList(value: string): Buffer[] {
  return value.split(', ').map((item) => {
    const m = SF_BINARY.exec(item);
    if (m === null) throw new Error(`not a byte sequence: ${item.slice(0, 40)}`);
    return Buffer.from(m[1]!, 'base64');
  });
}

t.test('a byte sequence is the exact bytes, base64 between colons', async (t) => {
  t.equal(byteSequence(Buffer.from('hello')), ':aGVsbG8=:', 'padding kept (RFC 8941 3.3.5)');
  t.equal(byteSequence(Buffer.alloc(0)), '::');
  t.equal(byteSequence(new Uint8Array([0xfb, 0xff])), ':+/8=:', 'the standard alphabet, not base64url');
  // A Buffer that is a window on a larger pool (as Node hands out small buffers): only its bytes.
  const pool = Buffer.from('xxxhelloyyy');
  t.equal(byteSequence(pool.subarray(3, 8)), ':aGVsbG8=:');
  const big = Buffer.alloc(64 * 1024, 0xa5);
  t.same(Buffer.from(SF_BINARY.exec(byteSequence(big))![1]!, 'base64'), big, 'a 64 KiB value round-trips');
});

t.test('Client-Cert and Client-Cert-Chain decode to the certificates of the verified chain', async (t) => {
  const pki = await createDevPki();
  // root -> intermediate (may issue one more CA) -> team CA -> leaf
  const intermediate = await createIntermediateCa(pki.root, { name: 'inter', subject: { CN: 'Inter CA', O: 'Example' }, pathLength: 1 });
  const team = await createIntermediateCa(intermediate, { name: 'team', subject: { CN: 'Team CA', O: 'Example' } });
  const leaf = await issueLeaf(team, { subject: { CN: 'billing' }, uris: ['spiffe://example.org/ns/default/sa/billing'], usage: 'client' });
  const x = (pem: string) => new X509Certificate(pem);
  const linker = new ChainLinker([x(pki.root.certPem), x(pki.intermediate.certPem), x(intermediate.certPem), x(team.certPem)]);

  const deep = linker.fromBundle(x(leaf.certPem))!;
  t.equal(deep.depth, 3);
  const fields = new Rfc9440Fields(x(leaf.certPem).raw, deep.links);
  t.same(parseByteSequenceList(fields.clientCert), [x(leaf.certPem).raw], 'Client-Cert is the leaf DER, one item');
  const chain = parseByteSequenceList(fields.clientCertChain!);
  t.same(chain, [x(team.certPem).raw, x(intermediate.certPem).raw], 'the issuer of the leaf first, then its issuer; the root left out');
  t.equal(fields.clientCertChain, `${byteSequence(x(team.certPem).raw)}, ${byteSequence(x(intermediate.certPem).raw)}`, 'an RFC 8941 list: ", " between items');

  const usual = linker.fromBundle(x(pki.clients['billing']!.certPem))!;
  t.same(parseByteSequenceList(clientCertChainValue(usual.links)!), [x(pki.intermediate.certPem).raw], 'root -> intermediate -> leaf: the intermediate alone');

  const byRoot = await issueLeaf(pki.root, { subject: { CN: 'direct' }, usage: 'client' });
  const direct = linker.fromBundle(x(byRoot.certPem))!;
  t.equal(direct.links.length, 1);
  t.equal(clientCertChainValue(direct.links), null, 'a leaf issued by the anchor has no Client-Cert-Chain');
  t.equal(clientCertChainValue([]), null);
});

t.test('a chain with a missing issuer is not sent in part', async (t) => {
  const pki = await createDevPki();
  const links: ChainLink[] = [
    { serial: '01', subject: 'CN=leaf', isCa: false, issuer: null, raw: Buffer.alloc(0) },
    { serial: '02', subject: 'CN=Inter', isCa: true, issuer: new X509Certificate(pki.root.certPem), raw: Buffer.alloc(0) },
  ];
  t.equal(clientCertChainValue(links), null);
});

t.test('values are computed on first use, once', async (t) => {
  const pki = await createDevPki();
  const linker = new ChainLinker([new X509Certificate(pki.root.certPem), new X509Certificate(pki.intermediate.certPem)]);
  const leaf = new X509Certificate(pki.clients['billing']!.certPem);
  const links = linker.fromBundle(leaf)!.links;
  let reads = 0;
  const counted = links.map((l) => ({
    ...l,
    get issuer() {
      reads++;
      return l.issuer;
    },
  }));
  const fields = new Rfc9440Fields(leaf.raw, counted);
  t.equal(reads, 0, 'nothing is read while no route asks');
  const first = fields.clientCertChain;
  const afterFirst = reads;
  t.ok(afterFirst > 0);
  t.equal(fields.clientCertChain, first);
  t.equal(reads, afterFirst, 'the chain is encoded once');
  t.equal(fields.clientCert, fields.clientCert, 'the same string each time');
});
