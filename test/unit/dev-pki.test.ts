// Checks the development PKI with Node's own crypto and TLS stack (not with the library that
// generated it), so a generator bug cannot hide behind a matching parser bug.
import t, { type Test } from 'tap';
import * as crypto from 'node:crypto';
import * as tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { stat, readFile, readdir, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import {
  createCrl,
  createDevPki,
  createIntermediateCa,
  createRootCa,
  issueLeaf,
  type Issued,
} from '../../src/pki/dev-pki.js';
import { writeDevPki } from '../../src/pki/write-dev-pki.js';
import { normalizeSerial } from '../../src/identity/peer-identity.js';

// ---- a minimal DER reader, enough to see extensions and CRL contents without peculiar ----
interface Tlv {
  tag: number;
  start: number; // first byte of the TLV
  valueStart: number;
  end: number; // one past the last byte
}

function readTlv(buf: Buffer, offset: number): Tlv {
  const tag = buf[offset]!;
  let len = buf[offset + 1]!;
  let p = offset + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[p + i]!;
    p += n;
  }
  return { tag, start: offset, valueStart: p, end: p + len };
}

function children(buf: Buffer, node: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let p = node.valueStart; p < node.end; ) {
    const c = readTlv(buf, p);
    out.push(c);
    p = c.end;
  }
  return out;
}

const val = (buf: Buffer, n: Tlv): Buffer => buf.subarray(n.valueStart, n.end);

function decodeOid(b: Buffer): string {
  const parts = [Math.floor(b[0]! / 40), b[0]! % 40];
  let v = 0;
  for (const byte of b.subarray(1)) {
    v = v * 128 + (byte & 0x7f);
    if (!(byte & 0x80)) {
      parts.push(v);
      v = 0;
    }
  }
  return parts.join('.');
}

interface Ext {
  critical: boolean;
  value: Buffer; // content of the extnValue OCTET STRING (the DER of the extension itself)
}

// `container` is the explicit [3] (certificate) or [0] (CRL) wrapper around the SEQUENCE OF Extension.
function extensionsFrom(buf: Buffer, container: Tlv): Map<string, Ext> {
  return extensionSeq(buf, children(buf, container)[0]!);
}

function extensionSeq(buf: Buffer, seq: Tlv): Map<string, Ext> {
  const map = new Map<string, Ext>();
  for (const ext of children(buf, seq)) {
    const parts = children(buf, ext);
    const critical = parts.length === 3 && buf[parts[1]!.valueStart] === 0xff;
    map.set(decodeOid(val(buf, parts[0]!)), { critical, value: val(buf, parts[parts.length - 1]!) });
  }
  return map;
}

function certExtensions(der: Buffer): Map<string, Ext> {
  const tbs = children(der, readTlv(der, 0))[0]!;
  const ext = children(der, tbs).find((n) => n.tag === 0xa3);
  if (!ext) throw new Error('certificate has no extensions');
  return extensionsFrom(der, ext);
}

const OID = {
  ski: '2.5.29.14',
  keyUsage: '2.5.29.15',
  san: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  crlNumber: '2.5.29.20',
  reasonCode: '2.5.29.21',
  aki: '2.5.29.35',
  eku: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
};

const KU_BITS = ['digitalSignature', 'nonRepudiation', 'keyEncipherment', 'dataEncipherment', 'keyAgreement', 'keyCertSign', 'cRLSign'];

function keyUsages(der: Buffer): string[] {
  const bits = certExtensions(der).get(OID.keyUsage)!.value;
  const bitString = readTlv(bits, 0);
  const bytes = bits.subarray(bitString.valueStart + 1, bitString.end); // skip the unused-bits octet
  return KU_BITS.filter((_, i) => ((bytes[i >> 3] ?? 0) & (0x80 >> (i & 7))) !== 0);
}

function ski(der: Buffer): string {
  const v = certExtensions(der).get(OID.ski)!.value;
  return val(v, readTlv(v, 0)).toString('hex');
}

function akiKeyId(extValue: Buffer): string {
  const keyId = children(extValue, readTlv(extValue, 0)).find((n) => n.tag === 0x80)!;
  return val(extValue, keyId).toString('hex');
}

function basicConstraints(der: Buffer): { critical: boolean; ca: boolean; pathLength?: number } {
  const e = certExtensions(der).get(OID.basicConstraints)!;
  const parts = children(e.value, readTlv(e.value, 0));
  let ca = false;
  let pathLength: number | undefined;
  for (const p of parts) {
    if (p.tag === 0x01) ca = e.value[p.valueStart] === 0xff;
    if (p.tag === 0x02) pathLength = val(e.value, p).readUIntBE(0, p.end - p.valueStart);
  }
  return { critical: e.critical, ca, ...(pathLength === undefined ? {} : { pathLength }) };
}

interface ParsedCrl {
  tbs: Buffer;
  signature: Buffer;
  extensions: Map<string, Ext>;
  entries: { serial: string; reason?: number }[];
  thisUpdate: Tlv;
}

function parseCrl(der: Buffer): ParsedCrl {
  const top = children(der, readTlv(der, 0));
  const tbsNode = top[0]!;
  const sig = top[2]!;
  const tbsParts = children(der, tbsNode);
  // version, signature, issuer, thisUpdate, [nextUpdate], [revokedCertificates], [0] extensions
  const revokedSeq = tbsParts.slice(4).find((n) => n.tag === 0x30 && der[n.valueStart] === 0x30);
  const entries = (revokedSeq ? children(der, revokedSeq) : []).map((entry) => {
    const [serialNode, , extNode] = children(der, entry);
    const serial = val(der, serialNode!).toString('hex').toUpperCase();
    if (!extNode) return { serial };
    const ext = extensionSeq(der, extNode);
    const reason = ext.get(OID.reasonCode);
    return reason ? { serial, reason: reason.value[2]! } : { serial };
  });
  const extNode = tbsParts.find((n) => n.tag === 0xa0)!;
  return {
    tbs: der.subarray(tbsNode.start, tbsNode.end),
    signature: val(der, sig).subarray(1),
    extensions: extensionsFrom(der, extNode),
    entries,
    thisUpdate: tbsParts[3]!,
  };
}

const pemCount = (pem: string): number => pem.match(/-----BEGIN CERTIFICATE-----/g)?.length ?? 0;
const node = (i: Issued): crypto.X509Certificate => new crypto.X509Certificate(i.certPem);

// ---- TLS helpers ----
interface ClientResult {
  secureConnect: boolean;
  authorized: boolean;
  data: string;
  error?: string;
}

interface TestServer {
  port: number;
  accepted: { authorized: boolean; cn: string }[];
  close(): Promise<void>;
}

async function startServer(t: Test, opts: tls.TlsOptions): Promise<TestServer> {
  const accepted: { authorized: boolean; cn: string }[] = [];
  const server = tls.createServer({ requestCert: true, rejectUnauthorized: true, ...opts }, (socket) => {
    const cn = String(socket.getPeerCertificate().subject?.CN ?? '');
    accepted.push({ authorized: socket.authorized, cn });
    socket.end(`hello ${cn}`);
  });
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  t.teardown(close);
  return { port: (server.address() as AddressInfo).port, accepted, close };
}

function connect(port: number, caPem: string, client: Issued): Promise<ClientResult> {
  return new Promise((resolve) => {
    const result: ClientResult = { secureConnect: false, authorized: false, data: '' };
    const socket = tls.connect({ host: '127.0.0.1', port, ca: caPem, cert: client.chainPem, key: client.keyPem, servername: 'localhost' });
    socket.setEncoding('utf8');
    socket.on('secureConnect', () => {
      result.secureConnect = true;
      result.authorized = socket.authorized;
    });
    socket.on('data', (d: string) => {
      result.data += d;
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      result.error = err.code ?? err.message;
    });
    socket.on('close', () => resolve(result));
  });
}

const pki = await createDevPki();

t.test('standard set: chain, flags, names', async (t) => {
  const root = node(pki.root);
  const inter = node(pki.intermediate);
  t.equal(root.ca, true);
  t.equal(inter.ca, true);
  t.ok(root.checkIssued(root) && root.verify(root.publicKey), 'root is self-signed');
  t.ok(inter.checkIssued(root) && inter.verify(root.publicKey), 'intermediate under root');
  t.equal(root.subject, 'O=Example\nCN=Example Dev Root CA');
  t.equal(inter.subject, 'O=Example\nCN=Example Dev Intermediate CA');
  t.equal(pki.root.issuer, null);
  t.equal(pki.intermediate.issuer, pki.root);
  t.equal(pki.root.chainPem, pki.root.certPem);
  t.equal(pki.intermediate.chainPem, pki.intermediate.certPem, 'chain excludes the root');
  t.equal(pki.caBundlePem, pki.intermediate.certPem + pki.root.certPem);

  const leaves: Issued[] = [pki.gatewayServer, pki.gatewayClient, ...Object.values(pki.upstreams), ...Object.values(pki.clients)];
  t.same(Object.keys(pki.upstreams), ['orders', 'inventory']);
  t.same(Object.keys(pki.clients).sort(), ['billing', 'intruder', 'ops-admin', 'revoked']);
  const serials = new Set<string>();
  for (const leaf of leaves) {
    const c = node(leaf);
    t.equal(c.ca, false, `${leaf.name} is not a CA`);
    t.ok(c.checkIssued(inter) && c.verify(inter.publicKey), `${leaf.name} verifies under the intermediate`);
    t.equal(leaf.issuer, pki.intermediate);
    t.equal(leaf.chainPem, leaf.certPem + pki.intermediate.certPem, `${leaf.name} chain is leaf + intermediate`);
    t.equal(pemCount(leaf.chainPem), 2);
    t.ok(c.checkPrivateKey(crypto.createPrivateKey(leaf.keyPem)), `${leaf.name} key matches`);
    t.match(leaf.keyPem, /^-----BEGIN PRIVATE KEY-----\n/);
    t.equal(leaf.serial, c.serialNumber, 'serial matches Node');
    t.equal(normalizeSerial(leaf.serial), leaf.serial, 'serial is already normalized');
    t.match(leaf.serial, /^[0-7][0-9A-F]{31}$/);
    t.ok(leaf.der.equals(Buffer.from(c.raw)));
    serials.add(leaf.serial);
  }
  t.equal(serials.size, leaves.length, 'serials are unique');

  const gw = node(pki.gatewayServer);
  t.same(gw.keyUsage, [OID.serverAuth]);
  t.equal(gw.subject, 'CN=gateway');
  t.equal(
    gw.subjectAltName,
    'DNS:localhost, DNS:gateway.local, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, URI:spiffe://example.org/ns/gateway/sa/gateway',
  );
  t.equal(gw.checkHost('localhost'), 'localhost');
  t.equal(gw.checkIP('::1'), '::1');

  const gwc = node(pki.gatewayClient);
  t.same(gwc.keyUsage, [OID.clientAuth]);
  t.equal(gwc.subject, 'OU=platform\nCN=gateway');
  t.equal(gwc.subjectAltName, 'URI:spiffe://example.org/ns/gateway/sa/gateway');

  const orders = node(pki.upstreams.orders!);
  t.same(orders.keyUsage, [OID.serverAuth]);
  t.equal(orders.subject, 'CN=orders.internal');
  t.equal(orders.subjectAltName, 'DNS:orders.internal, DNS:localhost, IP Address:127.0.0.1, URI:spiffe://example.org/ns/default/sa/orders');

  const billing = node(pki.clients.billing!);
  t.same(billing.keyUsage, [OID.clientAuth]);
  t.equal(billing.subject, 'O=Example\nOU=payments\nCN=billing');
  t.equal(billing.subjectAltName, 'URI:spiffe://example.org/ns/default/sa/billing');
  const ops = node(pki.clients['ops-admin']!);
  t.equal(ops.subject, 'O=Example\nOU=sre\nCN=ops-admin');
  t.equal(ops.subjectAltName, undefined, 'ops-admin has no SAN');
  t.equal(node(pki.clients.intruder!).subject, 'OU=unknown\nCN=intruder');
  t.equal(node(pki.clients.revoked!).subject, 'OU=payments\nCN=revoked-client');
  t.equal(node(pki.clients.revoked!).subjectAltName, 'URI:spiffe://example.org/ns/default/sa/revoked');
});

t.test('extensions: SKI/AKI, basic constraints, key usage', async (t) => {
  const rootSki = ski(pki.root.der);
  const interSki = ski(pki.intermediate.der);
  t.equal(akiKeyId(certExtensions(pki.root.der).get(OID.aki)!.value), rootSki, 'root AKI = own SKI');
  t.equal(akiKeyId(certExtensions(pki.intermediate.der).get(OID.aki)!.value), rootSki);
  t.equal(akiKeyId(certExtensions(pki.gatewayServer.der).get(OID.aki)!.value), interSki);
  t.not(rootSki, interSki);

  t.same(basicConstraints(pki.root.der), { critical: true, ca: true }, 'root has no path length');
  t.same(basicConstraints(pki.intermediate.der), { critical: true, ca: true, pathLength: 0 });
  t.same(basicConstraints(pki.clients.billing!.der), { critical: true, ca: false });

  t.same(keyUsages(pki.root.der), ['keyCertSign', 'cRLSign']);
  t.same(keyUsages(pki.intermediate.der), ['keyCertSign', 'cRLSign']);
  t.same(keyUsages(pki.gatewayServer.der), ['digitalSignature'], 'EC leaf: no keyEncipherment');
  t.equal(certExtensions(pki.gatewayServer.der).get(OID.keyUsage)!.critical, true);
  t.equal(certExtensions(pki.gatewayServer.der).get(OID.eku)!.critical, false);
  t.notOk(certExtensions(pki.root.der).has(OID.eku), 'CAs carry no EKU');

  const both = await issueLeaf(pki.intermediate, { subject: { CN: 'both' }, usage: 'client+server' });
  t.same(node(both).keyUsage, [OID.serverAuth, OID.clientAuth]);
  t.equal(both.name, 'both', 'name defaults to the CN');
});

t.test('names: multi-valued OU, all attributes, verbatim values', async (t) => {
  const leaf = await issueLeaf(pki.intermediate, {
    name: 'multi',
    subject: {
      CN: '#not-hex "quoted"',
      OU: ['team-a', 'team-b'],
      O: 'Example',
      L: 'Zürich',
      ST: 'ZH',
      C: 'CH',
      DC: ['org', 'example'],
      emailAddress: 'ops@example.org',
    },
    emails: ['ops@example.org'],
    usage: 'client',
  });
  const c = node(leaf);
  t.equal(
    c.subject,
    'DC=org\nDC=example\nC=CH\nST=ZH\nL=Zürich\nO=Example\nOU=team-a\nOU=team-b\nCN=\\#not-hex \\"quoted\\"\nemailAddress=ops@example.org',
    'Node escapes the printout',
  );
  t.ok(leaf.der.includes(Buffer.from('#not-hex "quoted"')), 'CN encoded verbatim, not as hex or unquoted');
  t.equal(c.subjectAltName, 'email:ops@example.org');
  t.equal(c.checkEmail('ops@example.org'), 'ops@example.org');
});

t.test('validity: defaults and explicit past/future periods', async (t) => {
  const now = new Date('2030-06-01T12:00:00Z');
  const dated = await createDevPki({ now, validityDays: 10, upstreamNames: ['svc'] });
  const from = (i: Issued) => new Date(node(i).validFrom).getTime();
  const to = (i: Issued) => new Date(node(i).validTo).getTime();
  const hour = 3600_000;
  const day = 24 * hour;
  t.equal(from(dated.root), now.getTime() - hour);
  t.equal(to(dated.root), now.getTime() + 20 * day, 'CAs live twice as long as leaves');
  t.equal(to(dated.intermediate), now.getTime() + 20 * day);
  t.equal(from(dated.clients.billing!), now.getTime() - hour);
  t.equal(to(dated.clients.billing!), now.getTime() + 10 * day);
  t.same(Object.keys(dated.upstreams), ['svc']);

  const root = await createRootCa({ subject: { CN: 'R' }, now });
  t.equal(to(root), now.getTime() + 60 * day, 'root default 60 days');
  t.equal(root.name, 'root');
  const inter = await createIntermediateCa(root, { subject: { CN: 'I' }, now, pathLength: 2 });
  t.equal(inter.name, 'intermediate');
  t.same(basicConstraints(inter.der), { critical: true, ca: true, pathLength: 2 });
  const leaf = await issueLeaf(inter, { subject: { CN: 'L' }, now, usage: 'client' });
  t.equal(to(leaf), now.getTime() + 30 * day, 'leaf default 30 days');
  t.equal(pemCount(leaf.chainPem), 2, 'leaf chain: leaf + intermediate, no root');

  const expired = await issueLeaf(pki.intermediate, {
    subject: { CN: 'expired' },
    usage: 'client',
    notBefore: new Date(Date.now() - 10 * day),
    notAfter: new Date(Date.now() - day),
  });
  t.ok(to(expired) < Date.now(), 'expired');
  const future = await issueLeaf(pki.intermediate, {
    subject: { CN: 'future' },
    usage: 'client',
    notBefore: new Date(Date.now() + day),
    notAfter: new Date(Date.now() + 10 * day),
  });
  t.ok(from(future) > Date.now(), 'not yet valid');

  // Only one bound given: the other keeps the period from inverting.
  const onlyPastEnd = await issueLeaf(pki.intermediate, { subject: { CN: 'p' }, usage: 'client', notAfter: new Date(Date.now() - day) });
  t.ok(from(onlyPastEnd) < to(onlyPastEnd) && to(onlyPastEnd) < Date.now());
  await t.rejects(
    issueLeaf(pki.intermediate, { subject: { CN: 'x' }, usage: 'client', notBefore: new Date(2000), notAfter: new Date(1000) }),
    /notAfter/,
  );
});

t.test('RSA-2048 option', async (t) => {
  const root = await createRootCa({ subject: { CN: 'RSA Root' }, keyAlgorithm: 'RSA-2048' });
  const leaf = await issueLeaf(root, { subject: { CN: 'rsa-leaf' }, keyAlgorithm: 'RSA-2048', usage: 'server', dns: ['localhost'] });
  const ecLeaf = await issueLeaf(root, { subject: { CN: 'ec-leaf' }, usage: 'client' });
  const r = node(root);
  t.equal(r.publicKey.asymmetricKeyType, 'rsa');
  t.equal(r.publicKey.asymmetricKeyDetails?.modulusLength, 2048);
  t.ok(node(leaf).verify(r.publicKey) && node(ecLeaf).verify(r.publicKey), 'RSA CA signs RSA and EC leaves');
  t.same(keyUsages(leaf.der), ['digitalSignature', 'keyEncipherment']);
  t.equal(leaf.chainPem, leaf.certPem, 'directly under the root: chain is the leaf only');
  t.equal(crypto.createPrivateKey(leaf.keyPem).asymmetricKeyType, 'rsa');

  // An RSA server authenticating an EC client, both under the RSA root.
  const server = await startServer(t, { key: leaf.keyPem, cert: leaf.chainPem, ca: root.certPem });
  const res = await connect(server.port, root.certPem, ecLeaf);
  t.equal(res.authorized, true);
  t.equal(res.data, 'hello ec-leaf');
});

t.test('CRLs', async (t) => {
  for (const crl of [pki.rootCrl, pki.intermediateCrl]) {
    t.match(crl.pem, /^-----BEGIN X509 CRL-----\n[\s\S]+\n-----END X509 CRL-----\n$/);
    t.ok(Buffer.from(crl.pem.replace(/-----[^-]+-----|\s/g, ''), 'base64').equals(crl.der), 'PEM and DER agree');
  }
  const root = parseCrl(pki.rootCrl.der);
  const inter = parseCrl(pki.intermediateCrl.der);
  t.same(root.entries, [], 'root CRL is empty');
  t.same(inter.entries, [{ serial: pki.clients.revoked!.serial, reason: 1 }], 'revoked client, keyCompromise');
  t.ok(crypto.verify('sha256', root.tbs, node(pki.root).publicKey, root.signature), 'root CRL signed by root');
  t.ok(crypto.verify('sha256', inter.tbs, node(pki.intermediate).publicKey, inter.signature));
  t.equal(akiKeyId(inter.extensions.get(OID.aki)!.value), ski(pki.intermediate.der));
  t.equal(akiKeyId(root.extensions.get(OID.aki)!.value), ski(pki.root.der));
  t.same(inter.extensions.get(OID.crlNumber)!.value, Buffer.from([0x02, 0x01, 0x01]), 'CRL number 1');

  const crl = await createCrl(pki.intermediate, {
    crlNumber: 2n ** 64n,
    revoked: [
      { serial: '01:02:03', reason: 'caCompromise', revokedAt: new Date('2024-01-01T00:00:00Z') },
      { serial: 'ab', reason: 'unspecified' },
      { serial: 'cd' },
      { serial: '0e', reason: 'certificateHold' },
    ],
    thisUpdate: new Date(Date.now() - 2 * 86400_000),
    nextUpdate: new Date(Date.now() - 86400_000),
  });
  const parsed = parseCrl(crl.der);
  t.same(parsed.entries, [
    { serial: '010203', reason: 2 },
    { serial: '00AB' },
    { serial: '00CD' },
    { serial: '0E', reason: 6 },
  ], 'reason codes encoded; unspecified omitted as RFC 5280 asks; DER keeps serials positive');
  t.same(parsed.extensions.get(OID.crlNumber)!.value, Buffer.from([0x02, 0x09, 0x01, 0, 0, 0, 0, 0, 0, 0, 0]));

  const other = await createRootCa({ subject: { CN: 'other' } });
  const forged = parseCrl((await createCrl(pki.intermediate, { signingKeys: other.keys })).der);
  t.notOk(crypto.verify('sha256', forged.tbs, node(pki.intermediate).publicKey, forged.signature), 'wrong key: signature fails');
  t.equal(akiKeyId(forged.extensions.get(OID.aki)!.value), ski(pki.intermediate.der), 'but still names the real issuer');
});

t.test('TLS handshake with Node', async (t) => {
  const base = { key: pki.gatewayServer.keyPem, cert: pki.gatewayServer.chainPem, ca: pki.root.certPem };

  const plain = await startServer(t, base);
  const ok = await connect(plain.port, pki.root.certPem, pki.clients.billing!);
  t.equal(ok.secureConnect, true);
  t.equal(ok.authorized, true, 'client trusts the gateway');
  t.equal(ok.data, 'hello billing');
  t.same(plain.accepted, [{ authorized: true, cn: 'billing' }], 'server trusts the client');
  // Without CRLs the revoked client still gets in, so the next check really tests the CRL.
  t.equal((await connect(plain.port, pki.root.certPem, pki.clients.revoked!)).data, 'hello revoked-client');

  const expired = await issueLeaf(pki.intermediate, {
    subject: { CN: 'expired' },
    usage: 'client',
    notBefore: new Date(Date.now() - 10 * 86400_000),
    notAfter: new Date(Date.now() - 86400_000),
  });
  const exp = await connect(plain.port, pki.root.certPem, expired);
  t.equal(exp.data, '', 'expired client gets nothing');

  const withCrl = await startServer(t, { ...base, crl: [pki.rootCrl.pem, pki.intermediateCrl.pem] });
  const revoked = await connect(withCrl.port, pki.root.certPem, pki.clients.revoked!);
  t.equal(revoked.data, '', 'revoked client gets nothing');
  const billing = await connect(withCrl.port, pki.root.certPem, pki.clients.billing!);
  t.equal(billing.authorized, true);
  t.equal(billing.data, 'hello billing');
  t.same(withCrl.accepted, [{ authorized: true, cn: 'billing' }], 'only billing was accepted');
});

t.test('writeDevPki', async (t) => {
  const dir = path.join(t.testdir(), 'nested', 'pki');
  const first = await writeDevPki(pki, dir);
  const names = [
    'root-ca.crt', 'root-ca.key', 'intermediate-ca.crt', 'intermediate-ca.key', 'ca-bundle.pem',
    'gateway.crt', 'gateway.key', 'gateway-client.crt', 'gateway-client.key',
    'upstream-orders.crt', 'upstream-orders.key', 'upstream-inventory.crt', 'upstream-inventory.key',
    'client-billing.crt', 'client-billing.key', 'client-ops-admin.crt', 'client-ops-admin.key',
    'client-intruder.crt', 'client-intruder.key', 'client-revoked.crt', 'client-revoked.key',
    'root.crl.pem', 'intermediate.crl.pem',
  ];
  t.same(first, names.map((n) => path.join(dir, n)));

  // A key left world-readable by an earlier run must come back 0600.
  await writeFile(path.join(dir, 'gateway.key'), 'stale', { mode: 0o644 });
  const paths = await writeDevPki(pki, dir);
  for (const p of paths) {
    const mode = (await stat(p)).mode & 0o777;
    t.equal(mode, p.endsWith('.key') ? 0o600 : 0o644, `${path.basename(p)} mode ${mode.toString(8)}`);
  }
  t.same((await readdir(dir)).sort(), [...names].sort(), 'no temp files left behind');
  t.equal(await readFile(path.join(dir, 'gateway.key'), 'utf8'), pki.gatewayServer.keyPem);
  t.equal(await readFile(path.join(dir, 'gateway.crt'), 'utf8'), pki.gatewayServer.chainPem);
  t.equal(await readFile(path.join(dir, 'ca-bundle.pem'), 'utf8'), pki.caBundlePem);
  t.equal(await readFile(path.join(dir, 'intermediate.crl.pem'), 'utf8'), pki.intermediateCrl.pem);

  await t.rejects(
    writeDevPki({ ...pki, clients: { '../escape': pki.clients.billing! } }, dir),
    /not usable in a file name/,
  );
});

t.test('createDevPki input checks', async (t) => {
  await t.rejects(createDevPki({ upstreamNames: ['../x'] }), /DNS label/);
  await t.rejects(createDevPki({ upstreamNames: ['a', 'a'] }), /duplicate/);
  await t.rejects(createDevPki({ validityDays: 0 }), /validityDays/);
});
