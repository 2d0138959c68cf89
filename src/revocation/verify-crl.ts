/**
 * Revocation: deciding whether a parsed CRL may be used: which CA issued it, whether its signature
 * holds, whether it is current and newer than the one it replaces, and whether it uses features
 * this engine does not implement (delta, indirect, partial-reason CRLs). Freshness policy (what a
 * stale CRL means for requests) is not decided here; isStale() only reports the fact.
 */

import type { X509Certificate } from 'node:crypto';
import { certFields, KEY_USAGE_CRL_SIGN } from '../x509/cert-fields.js';
import { verifySignedData, type SignatureCheck } from '../x509/verify-signature.js';
import type { ParsedCrl } from './parse-crl.js';

export type { SignatureCheck };

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

/**
 * Checks the CRL's signature against `issuerCert`'s public key. Returns a reason instead of throwing
 * so that callers can log why a CRL was refused (unknown algorithm, key type mismatch, bad signature).
 */
export function verifyCrlSignature(crl: ParsedCrl, issuerCert: X509Certificate): SignatureCheck {
  return verifySignedData(crl.tbsDer, crl.signatureAlgorithmOid, crl.signatureAlgorithmParams, crl.signature, issuerCert, 'issuer key');
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
