/**
 * Revocation: a direct DER writer for CRLs, used by tests and benchmarks to produce CRLs of any
 * size (1M entries in seconds; generic ASN.1 libraries cannot) and CRLs with unusual features
 * (delta, indirect, critical extensions) that exercise the parser and validator. Not used to issue
 * real CRLs.
 */

import { constants, randomBytes, sign, type KeyObject } from 'node:crypto';
import { normalizeSerial } from '../x509/canonical-hex.js';
import { certFields } from '../x509/cert-fields.js';

export interface CrlWriterEntry {
  /** Hex serial (any case, separators allowed). */
  readonly serial: string;
  /** RFC 5280 CRLReason code; omitted -> no reasonCode extension. */
  readonly reason?: number;
  readonly revokedAt?: Date;
  /** Extra entry extensions (e.g. certificateIssuer to make an indirect CRL). */
  readonly extensions?: readonly CrlWriterExtension[];
}

export interface CrlWriterExtension {
  readonly oid: string;
  readonly critical?: boolean;
  /** DER of the extension value (the content of extnValue's OCTET STRING). */
  readonly value: Buffer;
}

export interface MakeCrlOptions {
  /** DER of the issuing CA's certificate: its subject becomes the CRL issuer, its SKI the AKI. */
  readonly issuerCertDer: Buffer;
  /** The CA's private key; the signature algorithm follows from its type (EC curve picks the SHA-2 size). */
  readonly issuerKey: KeyObject;
  /** Number of random-serial entries. */
  readonly entries: number;
  readonly thisUpdate: Date;
  /** null omits nextUpdate. */
  readonly nextUpdate: Date | null;
  /** null omits the CRL Number extension. */
  readonly crlNumber: bigint | null;
  /** Entries with known serials, written before the random ones. */
  readonly includeSerials?: ReadonlyArray<string | CrlWriterEntry>;
  /** Every n-th random entry gets a reasonCode (default 4; 0 = none), as in real CRLs. */
  readonly reasonEvery?: number;
  /** Revocation date of the random entries (default thisUpdate minus one hour). */
  readonly revokedAt?: Date;
  /** Length of the random serials in bytes (default 16). */
  readonly serialBytes?: number;
  /** Makes a delta CRL (critical deltaCRLIndicator with this base number). */
  readonly deltaBaseCrlNumber?: bigint;
  readonly extraExtensions?: readonly CrlWriterExtension[];
  /** Overrides the issuer Name DER (default: the certificate's subject). */
  readonly issuerNameDer?: Buffer;
  /** Overrides the AKI key id (hex); null omits the AKI (default: the certificate's SKI, if any). */
  readonly authorityKeyId?: string | null;
  /** With an 'rsa' key, sign RSASSA-PSS (SHA-256, salt 32) instead of PKCS#1 v1.5. */
  readonly rsaPss?: boolean;
}

function encLen(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function lenSize(n: number): number {
  return n < 0x80 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : n < 0x1000000 ? 4 : 5;
}

export function tlv(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content);
  return Buffer.concat([Buffer.from([tag]), encLen(body.length), body]);
}

export function encOid(oid: string): Buffer {
  const arcs = oid.split('.').map((a) => BigInt(a));
  const [a0, a1, ...rest] = arcs;
  if (a0 === undefined || a1 === undefined) throw new Error(`bad OID ${oid}`);
  const out: number[] = [];
  for (const arc of [a0 * 40n + a1, ...rest]) {
    const chunk: number[] = [Number(arc & 0x7fn)];
    for (let v = arc >> 7n; v > 0n; v >>= 7n) chunk.unshift(Number(v & 0x7fn) | 0x80);
    out.push(...chunk);
  }
  return tlv(0x06, Buffer.from(out));
}

/** Positive INTEGER content: minimal, with a 00 sign octet when the high bit is set. */
function integerContent(bytes: Buffer): Buffer {
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0) i++;
  const b = bytes.subarray(i);
  return b.length > 0 && b[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), b]) : b.length === 0 ? Buffer.from([0]) : b;
}

function encBigInt(v: bigint): Buffer {
  let hex = v.toString(16);
  if (hex.length % 2) hex = '0' + hex;
  return tlv(0x02, integerContent(Buffer.from(hex, 'hex')));
}

/** RFC 5280 4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050. */
function encTime(d: Date): Buffer {
  const y = d.getUTCFullYear();
  const p2 = (n: number): string => String(n).padStart(2, '0');
  const rest = `${p2(d.getUTCMonth() + 1)}${p2(d.getUTCDate())}${p2(d.getUTCHours())}${p2(d.getUTCMinutes())}${p2(d.getUTCSeconds())}Z`;
  if (y >= 1950 && y < 2050) return tlv(0x17, Buffer.from(`${p2(y % 100)}${rest}`, 'latin1'));
  return tlv(0x18, Buffer.from(`${String(y).padStart(4, '0')}${rest}`, 'latin1'));
}

export function encExtension(e: CrlWriterExtension): Buffer {
  return tlv(0x30, encOid(e.oid), e.critical ? Buffer.from([0x01, 0x01, 0xff]) : Buffer.alloc(0), tlv(0x04, e.value));
}

export interface Signer {
  readonly algId: Buffer;
  sign(data: Buffer): Buffer;
}

export function signerFor(key: KeyObject, rsaPss: boolean): Signer {
  const nul = Buffer.from([0x05, 0x00]);
  const type = key.asymmetricKeyType === 'rsa' && rsaPss ? 'rsa-pss' : key.asymmetricKeyType;
  switch (type) {
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      const [hash, oid] = curve === 'secp384r1' ? ['sha384', '1.2.840.10045.4.3.3'] : curve === 'secp521r1' ? ['sha512', '1.2.840.10045.4.3.4'] : ['sha256', '1.2.840.10045.4.3.2'];
      return { algId: tlv(0x30, encOid(oid)), sign: (d) => sign(hash, d, { key, dsaEncoding: 'der' }) };
    }
    case 'rsa':
      return { algId: tlv(0x30, encOid('1.2.840.113549.1.1.11'), nul), sign: (d) => sign('sha256', d, key) };
    case 'rsa-pss': {
      const sha256 = tlv(0x30, encOid('2.16.840.1.101.3.4.2.1'), nul);
      const params = tlv(0x30,
        tlv(0xa0, sha256),
        tlv(0xa1, tlv(0x30, encOid('1.2.840.113549.1.1.8'), sha256)),
        tlv(0xa2, encBigInt(32n)));
      return {
        algId: tlv(0x30, encOid('1.2.840.113549.1.1.10'), params),
        sign: (d) => sign('sha256', d, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }),
      };
    }
    case 'ed25519':
      return { algId: tlv(0x30, encOid('1.3.101.112')), sign: (d) => sign(null, d, key) };
    case 'ed448':
      return { algId: tlv(0x30, encOid('1.3.101.113')), sign: (d) => sign(null, d, key) };
    default:
      throw new Error(`crl-writer: unsupported key type ${key.asymmetricKeyType}`);
  }
}

function encEntry(e: CrlWriterEntry, defaultDate: Date): Buffer {
  const serial = Buffer.from(normalizeSerial(e.serial), 'hex');
  const exts: Buffer[] = [];
  if (e.reason !== undefined) exts.push(encExtension({ oid: '2.5.29.21', value: tlv(0x0a, Buffer.from([e.reason])) }));
  for (const x of e.extensions ?? []) exts.push(encExtension(x));
  return tlv(0x30,
    tlv(0x02, integerContent(serial)),
    encTime(e.revokedAt ?? defaultDate),
    exts.length ? tlv(0x30, ...exts) : Buffer.alloc(0));
}

/** Reason codes cycled through the random entries (all valid, 7 is unassigned). */
const REASON_CYCLE = [1, 4, 5, 3, 0, 9] as const;

/**
 * Writes and signs a v2 CRL. The random entries are written straight into one buffer (sizes are
 * computed first), so 1M entries cost one allocation plus the signature hash.
 */
export function makeBigCrlDer(opts: MakeCrlOptions): Buffer {
  const fields = certFields(opts.issuerCertDer);
  const issuerName = opts.issuerNameDer ?? fields.subjectDer;
  const akiHex = opts.authorityKeyId === undefined ? fields.subjectKeyId : opts.authorityKeyId;
  const signer = signerFor(opts.issuerKey, opts.rsaPss ?? false);
  const revokedAt = opts.revokedAt ?? new Date(opts.thisUpdate.getTime() - 3600_000);
  const reasonEvery = opts.reasonEvery ?? 4;
  const sb = opts.serialBytes ?? 16;
  if (!Number.isInteger(opts.entries) || opts.entries < 0) throw new Error('entries must be a non-negative integer');
  if (sb < 1 || sb > 100) throw new Error('serialBytes must be 1..100');

  const fixed = (opts.includeSerials ?? []).map((s) => encEntry(typeof s === 'string' ? { serial: s } : s, revokedAt));

  // Random entries: [30 L] [02 l (00) serial] [time] ([30 0c 30 0a 06 03 55 1d 15 04 03 0a 01 rr])
  const n = opts.entries;
  const pool = randomBytes(n * sb);
  const dateTlv = encTime(revokedAt);
  const REASON_EXT_LEN = 14;
  const reasonExts = REASON_CYCLE.map((code) => Buffer.from([0x30, 0x0c, 0x30, 0x0a, 0x06, 0x03, 0x55, 0x1d, 0x15, 0x04, 0x03, 0x0a, 0x01, code]));
  let randomTotal = 0;
  for (let i = 0; i < n; i++) {
    if (pool[i * sb] === 0) pool[i * sb] = 1; // keep every serial at full length and distinct from its stripped form
    const intLen = sb + (pool[i * sb]! >= 0x80 ? 1 : 0);
    const content = 1 + lenSize(intLen) + intLen + dateTlv.length + (reasonEvery > 0 && i % reasonEvery === 0 ? REASON_EXT_LEN : 0);
    randomTotal += 1 + lenSize(content) + content;
  }
  const body = Buffer.allocUnsafe(randomTotal);
  let w = 0;
  const writeLen = (len: number): void => {
    if (len < 0x80) {
      body[w++] = len;
      return;
    }
    const sz = lenSize(len) - 1;
    body[w++] = 0x80 | sz;
    for (let k = sz - 1; k >= 0; k--) body[w++] = Math.floor(len / 2 ** (8 * k)) & 0xff;
  };
  for (let i = 0; i < n; i++) {
    const hi = pool[i * sb]! >= 0x80;
    const intLen = sb + (hi ? 1 : 0);
    const withReason = reasonEvery > 0 && i % reasonEvery === 0;
    const content = 1 + lenSize(intLen) + intLen + dateTlv.length + (withReason ? REASON_EXT_LEN : 0);
    body[w++] = 0x30;
    writeLen(content);
    body[w++] = 0x02;
    writeLen(intLen);
    if (hi) body[w++] = 0;
    w += pool.copy(body, w, i * sb, i * sb + sb);
    w += dateTlv.copy(body, w);
    if (withReason) {
      w += reasonExts[(i / reasonEvery) % reasonExts.length]!.copy(body, w);
    }
  }
  if (w !== randomTotal) throw new Error(`crl-writer: size mismatch ${w} != ${randomTotal}`);

  const revokedParts: Buffer[] = [];
  const fixedTotal = fixed.reduce((a, b) => a + b.length, 0);
  if (fixed.length > 0 || n > 0) {
    revokedParts.push(Buffer.from([0x30]), encLen(fixedTotal + randomTotal), ...fixed, body);
  }

  const exts: Buffer[] = [];
  if (akiHex) exts.push(encExtension({ oid: '2.5.29.35', value: tlv(0x30, tlv(0x80, Buffer.from(akiHex, 'hex'))) }));
  if (opts.crlNumber !== null) exts.push(encExtension({ oid: '2.5.29.20', value: encBigInt(opts.crlNumber) }));
  if (opts.deltaBaseCrlNumber !== undefined) exts.push(encExtension({ oid: '2.5.29.27', critical: true, value: encBigInt(opts.deltaBaseCrlNumber) }));
  for (const x of opts.extraExtensions ?? []) exts.push(encExtension(x));

  const tbsParts: Buffer[] = [
    Buffer.from([0x02, 0x01, 0x01]),
    signer.algId,
    issuerName,
    encTime(opts.thisUpdate),
    ...(opts.nextUpdate ? [encTime(opts.nextUpdate)] : []),
    ...revokedParts,
    ...(exts.length ? [tlv(0xa0, tlv(0x30, ...exts))] : []),
  ];
  const tbsLen = tbsParts.reduce((a, b) => a + b.length, 0);
  const tbs = Buffer.concat([Buffer.from([0x30]), encLen(tbsLen), ...tbsParts]);
  const sig = signer.sign(tbs);
  const bitString = Buffer.concat([Buffer.from([0x03]), encLen(sig.length + 1), Buffer.from([0]), sig]);
  const outerLen = tbs.length + signer.algId.length + bitString.length;
  return Buffer.concat([Buffer.from([0x30]), encLen(outerLen), tbs, signer.algId, bitString]);
}

/** PEM with the `X509 CRL` label that OpenSSL and Node expect. */
export function crlDerToPem(der: Buffer): string {
  const b64 = der.toString('base64');
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += 64) lines.push(b64.slice(i, i + 64));
  return `-----BEGIN X509 CRL-----\n${lines.join('\n')}\n-----END X509 CRL-----\n`;
}
