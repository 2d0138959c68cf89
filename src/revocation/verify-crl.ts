/**
 * Revocation: deciding whether a parsed CRL may be used: which CA issued it, whether its signature
 * holds, whether it is current and newer than the one it replaces, and whether it uses features
 * this engine does not implement (delta, indirect, partial-reason CRLs). Freshness policy (what a
 * stale CRL means for requests) is not decided here; isStale() only reports the fact.
 */

import { constants, verify, type KeyObject, type X509Certificate } from 'node:crypto';
import { certFields, KEY_USAGE_CRL_SIGN } from '../x509/cert-fields.js';
import { DerCursor, DerError, decodeOid, decodeSmallInt, TAG_INTEGER, TAG_OID, TAG_SEQUENCE } from '../x509/der.js';
import type { ParsedCrl } from './parse-crl.js';

/** Result of a signature check; `reason` says why it failed (bad signature, unsupported algorithm, ...). */
export type SignatureCheck = { readonly ok: true } | { readonly ok: false; readonly reason: string };

export type CrlRejectCode =
  | 'CRL_UNSUPPORTED'
  | 'CRL_ISSUER_UNKNOWN'
  | 'CRL_SIGNATURE_INVALID'
  | 'CRL_NOT_YET_VALID'
  | 'CRL_OLDER_THAN_CURRENT'
  | 'CRL_INVALID';

export type CrlValidation =
  | { readonly ok: true; readonly issuer: X509Certificate }
  | { readonly ok: false; readonly code: CrlRejectCode; readonly reason: string };

export interface ValidateCrlOptions {
  /** CA certificates that may have issued the CRL (usually the trust store plus intermediates). */
  readonly issuers: readonly X509Certificate[];
  readonly now: Date;
  /** The CRL currently in use for the same issuer, when this one is meant to replace it. */
  readonly previous?: { readonly crlNumber: bigint | null; readonly thisUpdate: Date } | undefined;
  /** Tolerance for a thisUpdate slightly in the future (CA clock ahead of ours). Default 5 minutes. */
  readonly clockSkewMs?: number | undefined;
}

export const DEFAULT_CLOCK_SKEW_MS = 5 * 60 * 1000;

interface SignatureScheme {
  readonly name: string;
  /** Digest for crypto.verify; null for the EdDSA schemes, which hash internally. */
  readonly hash: string | null;
  readonly keyTypes: readonly string[];
  readonly pss: boolean;
}

function schemeFor(oid: string): SignatureScheme | null {
  const s = (name: string, hash: string | null, keyTypes: readonly string[], pss = false): SignatureScheme => ({ name, hash, keyTypes, pss });
  switch (oid) {
    case '1.2.840.10045.4.3.2': return s('ecdsa-with-SHA256', 'sha256', ['ec']);
    case '1.2.840.10045.4.3.3': return s('ecdsa-with-SHA384', 'sha384', ['ec']);
    case '1.2.840.10045.4.3.4': return s('ecdsa-with-SHA512', 'sha512', ['ec']);
    case '1.2.840.113549.1.1.11': return s('sha256WithRSAEncryption', 'sha256', ['rsa']);
    case '1.2.840.113549.1.1.12': return s('sha384WithRSAEncryption', 'sha384', ['rsa']);
    case '1.2.840.113549.1.1.13': return s('sha512WithRSAEncryption', 'sha512', ['rsa']);
    case '1.2.840.113549.1.1.10': return s('RSASSA-PSS', null, ['rsa', 'rsa-pss'], true);
    case '1.3.101.112': return s('Ed25519', null, ['ed25519']);
    case '1.3.101.113': return s('Ed448', null, ['ed448']);
    default: return null;
  }
}

function hashName(oid: string): string | null {
  switch (oid) {
    case '2.16.840.1.101.3.4.2.1': return 'sha256';
    case '2.16.840.1.101.3.4.2.2': return 'sha384';
    case '2.16.840.1.101.3.4.2.3': return 'sha512';
    default: return null; // SHA-1 (the PSS default) and anything exotic are refused
  }
}

const OID_MGF1 = '1.2.840.113549.1.1.8';

/** RSASSA-PSS-params (RFC 4055): hash and MGF1 hash must agree (Node uses one hash for both). */
function pssParams(params: Buffer | null): { hash: string; saltLength: number } | string {
  if (!params) return 'RSASSA-PSS without parameters (SHA-1 default) is not supported';
  try {
    const c = new DerCursor(params);
    const seqEnd = c.expect(0, params.length, TAG_SEQUENCE, 'RSASSA-PSS-params').end;
    let hash: string | null = null;
    let mgfHash: string | null = null;
    let saltLength = 20;
    let p = c.contentStart;
    while (p < seqEnd) {
      c.read(p, seqEnd);
      const tag = c.tag;
      const fieldEnd = c.end;
      p = fieldEnd;
      if (tag === 0xa0) {
        c.expect(c.contentStart, fieldEnd, TAG_SEQUENCE, 'hashAlgorithm');
        c.expect(c.contentStart, c.end, TAG_OID, 'hashAlgorithm.algorithm');
        hash = hashName(decodeOid(params, c.contentStart, c.end));
        if (!hash) return 'RSASSA-PSS hash algorithm is not supported';
      } else if (tag === 0xa1) {
        const mgfEnd = c.expect(c.contentStart, fieldEnd, TAG_SEQUENCE, 'maskGenAlgorithm').end;
        c.expect(c.contentStart, mgfEnd, TAG_OID, 'maskGenAlgorithm.algorithm');
        if (decodeOid(params, c.contentStart, c.end) !== OID_MGF1) return 'RSASSA-PSS mask generation other than MGF1';
        c.expect(c.end, mgfEnd, TAG_SEQUENCE, 'MGF1 hash');
        c.expect(c.contentStart, c.end, TAG_OID, 'MGF1 hash algorithm');
        mgfHash = hashName(decodeOid(params, c.contentStart, c.end));
      } else if (tag === 0xa2) {
        c.expect(c.contentStart, fieldEnd, TAG_INTEGER, 'saltLength');
        saltLength = decodeSmallInt(params, c.contentStart, c.end, 'saltLength');
      } else if (tag === 0xa3) {
        c.expect(c.contentStart, fieldEnd, TAG_INTEGER, 'trailerField');
        if (decodeSmallInt(params, c.contentStart, c.end, 'trailerField') !== 1) return 'RSASSA-PSS trailer field other than 1';
      } else {
        return 'RSASSA-PSS parameters: unexpected field';
      }
    }
    if (!hash) return 'RSASSA-PSS with the SHA-1 default hash is not supported';
    if (mgfHash !== hash) return 'RSASSA-PSS with an MGF1 hash different from the message hash is not supported';
    return { hash, saltLength };
  } catch (err) {
    if (err instanceof DerError) return `RSASSA-PSS parameters malformed: ${err.reason}`;
    throw err;
  }
}

/**
 * Checks the CRL's signature against `issuerCert`'s public key. Returns a reason instead of throwing
 * so that callers can log why a CRL was refused (unknown algorithm, key type mismatch, bad signature).
 */
export function verifyCrlSignature(crl: ParsedCrl, issuerCert: X509Certificate): SignatureCheck {
  const scheme = schemeFor(crl.signatureAlgorithmOid);
  if (!scheme) return { ok: false, reason: `unsupported signature algorithm ${crl.signatureAlgorithmOid}` };
  const key: KeyObject = issuerCert.publicKey;
  const keyType = key.asymmetricKeyType ?? 'unknown';
  if (!scheme.keyTypes.includes(keyType)) {
    return { ok: false, reason: `${scheme.name} signature but the issuer key is ${keyType}` };
  }
  try {
    let ok: boolean;
    if (scheme.pss) {
      const pss = pssParams(crl.signatureAlgorithmParams);
      if (typeof pss === 'string') return { ok: false, reason: pss };
      ok = verify(pss.hash, crl.tbsDer, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: pss.saltLength }, crl.signature);
    } else if (scheme.hash === null) {
      ok = verify(null, crl.tbsDer, key, crl.signature);
    } else {
      // X.509 carries ECDSA signatures DER-encoded; 'der' is also the default, stated for clarity.
      ok = verify(scheme.hash, crl.tbsDer, { key, dsaEncoding: 'der' }, crl.signature);
    }
    return ok ? { ok: true } : { ok: false, reason: `${scheme.name} signature does not verify with the issuer key` };
  } catch (err) {
    return { ok: false, reason: `${scheme.name} verification failed: ${(err as Error).message}` };
  }
}

/**
 * All candidates that may have issued the CRL: subject Name DER equal to the CRL issuer, Subject Key
 * Identifier equal to the CRL's AKI when it has one, a CA, and allowed to sign CRLs (KeyUsage
 * cRLSign when the extension is present). Name comparison is byte-wise (no RFC 5280 7.1 folding);
 * CAs emit their CRL issuer by copying their subject, which is also what OpenSSL relies on.
 */
export function findIssuerCandidates(crl: ParsedCrl, candidates: readonly X509Certificate[]): X509Certificate[] {
  const out: X509Certificate[] = [];
  for (const cert of candidates) {
    if (!cert.ca) continue;
    let f;
    try {
      f = certFields(cert.raw);
    } catch {
      continue;
    }
    if (!f.subjectDer.equals(crl.issuerDer)) continue;
    if (crl.authorityKeyId !== null && f.subjectKeyId !== crl.authorityKeyId) continue;
    if (f.keyUsage !== null && (f.keyUsage & KEY_USAGE_CRL_SIGN) === 0) continue;
    out.push(cert);
  }
  return out;
}

/** The first candidate that may have issued the CRL (see findIssuerCandidates), or null. */
export function findIssuer(crl: ParsedCrl, candidates: readonly X509Certificate[]): X509Certificate | null {
  return findIssuerCandidates(crl, candidates)[0] ?? null;
}

/** Features whose semantics this engine does not implement; using such a CRL could miss revocations. */
export function unsupportedFeature(crl: ParsedCrl): string | null {
  if (crl.isDelta) return 'delta CRLs are not supported (load the full CRL)';
  if (crl.isIndirect) return 'indirect CRLs (certificateIssuer / indirectCRL) are not supported';
  if (crl.hasUnsupportedCriticalExtension) return `unsupported critical extension(s): ${crl.unsupportedCriticalExtensions.join(', ')}`;
  const idp = crl.issuingDistributionPoint;
  if (idp?.onlySomeReasons) return 'CRLs partitioned by reason (onlySomeReasons) are not supported';
  if (idp?.onlyContainsAttributeCerts) return 'attribute-certificate CRLs do not cover public-key certificates';
  return null;
}

/**
 * Decides whether `crl` may be loaded. Order matters: refuse unsupported features first, then
 * authenticate, and only then trust the dates and numbers in it. A CRL past its nextUpdate is
 * accepted (see isStale): the newest CRL available beats none, and what staleness means is policy.
 */
export function validateCrl(crl: ParsedCrl, opts: ValidateCrlOptions): CrlValidation {
  const unsupported = unsupportedFeature(crl);
  if (unsupported) return { ok: false, code: 'CRL_UNSUPPORTED', reason: unsupported };

  const candidates = findIssuerCandidates(crl, opts.issuers);
  if (candidates.length === 0) {
    const aki = crl.authorityKeyId ? ` with key id ${crl.authorityKeyId}` : '';
    return { ok: false, code: 'CRL_ISSUER_UNKNOWN', reason: `no CA certificate matches the CRL issuer${aki}` };
  }
  let issuer: X509Certificate | null = null;
  let lastReason = '';
  // Without an AKI, several CAs may share the name (re-keyed CA); the signature picks the right one.
  for (const cand of candidates) {
    const sig = verifyCrlSignature(crl, cand);
    if (sig.ok) {
      issuer = cand;
      break;
    }
    lastReason = sig.reason;
  }
  if (!issuer) return { ok: false, code: 'CRL_SIGNATURE_INVALID', reason: lastReason };

  if (crl.nextUpdate && crl.nextUpdate.getTime() < crl.thisUpdate.getTime()) {
    return { ok: false, code: 'CRL_INVALID', reason: `nextUpdate ${crl.nextUpdate.toISOString()} is before thisUpdate ${crl.thisUpdate.toISOString()}` };
  }
  const skew = opts.clockSkewMs ?? DEFAULT_CLOCK_SKEW_MS;
  if (crl.thisUpdate.getTime() > opts.now.getTime() + skew) {
    return { ok: false, code: 'CRL_NOT_YET_VALID', reason: `thisUpdate ${crl.thisUpdate.toISOString()} is in the future` };
  }

  const prev = opts.previous;
  if (prev) {
    if (prev.crlNumber !== null && crl.crlNumber !== null && crl.crlNumber < prev.crlNumber) {
      return { ok: false, code: 'CRL_OLDER_THAN_CURRENT', reason: `CRL number ${crl.crlNumber} is lower than the current ${prev.crlNumber}` };
    }
    if (crl.thisUpdate.getTime() < prev.thisUpdate.getTime()) {
      return { ok: false, code: 'CRL_OLDER_THAN_CURRENT', reason: `thisUpdate ${crl.thisUpdate.toISOString()} is earlier than the current ${prev.thisUpdate.toISOString()}` };
    }
  }
  return { ok: true, issuer };
}

/** True when the CRL is past its nextUpdate. A CRL without nextUpdate never goes stale by date. */
export function isStale(crl: Pick<ParsedCrl, 'nextUpdate'>, now: Date): boolean {
  return crl.nextUpdate !== null && now.getTime() > crl.nextUpdate.getTime();
}
