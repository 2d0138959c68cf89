/**
 * Revocation: turning CRL files into ParsedCrl values. Owns PEM splitting and a purpose-built DER
 * walk of CertificateList (RFC 5280 5.1) that indexes revoked serials without materialising
 * per-entry objects: generic ASN.1 libraries need seconds and ~100 MB for a 100k-entry CRL.
 * Parsing only checks structure; signature, issuer and freshness belong to verify-crl.ts.
 */

import { createHash } from 'node:crypto';
import {
  DerCursor, DerError, decodeOid, decodeSmallInt, decodeTime, decodeUnsignedInteger, idCe, isTimeShape, isTimeTag, rangeEquals, walkExtensions,
  TAG_BIT_STRING, TAG_BOOLEAN, TAG_ENUMERATED, TAG_INTEGER, TAG_GENERALIZED_TIME, TAG_OCTET_STRING, TAG_OID, TAG_SEQUENCE, TAG_UTC_TIME,
} from '../x509/der.js';
import { MAX_SERIAL_BYTES, RevokedSerials, RevokedSerialsBuilder } from './revoked-serials.js';

/** The input is not a well-formed CRL. `reason` is stable enough to log; `offset` locates the problem. */
export class CrlParseError extends Error {
  readonly code = 'CRL_PARSE_ERROR';
  readonly reason: string;
  readonly offset: number | null;

  constructor(reason: string, offset: number | null = null, options?: { cause?: unknown }) {
    super(offset === null ? `invalid CRL: ${reason}` : `invalid CRL: ${reason} (at byte ${offset})`, options);
    this.name = 'CrlParseError';
    this.reason = reason;
    this.offset = offset;
  }
}

export interface IssuingDistributionPoint {
  readonly critical: boolean;
  readonly hasDistributionPoint: boolean;
  readonly onlyContainsUserCerts: boolean;
  readonly onlyContainsCACerts: boolean;
  readonly onlySomeReasons: boolean;
  readonly indirectCrl: boolean;
  readonly onlyContainsAttributeCerts: boolean;
}

export interface ParsedCrl {
  /** The whole CertificateList; `revoked` points into it, so it stays alive with the CRL. */
  readonly der: Buffer;
  /** 1 for v2, 0 when the version field is absent (v1). */
  readonly version: number;
  /** Raw DER of the issuer Name, compared byte-for-byte with a CA's subject. */
  readonly issuerDer: Buffer;
  /** sha256 of issuerDer, lower hex: a name-only key (two CAs may share a name; see RevocationIndex). */
  readonly issuerKey: string;
  /** keyIdentifier of the Authority Key Identifier extension, lower hex. */
  readonly authorityKeyId: string | null;
  readonly crlNumber: bigint | null;
  readonly thisUpdate: Date;
  readonly nextUpdate: Date | null;
  readonly revoked: RevokedSerials;
  /** Distinct revoked serials (a serial listed twice counts once). */
  readonly revokedCount: number;
  /** The bytes the signature covers. */
  readonly tbsDer: Buffer;
  readonly signatureAlgorithmOid: string;
  /** DER of the AlgorithmIdentifier parameters (RSASSA-PSS needs them), or null when absent. */
  readonly signatureAlgorithmParams: Buffer | null;
  /** Signature value (BIT STRING content without the unused-bits octet). */
  readonly signature: Buffer;
  /** A critical CRL or entry extension this parser does not understand (RFC 5280: must not use the CRL). */
  readonly hasUnsupportedCriticalExtension: boolean;
  /** OIDs behind hasUnsupportedCriticalExtension, for the refusal message. */
  readonly unsupportedCriticalExtensions: readonly string[];
  /** deltaCRLIndicator present. */
  readonly isDelta: boolean;
  readonly deltaBaseCrlNumber: bigint | null;
  /** certificateIssuer entry extension or IDP indirectCRL: entries may belong to other CAs. */
  readonly isIndirect: boolean;
  readonly issuingDistributionPoint: IssuingDistributionPoint | null;
}

/** Every `-----BEGIN X509 CRL-----` (or `BEGIN CRL`) block in a PEM text, decoded to DER. */
export function splitPemCrls(text: string): Buffer[] {
  const out: Buffer[] = [];
  const re = /-----BEGIN (X509 CRL|CRL)-----([\s\S]*?)-----END \1-----/g;
  for (const m of text.matchAll(re)) {
    const body = (m[2] ?? '').replace(/\s+/g, '');
    // Buffer.from(base64) silently skips junk; a damaged file should fail here, not parse as garbage.
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body) || body.length % 4 !== 0) {
      throw new CrlParseError(`PEM block ${out.length + 1} is not valid base64`);
    }
    out.push(Buffer.from(body, 'base64'));
  }
  return out;
}

/** The DER CRLs in a file: PEM (any number of CRL blocks) when it contains `-----BEGIN`, else one DER CRL. */
export function crlDersFromFile(bytes: Buffer): Buffer[] {
  if (bytes.includes('-----BEGIN')) {
    const ders = splitPemCrls(bytes.toString('latin1'));
    if (ders.length === 0) throw new CrlParseError('PEM file contains no X509 CRL block');
    return ders;
  }
  return [bytes];
}

/** Parses every CRL in a file's bytes. */
export function parseCrlFile(bytes: Buffer): ParsedCrl[] {
  return crlDersFromFile(bytes).map((der) => parseCrl(der));
}

const CE_CRL_NUMBER = 20;
const CE_REASON_CODE = 21;
const CE_INVALIDITY_DATE = 24;
const CE_DELTA_CRL_INDICATOR = 27;
const CE_ISSUING_DISTRIBUTION_POINT = 28;
const CE_CERTIFICATE_ISSUER = 29;
const CE_AUTHORITY_KEY_IDENTIFIER = 35;

interface EntryFlags {
  indirect: boolean;
  readonly unsupported: string[];
}

/*
 * The per-entry loops live in their own small functions: inlined into parseCrl they were compiled
 * by on-stack replacement and deoptimised again at every call (the code after the loop had no type
 * feedback yet), measured at ~15% of a 1M-entry parse.
 */

function countEntries(c: DerCursor, start: number, end: number): number {
  let count = 0;
  for (let q = start; q < end; q = c.end) {
    c.read(q, end);
    count++;
  }
  return count;
}

function indexEntries(c: DerCursor, start: number, end: number, builder: RevokedSerialsBuilder, flags: EntryFlags): void {
  const der = c.buf;
  let q = start;
  while (q < end) {
    // Locals, not c.tag: TypeScript keeps c.tag narrowed across c.read() calls.
    const entryTag = c.read(q, end).tag;
    if (entryTag !== TAG_SEQUENCE) throw new DerError('revoked entry: expected SEQUENCE', q);
    const entryStart = q;
    const entryEnd = c.end;
    q = entryEnd;

    c.expect(c.contentStart, entryEnd, TAG_INTEGER, 'userCertificate');
    let s = c.contentStart;
    const sEnd = c.end;
    if (s === sEnd) throw new DerError('userCertificate: empty INTEGER', c.start);
    // Canonical form drops leading zero bytes (the DER sign octet included), keeping at least one.
    while (sEnd - s > 1 && der[s] === 0) s++;
    if (sEnd - s > MAX_SERIAL_BYTES) throw new DerError('userCertificate: serial longer than 255 bytes', c.start);

    const timeTag = c.read(sEnd, entryEnd).tag;
    if (timeTag !== TAG_UTC_TIME && timeTag !== TAG_GENERALIZED_TIME) {
      throw new DerError('revocationDate: expected UTCTime or GeneralizedTime', c.start);
    }
    // Only the shape is checked here; the digits are decoded on a hit, as nothing else needs them.
    if (!isTimeShape(der, timeTag, c.contentStart, c.end)) throw new DerError('revocationDate: malformed time', c.start);
    if (c.end < entryEnd) checkEntryExtensions(c, c.end, entryEnd, flags);
    builder.add(entryStart, s, sEnd);
  }
}

/** crlEntryExtensions: validates reasonCode, flags certificateIssuer and unknown critical ones. */
function checkEntryExtensions(c: DerCursor, start: number, end: number, flags: EntryFlags): void {
  const der = c.buf;
  const listEnd = c.expect(start, end, TAG_SEQUENCE, 'crlEntryExtensions').end;
  if (listEnd !== end) throw new DerError('trailing data after crlEntryExtensions', listEnd);
  let p = c.contentStart;
  while (p < listEnd) {
    const extEnd = c.expect(p, listEnd, TAG_SEQUENCE, 'Extension').end;
    p = extEnd;
    c.expect(c.contentStart, extEnd, TAG_OID, 'extnID');
    const oidStart = c.contentStart;
    const oidEnd = c.end;
    let tag = c.read(oidEnd, extEnd).tag;
    let critical = false;
    if (tag === TAG_BOOLEAN) {
      if (c.end - c.contentStart !== 1) throw new DerError('critical: bad BOOLEAN', c.start);
      critical = der[c.contentStart] !== 0;
      tag = c.read(c.end, extEnd).tag;
    }
    if (tag !== TAG_OCTET_STRING) throw new DerError('extnValue: expected OCTET STRING', c.start);
    if (c.end !== extEnd) throw new DerError('trailing data in Extension', c.end);
    const n = idCe(der, oidStart, oidEnd);
    if (n === CE_REASON_CODE) {
      const valueEnd = c.end;
      c.expect(c.contentStart, valueEnd, TAG_ENUMERATED, 'reasonCode');
      if (c.end !== valueEnd) throw new DerError('reasonCode: trailing data', c.end);
      decodeSmallInt(der, c.contentStart, c.end, 'reasonCode');
    } else if (n === CE_CERTIFICATE_ISSUER) {
      flags.indirect = true;
    } else if (n === CE_INVALIDITY_DATE) {
      // Informational only: the gateway acts on presence in the CRL, not on when the key was lost.
    } else if (critical) {
      const oid = decodeOid(der, oidStart, oidEnd);
      if (!flags.unsupported.includes(oid)) flags.unsupported.push(oid);
    }
  }
}

/**
 * Parses one DER CertificateList. Throws CrlParseError on any structural problem; never reads out
 * of bounds and always terminates (each step consumes at least a two-byte header).
 */
export function parseCrl(der: Buffer | Uint8Array): ParsedCrl {
  try {
    if (!(der instanceof Uint8Array)) throw new CrlParseError('input is not a Buffer');
    // A view, not a copy: the index points into these bytes.
    return parseCrlUnchecked(Buffer.isBuffer(der) ? der : Buffer.from(der.buffer, der.byteOffset, der.byteLength));
  } catch (err) {
    if (err instanceof CrlParseError) throw err;
    if (err instanceof DerError) throw new CrlParseError(err.reason, err.offset, { cause: err });
    // Anything else is a parser bug; still report it as a parse failure so a bad file cannot crash a reload.
    throw new CrlParseError(`unexpected parser failure: ${(err as Error)?.message ?? String(err)}`, null, { cause: err });
  }
}

function parseCrlUnchecked(der: Buffer): ParsedCrl {
  if (der.length >= 0xffffffff) throw new CrlParseError('CRL larger than 4 GiB');
  const c = new DerCursor(der);

  c.expect(0, der.length, TAG_SEQUENCE, 'CertificateList');
  if (c.end !== der.length) throw new DerError('trailing data after CertificateList', c.end);
  const listEnd = c.end;

  c.expect(c.contentStart, listEnd, TAG_SEQUENCE, 'tbsCertList');
  const tbsStart = c.start;
  const tbsContent = c.contentStart;
  const tbsEnd = c.end;

  c.expect(tbsEnd, listEnd, TAG_SEQUENCE, 'signatureAlgorithm');
  const outerAlgStart = c.start;
  const outerAlgEnd = c.end;
  const outerAlgContent = c.contentStart;

  c.expect(outerAlgEnd, listEnd, TAG_BIT_STRING, 'signatureValue');
  if (c.end !== listEnd) throw new DerError('trailing data in CertificateList', c.end);
  if (c.end - c.contentStart < 1 || der[c.contentStart] !== 0) throw new DerError('signatureValue: unused bits must be 0', c.contentStart);
  const signature = der.subarray(c.contentStart + 1, c.end);

  // AlgorithmIdentifier ::= SEQUENCE { algorithm OID, parameters ANY OPTIONAL }
  c.expect(outerAlgContent, outerAlgEnd, TAG_OID, 'signatureAlgorithm.algorithm');
  const signatureAlgorithmOid = decodeOid(der, c.contentStart, c.end);
  const signatureAlgorithmParams = c.end < outerAlgEnd ? der.subarray(c.end, outerAlgEnd) : null;
  if (signatureAlgorithmParams) {
    c.read(c.end, outerAlgEnd);
    if (c.end !== outerAlgEnd) throw new DerError('trailing data in signatureAlgorithm', c.end);
  }

  // TBSCertList
  let p = tbsContent;
  c.read(p, tbsEnd);
  let version = 0;
  if (c.tag === TAG_INTEGER) {
    version = decodeSmallInt(der, c.contentStart, c.end, 'version');
    if (version > 1) throw new DerError(`unsupported CRL version ${version + 1}`, c.start);
    p = c.end;
  }

  c.expect(p, tbsEnd, TAG_SEQUENCE, 'tbsCertList.signature');
  // RFC 5280 5.1.1.2: the inner and outer algorithm must match, or the signed algorithm is ambiguous.
  if (!rangeEquals(der, c.start, c.end, der, outerAlgStart, outerAlgEnd)) {
    throw new DerError('tbsCertList.signature differs from signatureAlgorithm', c.start);
  }
  p = c.end;

  c.expect(p, tbsEnd, TAG_SEQUENCE, 'issuer');
  const issuerDer = der.subarray(c.start, c.end);
  p = c.end;

  if (p >= tbsEnd) throw new DerError('missing thisUpdate', p);
  c.read(p, tbsEnd);
  const thisUpdate = decodeTime(der, c.tag, c.contentStart, c.end);
  p = c.end;

  let nextUpdate: Date | null = null;
  if (p < tbsEnd) {
    c.read(p, tbsEnd);
    if (isTimeTag(c.tag)) {
      nextUpdate = decodeTime(der, c.tag, c.contentStart, c.end);
      p = c.end;
    }
  }

  let revokedStart = -1;
  let revokedEnd = -1;
  if (p < tbsEnd) {
    c.read(p, tbsEnd);
    if (c.tag === TAG_SEQUENCE) {
      revokedStart = c.contentStart;
      revokedEnd = c.end;
      p = c.end;
    }
  }

  let extStart = -1;
  let extEnd = -1;
  if (p < tbsEnd) {
    c.read(p, tbsEnd);
    if (c.tag !== 0xa0) throw new DerError(`unexpected element 0x${c.tag.toString(16)} in tbsCertList`, p);
    if (version !== 1) throw new DerError('crlExtensions require version v2', p);
    extStart = c.contentStart;
    extEnd = c.end;
    p = c.end;
  }
  if (p !== tbsEnd) throw new DerError('trailing data in tbsCertList', p);

  const entryFlags: EntryFlags = { indirect: false, unsupported: [] };
  const unsupported = entryFlags.unsupported;
  // Pass 1 only counts, so the table is sized once and never rehashed.
  const builder = new RevokedSerialsBuilder(der, revokedStart >= 0 ? countEntries(c, revokedStart, revokedEnd) : 0);
  if (revokedStart >= 0) indexEntries(c, revokedStart, revokedEnd, builder, entryFlags);
  const revoked = builder.finish();

  let authorityKeyId: string | null = null;
  let crlNumber: bigint | null = null;
  let isDelta = false;
  let deltaBaseCrlNumber: bigint | null = null;
  let idp: IssuingDistributionPoint | null = null;
  if (extStart >= 0) {
    const seen = new Set<string>();
    walkExtensions(c, extStart, extEnd, (ext) => {
      const oidKey = der.toString('hex', ext.oidStart, ext.oidEnd);
      if (seen.has(oidKey)) throw new DerError('duplicate CRL extension', ext.oidStart);
      seen.add(oidKey);
      const x = new DerCursor(der);
      switch (idCe(der, ext.oidStart, ext.oidEnd)) {
        case CE_CRL_NUMBER:
          x.expect(ext.valueStart, ext.valueEnd, TAG_INTEGER, 'cRLNumber');
          if (x.end !== ext.valueEnd) throw new DerError('cRLNumber: trailing data', x.end);
          if (x.end - x.contentStart > 21) throw new DerError('cRLNumber longer than 20 octets', x.start);
          crlNumber = decodeUnsignedInteger(der, x.contentStart, x.end, 'cRLNumber');
          break;
        case CE_DELTA_CRL_INDICATOR:
          x.expect(ext.valueStart, ext.valueEnd, TAG_INTEGER, 'BaseCRLNumber');
          isDelta = true;
          deltaBaseCrlNumber = decodeUnsignedInteger(der, x.contentStart, x.end, 'BaseCRLNumber');
          break;
        case CE_AUTHORITY_KEY_IDENTIFIER: {
          x.expect(ext.valueStart, ext.valueEnd, TAG_SEQUENCE, 'AuthorityKeyIdentifier');
          if (x.end !== ext.valueEnd) throw new DerError('AuthorityKeyIdentifier: trailing data', x.end);
          const akiEnd = x.end;
          let q = x.contentStart;
          while (q < akiEnd) {
            x.read(q, akiEnd);
            if (x.tag === 0x80) authorityKeyId = der.toString('hex', x.contentStart, x.end);
            q = x.end;
          }
          break;
        }
        case CE_ISSUING_DISTRIBUTION_POINT:
          idp = parseIdp(der, ext.valueStart, ext.valueEnd, ext.critical);
          break;
        default:
          if (ext.critical) {
            const oid = decodeOid(der, ext.oidStart, ext.oidEnd);
            if (!unsupported.includes(oid)) unsupported.push(oid);
          }
      }
    });
  }
  const idpFinal = idp as IssuingDistributionPoint | null;

  return {
    der,
    version,
    issuerDer,
    issuerKey: createHash('sha256').update(issuerDer).digest('hex'),
    authorityKeyId,
    crlNumber,
    thisUpdate,
    nextUpdate,
    revoked,
    revokedCount: revoked.size,
    tbsDer: der.subarray(tbsStart, tbsEnd),
    signatureAlgorithmOid,
    signatureAlgorithmParams,
    signature,
    hasUnsupportedCriticalExtension: unsupported.length > 0,
    unsupportedCriticalExtensions: unsupported,
    isDelta,
    deltaBaseCrlNumber,
    isIndirect: entryFlags.indirect || (idpFinal?.indirectCrl ?? false),
    issuingDistributionPoint: idpFinal,
  };
}

/** IssuingDistributionPoint (RFC 5280 5.2.5); fields are IMPLICIT context tags [0]..[5]. */
function parseIdp(der: Buffer, start: number, end: number, critical: boolean): IssuingDistributionPoint {
  const x = new DerCursor(der);
  x.expect(start, end, TAG_SEQUENCE, 'IssuingDistributionPoint');
  if (x.end !== end) throw new DerError('IssuingDistributionPoint: trailing data', x.end);
  const seqEnd = x.end;
  const flags = { hasDistributionPoint: false, onlyContainsUserCerts: false, onlyContainsCACerts: false, onlySomeReasons: false, indirectCrl: false, onlyContainsAttributeCerts: false };
  let q = x.contentStart;
  while (q < seqEnd) {
    x.read(q, seqEnd);
    const bool = (): boolean => {
      if (x.end - x.contentStart !== 1) throw new DerError('IssuingDistributionPoint: bad BOOLEAN', x.start);
      return der[x.contentStart] !== 0;
    };
    switch (x.tag) {
      case 0xa0: flags.hasDistributionPoint = true; break;
      case 0x81: flags.onlyContainsUserCerts = bool(); break;
      case 0x82: flags.onlyContainsCACerts = bool(); break;
      case 0x83: case 0xa3: flags.onlySomeReasons = true; break;
      case 0x84: flags.indirectCrl = bool(); break;
      case 0x85: flags.onlyContainsAttributeCerts = bool(); break;
      default: throw new DerError(`IssuingDistributionPoint: unexpected tag 0x${x.tag.toString(16)}`, x.start);
    }
    q = x.end;
  }
  return { critical, ...flags };
}
