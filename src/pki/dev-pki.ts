// Development/test PKI: generates root and intermediate CAs, leaf certificates and CRLs in pure
// JavaScript (no openssl binary), for the test suite and `mtls-gateway pki init`. Not for production.
import 'reflect-metadata';
import * as crypto from 'node:crypto';
import type { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

// Node's webcrypto is the only provider we ship; peculiar needs it set before any generation.
x509.cryptoProvider.set(crypto.webcrypto);

export type KeyAlgorithm = 'ECDSA-P256' | 'RSA-2048';

export interface NameSpec {
  CN: string;
  OU?: string | string[];
  O?: string;
  L?: string;
  ST?: string;
  C?: string;
  /** In encoded order, most significant first (e.g. ['org', 'example']). */
  DC?: string[];
  emailAddress?: string;
}

export interface Issued {
  readonly name: string;
  readonly certPem: string;
  readonly keyPem: string;
  readonly der: Buffer;
  readonly serial: string;
  readonly chainPem: string;
  readonly keys: CryptoKeyPair;
  readonly cert: x509.X509Certificate;
  readonly issuer: Ca | null;
}

export interface Ca extends Issued {
  readonly isCa: true;
}

export interface Validity {
  notBefore?: Date;
  notAfter?: Date;
}

export interface LeafOptions extends Validity {
  name?: string;
  subject: NameSpec;
  now?: Date;
  keyAlgorithm?: KeyAlgorithm;
  dns?: string[];
  ips?: string[];
  uris?: string[];
  emails?: string[];
  usage: 'client' | 'server' | 'client+server';
}

export type RevocationReason =
  | 'unspecified'
  | 'keyCompromise'
  | 'caCompromise'
  | 'affiliationChanged'
  | 'superseded'
  | 'cessationOfOperation'
  | 'certificateHold';

export interface RevokedEntry {
  serial: string;
  revokedAt?: Date;
  reason?: RevocationReason;
}

export interface CrlOptions {
  revoked?: RevokedEntry[];
  now?: Date;
  thisUpdate?: Date;
  nextUpdate?: Date;
  crlNumber?: number | bigint;
  /** Signs with these keys instead of the issuer's, to produce a CRL whose signature fails. */
  signingKeys?: CryptoKeyPair;
}

export interface DevPki {
  root: Ca;
  intermediate: Ca;
  caBundlePem: string;
  gatewayServer: Issued;
  gatewayClient: Issued;
  upstreams: Record<string, Issued>;
  clients: Record<string, Issued>;
  rootCrl: { pem: string; der: Buffer };
  intermediateCrl: { pem: string; der: Buffer };
}

// The project compiles without the DOM lib, so the WebCrypto types come from Node.
type CryptoKeyPair = webcrypto.CryptoKeyPair;
type CryptoKey = webcrypto.CryptoKey;

const HOUR_MS = 60 * 60 * 1000;
const DAY_MS = 24 * HOUR_MS;
const DEFAULT_LEAF_DAYS = 30;
const DEFAULT_CA_DAYS = 60;
// Backdating absorbs clock skew between the machine that generates and the one that verifies.
const BACKDATE_MS = HOUR_MS;

const CRL_NUMBER_OID = '2.5.29.20';

const REASON_CODES: Record<RevocationReason, x509.X509CrlReason> = {
  unspecified: x509.X509CrlReason.unspecified,
  keyCompromise: x509.X509CrlReason.keyCompromise,
  caCompromise: x509.X509CrlReason.cACompromise,
  affiliationChanged: x509.X509CrlReason.affiliationChanged,
  superseded: x509.X509CrlReason.superseded,
  cessationOfOperation: x509.X509CrlReason.cessationOfOperation,
  certificateHold: x509.X509CrlReason.certificateHold,
};

function keyGenParams(alg: KeyAlgorithm): webcrypto.EcKeyGenParams | webcrypto.RsaHashedKeyGenParams {
  switch (alg) {
    case 'ECDSA-P256':
      return { name: 'ECDSA', namedCurve: 'P-256' };
    case 'RSA-2048':
      return {
        name: 'RSASSA-PKCS1-v1_5',
        modulusLength: 2048,
        publicExponent: new Uint8Array([1, 0, 1]),
        hash: 'SHA-256',
      };
  }
}

async function generateKeys(alg: KeyAlgorithm): Promise<CryptoKeyPair> {
  // Extractable so the private key can be written out as PKCS#8.
  return (await crypto.webcrypto.subtle.generateKey(keyGenParams(alg), true, [
    'sign',
    'verify',
  ])) as CryptoKeyPair;
}

// The signature algorithm follows the signer's key, not the subject's: an RSA leaf under an
// ECDSA CA is signed with ECDSA.
function signingAlgorithmFor(key: CryptoKey): webcrypto.Algorithm | webcrypto.EcdsaParams {
  return key.algorithm.name === 'ECDSA'
    ? ({ name: 'ECDSA', hash: 'SHA-256' } as webcrypto.EcdsaParams)
    : ({ name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } as webcrypto.Algorithm);
}

// The first byte is kept in 0x01..0x7f so the DER INTEGER is positive without a 0x00 pad and
// never shrinks, which keeps the hex serial identical everywhere it is printed.
function randomSerial(): string {
  const bytes = crypto.randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) || 0x01;
  return bytes.toString('hex').toUpperCase();
}

function serialToHex(serial: string): string {
  let hex = serial.replace(/[:\s]/g, '').toLowerCase();
  if (hex.startsWith('0x')) hex = hex.slice(2);
  if (!/^[0-9a-f]+$/.test(hex)) throw new Error(`not a hex serial: ${serial}`);
  if (hex.length % 2 === 1) hex = '0' + hex;
  while (hex.length > 2 && hex.startsWith('00')) hex = hex.slice(2);
  return hex.toUpperCase();
}

function toPem(der: ArrayBuffer | Uint8Array, label: string): string {
  const b64 = Buffer.from(der instanceof Uint8Array ? der : new Uint8Array(der)).toString('base64');
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

function attr(type: string, value: string): x509.JsonAttributeAndObjectValue {
  // Explicit string types bypass peculiar's string parsing, which treats a leading '#' as hex
  // and strips quotes; subject values must be encoded verbatim.
  if (type === 'E' || type === 'DC') return { [type]: [{ ia5String: value }] };
  return {
    [type]: [x509.Name.isPrintableString(value) ? { printableString: value } : { utf8String: value }],
  };
}

// One attribute per RDN (never multi-valued RDNs), in the conventional C..CN order, so that
// multiple OUs appear as separate OU attributes.
function buildName(spec: NameSpec): x509.Name {
  const rdns: x509.JsonAttributeAndObjectValue[] = [];
  for (const dc of spec.DC ?? []) rdns.push(attr('DC', dc));
  if (spec.C !== undefined) rdns.push(attr('C', spec.C));
  if (spec.ST !== undefined) rdns.push(attr('ST', spec.ST));
  if (spec.L !== undefined) rdns.push(attr('L', spec.L));
  if (spec.O !== undefined) rdns.push(attr('O', spec.O));
  const ous = spec.OU === undefined ? [] : Array.isArray(spec.OU) ? spec.OU : [spec.OU];
  for (const ou of ous) rdns.push(attr('OU', ou));
  rdns.push(attr('CN', spec.CN));
  if (spec.emailAddress !== undefined) rdns.push(attr('E', spec.emailAddress));
  return new x509.Name(rdns);
}

// A caller that gives only one bound (e.g. just a past notAfter for an expired certificate) gets
// the other one placed so the period keeps its default length instead of becoming inverted.
function resolveValidity(v: Validity, now: Date, days: number): { notBefore: Date; notAfter: Date } {
  const lengthMs = days * DAY_MS + BACKDATE_MS;
  const defaultBefore = new Date(now.getTime() - BACKDATE_MS);
  const defaultAfter = new Date(now.getTime() + days * DAY_MS);
  let notBefore: Date;
  let notAfter: Date;
  if (v.notBefore !== undefined && v.notAfter !== undefined) {
    notBefore = v.notBefore;
    notAfter = v.notAfter;
  } else if (v.notAfter !== undefined) {
    notAfter = v.notAfter;
    notBefore = notAfter > defaultBefore ? defaultBefore : new Date(notAfter.getTime() - lengthMs);
  } else if (v.notBefore !== undefined) {
    notBefore = v.notBefore;
    notAfter = defaultAfter > notBefore ? defaultAfter : new Date(notBefore.getTime() + lengthMs);
  } else {
    notBefore = defaultBefore;
    notAfter = defaultAfter;
  }
  if (notAfter < notBefore) {
    throw new Error(`notAfter ${notAfter.toISOString()} is before notBefore ${notBefore.toISOString()}`);
  }
  return { notBefore, notAfter };
}

function subjectKeyId(cert: x509.X509Certificate): string {
  const ski = cert.getExtension(x509.SubjectKeyIdentifierExtension);
  if (!ski) throw new Error(`certificate ${cert.subject} has no Subject Key Identifier`);
  return ski.keyId;
}

function finish(name: string, cert: x509.X509Certificate, keys: CryptoKeyPair, issuer: Ca | null): Issued {
  const der = Buffer.from(cert.rawData);
  const certPem = toPem(der, 'CERTIFICATE');
  const keyPem = crypto.KeyObject.from(keys.privateKey).export({ type: 'pkcs8', format: 'pem' }) as string;
  // A root's chain is itself; below it, the issuer's chain minus the root, which peers must
  // already hold as a trust anchor rather than receive from the wire.
  const chainPem = issuer === null ? certPem : certPem + (issuer.issuer === null ? '' : issuer.chainPem);
  return {
    name,
    certPem,
    keyPem,
    der,
    serial: serialToHex(cert.serialNumber),
    chainPem,
    keys,
    cert,
    issuer,
  };
}

interface SignParams {
  subject: x509.Name;
  keys: CryptoKeyPair;
  issuer: Ca | null;
  notBefore: Date;
  notAfter: Date;
  extensions: x509.Extension[];
}

async function sign(p: SignParams): Promise<x509.X509Certificate> {
  const ski = await x509.SubjectKeyIdentifierExtension.create(p.keys.publicKey);
  // For a self-signed root the AKI names its own key, which is what path builders expect.
  const akiKeyId = p.issuer === null ? ski.keyId : subjectKeyId(p.issuer.cert);
  const extensions = [...p.extensions, ski, new x509.AuthorityKeyIdentifierExtension(akiKeyId)];
  const signingKey = p.issuer === null ? p.keys.privateKey : p.issuer.keys.privateKey;
  return x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: p.subject,
    // The issuer's encoded subject is reused byte for byte so name chaining matches exactly.
    issuer: p.issuer === null ? p.subject : p.issuer.cert.subjectName,
    notBefore: p.notBefore,
    notAfter: p.notAfter,
    publicKey: p.keys.publicKey,
    signingKey,
    signingAlgorithm: signingAlgorithmFor(signingKey),
    extensions,
  });
}

function caExtensions(pathLength: number | undefined): x509.Extension[] {
  return [
    new x509.BasicConstraintsExtension(true, pathLength, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
  ];
}

export async function createRootCa(
  opts: { name?: string; subject: NameSpec; now?: Date; keyAlgorithm?: KeyAlgorithm } & Validity,
): Promise<Ca> {
  const now = opts.now ?? new Date();
  const keys = await generateKeys(opts.keyAlgorithm ?? 'ECDSA-P256');
  const cert = await sign({
    subject: buildName(opts.subject),
    keys,
    issuer: null,
    ...resolveValidity(opts, now, DEFAULT_CA_DAYS),
    // No path length on the root so tests can build deeper hierarchies under it.
    extensions: caExtensions(undefined),
  });
  return { ...(finish(opts.name ?? 'root', cert, keys, null)), isCa: true };
}

export async function createIntermediateCa(
  parent: Ca,
  opts: {
    name?: string;
    subject: NameSpec;
    now?: Date;
    keyAlgorithm?: KeyAlgorithm;
    /** Default 0: the intermediate may issue only leaves. */
    pathLength?: number;
  } & Validity,
): Promise<Ca> {
  const now = opts.now ?? new Date();
  const keys = await generateKeys(opts.keyAlgorithm ?? 'ECDSA-P256');
  const cert = await sign({
    subject: buildName(opts.subject),
    keys,
    issuer: parent,
    ...resolveValidity(opts, now, DEFAULT_CA_DAYS),
    extensions: caExtensions(opts.pathLength ?? 0),
  });
  return { ...(finish(opts.name ?? 'intermediate', cert, keys, parent)), isCa: true };
}

export async function issueLeaf(issuer: Ca, opts: LeafOptions): Promise<Issued> {
  const now = opts.now ?? new Date();
  const alg = opts.keyAlgorithm ?? 'ECDSA-P256';
  const keys = await generateKeys(alg);

  // keyEncipherment only matters for RSA key transport (TLS 1.2 RSA kex); on an EC key it is wrong.
  let usages = x509.KeyUsageFlags.digitalSignature;
  if (alg === 'RSA-2048') usages |= x509.KeyUsageFlags.keyEncipherment;
  const eku: string[] = [];
  if (opts.usage === 'server' || opts.usage === 'client+server') eku.push(x509.ExtendedKeyUsage.serverAuth);
  if (opts.usage === 'client' || opts.usage === 'client+server') eku.push(x509.ExtendedKeyUsage.clientAuth);

  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(usages, true),
    new x509.ExtendedKeyUsageExtension(eku, false),
  ];
  const san: x509.JsonGeneralNames = [
    ...(opts.dns ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(opts.ips ?? []).map((value) => ({ type: 'ip' as const, value })),
    ...(opts.emails ?? []).map((value) => ({ type: 'email' as const, value })),
    ...(opts.uris ?? []).map((value) => ({ type: 'url' as const, value })),
  ];
  // RFC 5280 makes the SAN critical when the subject is empty; ours always carries a CN.
  if (san.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(san, false));

  const cert = await sign({
    subject: buildName(opts.subject),
    keys,
    issuer,
    ...resolveValidity(opts, now, DEFAULT_LEAF_DAYS),
    extensions,
  });
  return finish(opts.name ?? opts.subject.CN, cert, keys, issuer);
}

function encodeDerInteger(value: bigint): Uint8Array {
  if (value < 0n) throw new Error('CRL number must not be negative');
  let hex = value.toString(16);
  if (hex.length % 2 === 1) hex = '0' + hex;
  let body = Buffer.from(hex, 'hex');
  if ((body[0]! & 0x80) !== 0) body = Buffer.concat([Buffer.from([0]), body]);
  // RFC 5280 caps the CRL number at 20 octets, so a short-form length always suffices.
  if (body.length > 20) throw new Error('CRL number longer than 20 octets');
  return Buffer.concat([Buffer.from([0x02, body.length]), body]);
}

export async function createCrl(issuer: Ca, opts: CrlOptions = {}): Promise<{ pem: string; der: Buffer }> {
  const now = opts.now ?? new Date();
  const thisUpdate = opts.thisUpdate ?? new Date(now.getTime() - 60 * 1000);
  const nextUpdate = opts.nextUpdate ?? new Date(now.getTime() + 7 * DAY_MS);
  // Seconds since the epoch keep successive CRLs of one CA increasing without the caller tracking
  // state, which matters to consumers that refuse to go back to an older CRL number.
  const crlNumber = BigInt(opts.crlNumber ?? Math.floor(thisUpdate.getTime() / 1000));
  const signingKey = (opts.signingKeys ?? issuer.keys).privateKey;

  const crl = await x509.X509CrlGenerator.create({
    issuer: issuer.cert.subjectName,
    thisUpdate,
    nextUpdate,
    signingKey,
    signingAlgorithm: signingAlgorithmFor(signingKey),
    extensions: [
      new x509.AuthorityKeyIdentifierExtension(subjectKeyId(issuer.cert)),
      new x509.Extension(CRL_NUMBER_OID, false, encodeDerInteger(crlNumber)),
    ],
    entries: (opts.revoked ?? []).map((e) => ({
      serialNumber: serialToHex(e.serial),
      revocationDate: e.revokedAt ?? thisUpdate,
      // 'unspecified' (0) is left out by peculiar, as RFC 5280 5.3.1 asks: the extension SHOULD
      // be absent rather than carry unspecified.
      ...(e.reason !== undefined ? { reason: REASON_CODES[e.reason] } : {}),
    })),
  });
  const der = Buffer.from(crl.rawData);
  // peculiar labels it 'CRL'; OpenSSL and Node only read 'X509 CRL'.
  return { pem: toPem(der, 'X509 CRL'), der };
}

const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

export async function createDevPki(
  opts: { now?: Date; keyAlgorithm?: KeyAlgorithm; upstreamNames?: string[]; validityDays?: number } = {},
): Promise<DevPki> {
  const now = opts.now ?? new Date();
  const keyAlgorithm = opts.keyAlgorithm ?? 'ECDSA-P256';
  const leafDays = opts.validityDays ?? DEFAULT_LEAF_DAYS;
  if (!(leafDays > 0)) throw new Error(`validityDays must be positive: ${leafDays}`);
  const upstreamNames = opts.upstreamNames ?? ['orders', 'inventory'];
  for (const n of upstreamNames) {
    // Upstream names become DNS names, SPIFFE path segments and file names.
    if (!DNS_LABEL.test(n)) throw new Error(`upstream name must be a lower-case DNS label: ${JSON.stringify(n)}`);
  }
  if (new Set(upstreamNames).size !== upstreamNames.length) throw new Error('duplicate upstream names');

  const backdated = new Date(now.getTime() - BACKDATE_MS);
  // CAs outlive their leaves so no leaf is ever valid past its issuer.
  const caValidity = { notBefore: backdated, notAfter: new Date(now.getTime() + 2 * leafDays * DAY_MS) };
  const leafValidity = { notBefore: backdated, notAfter: new Date(now.getTime() + leafDays * DAY_MS) };
  const common = { now, keyAlgorithm, ...leafValidity };

  const root = await createRootCa({
    name: 'root',
    subject: { CN: 'Example Dev Root CA', O: 'Example' },
    now,
    keyAlgorithm,
    ...caValidity,
  });
  const intermediate = await createIntermediateCa(root, {
    name: 'intermediate',
    subject: { CN: 'Example Dev Intermediate CA', O: 'Example' },
    now,
    keyAlgorithm,
    ...caValidity,
  });

  const gatewaySpiffe = 'spiffe://example.org/ns/gateway/sa/gateway';
  const [gatewayServer, gatewayClient, billing, opsAdmin, intruder, revoked, ...upstreamList] = await Promise.all([
    issueLeaf(intermediate, {
      ...common,
      name: 'gateway',
      subject: { CN: 'gateway' },
      dns: ['localhost', 'gateway.local'],
      ips: ['127.0.0.1', '::1'],
      uris: [gatewaySpiffe],
      usage: 'server',
    }),
    issueLeaf(intermediate, {
      ...common,
      name: 'gateway-client',
      subject: { CN: 'gateway', OU: 'platform' },
      uris: [gatewaySpiffe],
      usage: 'client',
    }),
    issueLeaf(intermediate, {
      ...common,
      name: 'billing',
      subject: { CN: 'billing', OU: 'payments', O: 'Example' },
      uris: ['spiffe://example.org/ns/default/sa/billing'],
      usage: 'client',
    }),
    issueLeaf(intermediate, {
      ...common,
      name: 'ops-admin',
      subject: { CN: 'ops-admin', OU: 'sre', O: 'Example' },
      usage: 'client',
    }),
    issueLeaf(intermediate, {
      ...common,
      name: 'intruder',
      subject: { CN: 'intruder', OU: 'unknown' },
      uris: ['spiffe://example.org/ns/default/sa/intruder'],
      usage: 'client',
    }),
    issueLeaf(intermediate, {
      ...common,
      name: 'revoked',
      subject: { CN: 'revoked-client', OU: 'payments' },
      uris: ['spiffe://example.org/ns/default/sa/revoked'],
      usage: 'client',
    }),
    ...upstreamNames.map((n) =>
      issueLeaf(intermediate, {
        ...common,
        name: n,
        subject: { CN: `${n}.internal` },
        dns: [`${n}.internal`, 'localhost'],
        ips: ['127.0.0.1'],
        uris: [`spiffe://example.org/ns/default/sa/${n}`],
        usage: 'server',
      }),
    ),
  ]);

  const upstreams: Record<string, Issued> = {};
  upstreamNames.forEach((n, i) => {
    upstreams[n] = upstreamList[i]!;
  });

  // OpenSSL's CRL_CHECK_ALL needs a current CRL from every CA in the chain, so the root gets one
  // even though it revokes nothing.
  const [rootCrl, intermediateCrl] = await Promise.all([
    createCrl(root, { now, crlNumber: 1 }),
    createCrl(intermediate, { now, crlNumber: 1, revoked: [{ serial: revoked!.serial, reason: 'keyCompromise' }] }),
  ]);

  return {
    root,
    intermediate,
    caBundlePem: intermediate.certPem + root.certPem,
    gatewayServer: gatewayServer!,
    gatewayClient: gatewayClient!,
    upstreams,
    clients: { billing: billing!, 'ops-admin': opsAdmin!, intruder: intruder!, revoked: revoked! },
    rootCrl,
    intermediateCrl,
  };
}

// ---- Working with a PKI that was written to disk (`mtls-gateway pki issue / revoke / crl`) ----

function keyImportParams(key: crypto.KeyObject): webcrypto.EcKeyImportParams | webcrypto.RsaHashedImportParams {
  if (key.asymmetricKeyType === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    const named = curve === 'prime256v1' ? 'P-256' : curve === 'secp384r1' ? 'P-384' : curve === 'secp521r1' ? 'P-521' : null;
    if (named === null) throw new Error(`unsupported EC curve ${curve ?? '(unknown)'}`);
    return { name: 'ECDSA', namedCurve: named };
  }
  if (key.asymmetricKeyType === 'rsa') return { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
  throw new Error(`unsupported key type ${key.asymmetricKeyType ?? '(unknown)'}`);
}

/**
 * A CA read back from PEM files, usable with issueLeaf and createCrl. `issuer` is the CA above it
 * (null for a root): it decides which chain the leaves it issues carry, exactly as for a CA
 * created in memory.
 */
export async function loadCa(opts: { certPem: string; keyPem: string; issuer: Ca | null; name?: string }): Promise<Ca> {
  const cert = new x509.X509Certificate(opts.certPem);
  const basic = cert.getExtension(x509.BasicConstraintsExtension);
  if (!basic?.ca) throw new Error(`${cert.subject} is not a CA certificate`);
  const keyObject = crypto.createPrivateKey(opts.keyPem);
  const nodeCert = new crypto.X509Certificate(opts.certPem);
  if (!nodeCert.checkPrivateKey(keyObject)) throw new Error(`the private key does not belong to ${cert.subject}`);
  const params = keyImportParams(keyObject);
  const pkcs8 = keyObject.export({ type: 'pkcs8', format: 'der' });
  const privateKey = await crypto.webcrypto.subtle.importKey('pkcs8', pkcs8, params, true, ['sign']);
  const publicKey = await crypto.webcrypto.subtle.importKey('spki', nodeCert.publicKey.export({ type: 'spki', format: 'der' }), params, true, ['verify']);
  return { ...finish(opts.name ?? cert.subject, cert, { privateKey, publicKey }, opts.issuer), isCa: true };
}

const REASON_NAMES = new Map<number, RevocationReason>(
  (Object.entries(REASON_CODES) as [RevocationReason, x509.X509CrlReason][]).map(([name, code]) => [code, name]),
);

export interface CrlContents {
  readonly crlNumber: bigint | null;
  readonly thisUpdate: Date;
  readonly nextUpdate: Date | null;
  readonly revoked: readonly (RevokedEntry & { readonly revokedAt: Date })[];
}

/** Reads back a CRL this CA signed (the signature is checked, so a foreign CRL is never merged). */
export async function readCrl(issuer: Ca, pemOrDer: string | Buffer): Promise<CrlContents> {
  const raw = typeof pemOrDer === 'string' ? pemOrDer.replace(/(BEGIN|END) X509 CRL/g, '$1 CRL') : pemOrDer;
  const crl = new x509.X509Crl(raw);
  if (!(await crl.verify({ publicKey: issuer.keys.publicKey }))) {
    throw new Error(`the CRL is not signed by ${issuer.cert.subject}`);
  }
  const numberExt = crl.extensions.find((e) => e.type === CRL_NUMBER_OID);
  let crlNumber: bigint | null = null;
  if (numberExt) {
    // extnValue holds a DER INTEGER: tag, one length byte (CRL numbers are at most 20 octets), content.
    const body = Buffer.from(numberExt.value).subarray(2);
    crlNumber = body.length === 0 ? 0n : BigInt('0x' + body.toString('hex'));
  }
  return {
    crlNumber,
    thisUpdate: crl.thisUpdate,
    nextUpdate: crl.nextUpdate ?? null,
    revoked: crl.entries.map((e) => ({
      serial: serialToHex(e.serialNumber),
      revokedAt: e.revocationDate,
      ...(e.reason !== undefined && REASON_NAMES.has(e.reason) ? { reason: REASON_NAMES.get(e.reason)! } : {}),
    })),
  };
}

/**
 * A new CRL for `issuer` that keeps every entry of `previous` (a CRL it signed earlier), adds
 * `add`, and carries a CRL number above the previous one, as RFC 5280 5.2.3 requires.
 */
export async function reissueCrl(
  issuer: Ca,
  previous: string | Buffer | null,
  opts: { add?: RevokedEntry[]; now?: Date; nextUpdate?: Date } = {},
): Promise<{ pem: string; der: Buffer; crlNumber: bigint; revoked: RevokedEntry[] }> {
  const now = opts.now ?? new Date();
  const before = previous === null ? null : await readCrl(issuer, previous);
  const entries = new Map<string, RevokedEntry>();
  for (const e of before?.revoked ?? []) entries.set(e.serial, e);
  for (const e of opts.add ?? []) {
    const serial = serialToHex(e.serial);
    if (!entries.has(serial)) entries.set(serial, { ...e, serial, revokedAt: e.revokedAt ?? now });
  }
  const crlNumber = (before?.crlNumber ?? 0n) + 1n;
  const revoked = [...entries.values()];
  const crl = await createCrl(issuer, { now, crlNumber, revoked, ...(opts.nextUpdate ? { nextUpdate: opts.nextUpdate } : {}) });
  return { ...crl, crlNumber, revoked };
}
