/**
 * X.509: the one check of a signature over DER-encoded signed data (a certificate's TBS, a CRL's
 * TBSCertList, an OCSP ResponseData). It maps the AlgorithmIdentifier to what node:crypto needs and
 * refuses what the gateway does not trust (SHA-1 and MD5 signatures, RSASSA-PSS with its SHA-1
 * default, unknown algorithms), so CRLs and OCSP answers accept exactly the same algorithms.
 */

import { constants, verify, X509Certificate, type KeyObject } from 'node:crypto';
import { DerCursor, DerError, decodeOid, decodeSmallInt, TAG_BIT_STRING, TAG_INTEGER, TAG_OID, TAG_SEQUENCE } from './der.js';

/** Result of a signature check; `reason` says why it failed (bad signature, unsupported algorithm, ...). */
export type SignatureCheck = { readonly ok: true } | { readonly ok: false; readonly reason: string };

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
 * Checks `signature` over `tbs` with `key` (or a certificate's public key). `keyName` names that key
 * in the failure reason ("issuer key", "responder key"). Returns a reason instead of throwing so
 * callers can log why signed data was refused (unknown algorithm, key type mismatch, bad signature).
 */
export function verifySignedData(
  tbs: Buffer,
  sigAlgOid: string,
  sigAlgParams: Buffer | null,
  signature: Buffer,
  keyOrCert: KeyObject | X509Certificate,
  keyName = 'key',
): SignatureCheck {
  const scheme = schemeFor(sigAlgOid);
  if (!scheme) return { ok: false, reason: `unsupported signature algorithm ${sigAlgOid}` };
  const key: KeyObject = keyOrCert instanceof X509Certificate ? keyOrCert.publicKey : keyOrCert;
  const keyType = key.asymmetricKeyType ?? 'unknown';
  if (!scheme.keyTypes.includes(keyType)) {
    return { ok: false, reason: `${scheme.name} signature but the ${keyName} is ${keyType}` };
  }
  try {
    let ok: boolean;
    if (scheme.pss) {
      const pss = pssParams(sigAlgParams);
      if (typeof pss === 'string') return { ok: false, reason: pss };
      ok = verify(pss.hash, tbs, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: pss.saltLength }, signature);
    } else if (scheme.hash === null) {
      ok = verify(null, tbs, key, signature);
    } else {
      // X.509 carries ECDSA signatures DER-encoded; 'der' is also the default, stated for clarity.
      ok = verify(scheme.hash, tbs, { key, dsaEncoding: 'der' }, signature);
    }
    return ok ? { ok: true } : { ok: false, reason: `${scheme.name} signature does not verify with the ${keyName}` };
  } catch (err) {
    return { ok: false, reason: `${scheme.name} verification failed: ${(err as Error).message}` };
  }
}

/** The three parts of a SIGNED{} structure (certificate, CRL, BasicOCSPResponse) as views into its DER. */
export interface SignedParts {
  /** The whole TBS element, header included: the bytes the signature covers. */
  readonly tbs: Buffer;
  readonly sigAlgOid: string;
  /** DER of the AlgorithmIdentifier parameters, or null when absent. */
  readonly sigAlgParams: Buffer | null;
  /** BIT STRING content without the unused-bits octet. */
  readonly signature: Buffer;
}

/**
 * Reads `SEQUENCE { tbs SEQUENCE, AlgorithmIdentifier, BIT STRING, ... }` starting at [start, end)
 * of `der`; elements after the signature (OCSP's certs) are left to the caller and `next` says
 * where they begin. Throws DerError on a malformed structure.
 */
export function readSignedParts(der: Buffer, start: number, end: number): SignedParts & { readonly next: number; readonly end: number } {
  const c = new DerCursor(der);
  c.expect(start, end, TAG_SEQUENCE, 'signed data');
  const outerEnd = c.end;
  c.expect(c.contentStart, outerEnd, TAG_SEQUENCE, 'to-be-signed data');
  const tbs = der.subarray(c.start, c.end);
  const algEnd = c.expect(c.end, outerEnd, TAG_SEQUENCE, 'signatureAlgorithm').end;
  c.expect(c.contentStart, algEnd, TAG_OID, 'signatureAlgorithm.algorithm');
  const sigAlgOid = decodeOid(der, c.contentStart, c.end);
  let sigAlgParams: Buffer | null = null;
  if (c.end < algEnd) {
    const paramsStart = c.end;
    if (c.read(paramsStart, algEnd).end !== algEnd) throw new DerError('trailing data in signatureAlgorithm', c.end);
    sigAlgParams = der.subarray(paramsStart, algEnd);
  }
  c.expect(algEnd, outerEnd, TAG_BIT_STRING, 'signatureValue');
  if (c.end - c.contentStart < 1 || der[c.contentStart] !== 0) throw new DerError('signatureValue: unused bits must be 0', c.contentStart);
  return { tbs, sigAlgOid, sigAlgParams, signature: der.subarray(c.contentStart + 1, c.end), next: c.end, end: outerEnd };
}

/**
 * Whether `cert` was signed by `issuerKey`. Node's X509Certificate.verify would accept SHA-1 and
 * whatever else OpenSSL allows; this applies the gateway's own algorithm list.
 */
export function verifyCertificateSignature(certDer: Buffer, issuerKey: KeyObject | X509Certificate, keyName = 'issuer key'): SignatureCheck {
  let parts;
  try {
    parts = readSignedParts(certDer, 0, certDer.length);
    if (parts.next !== parts.end || parts.end !== certDer.length) throw new DerError('trailing data after the certificate signature', parts.next);
  } catch (err) {
    if (err instanceof DerError) return { ok: false, reason: `certificate malformed: ${err.reason}` };
    throw err;
  }
  return verifySignedData(parts.tbs, parts.sigAlgOid, parts.sigAlgParams, parts.signature, issuerKey, keyName);
}
