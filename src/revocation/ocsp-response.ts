/**
 * Revocation: deciding what one DER OCSPResponse (RFC 6960 4.2) says about one certificate, and
 * whether it may be believed. Authenticates before it trusts: the response must be signed by the
 * certificate's issuer or by a responder the issuer delegated to (RFC 6960 4.2.2.2), and only then
 * are its nonce, its answer for our CertID and that answer's validity window read. Pure: the caller
 * passes `now`; fetching and caching live elsewhere. Every read is bounded (size, counts, lengths),
 * because the bytes come from the network.
 */

import { createHash, createPublicKey, type KeyObject, type X509Certificate } from 'node:crypto';
import { normalizeSerial } from '../x509/canonical-hex.js';
import { forEachExtension, walkCertificate } from '../x509/cert-fields.js';
import {
  DerCursor, DerError, decodeOid, decodeSmallInt, decodeTime, idCe, rangeEquals, walkExtensions,
  TAG_ENUMERATED, TAG_GENERALIZED_TIME, TAG_INTEGER, TAG_OCTET_STRING, TAG_OID, TAG_SEQUENCE,
} from '../x509/der.js';
import { certificateDn } from '../x509/dn.js';
import { readSignedParts, verifyCertificateSignature, verifySignedData, type SignedParts } from '../x509/verify-signature.js';
import { OID_OCSP_NONCE, OID_SHA1, subjectPublicKeyBits, type OcspCertId } from './ocsp-request.js';
import { crlReasonName } from './revoked-serials.js';
import { DEFAULT_CLOCK_SKEW_MS } from './verify-crl.js';

export type OcspCertStatus = 'good' | 'revoked' | 'unknown';

export interface OcspAnswer {
  readonly status: OcspCertStatus;
  readonly thisUpdate: Date;
  readonly nextUpdate: Date | null;
  readonly producedAt: Date;
  readonly revokedAt: Date | null;
  /** CRLReason name as the CRL side prints it (revoked-serials crlReasonName), null when absent. */
  readonly reason: string | null;
  /** 'issuer', or the delegated responder's subject DN (src/x509/dn.ts certificateDn). */
  readonly signer: string;
}

export type OcspFailure =
  | 'malformed'
  | 'error-status'
  | 'unsupported'
  | 'bad-signature'
  | 'unauthorized-signer'
  | 'expired'
  | 'not-yet-valid'
  | 'certid-mismatch'
  | 'nonce-mismatch';

export type OcspCheck =
  | { readonly ok: true; readonly answer: OcspAnswer }
  | { readonly ok: false; readonly failure: OcspFailure; readonly reason: string };

export interface VerifyOcspOptions {
  readonly certId: OcspCertId;
  /** The CA that issued the certificate in question. */
  readonly issuer: X509Certificate;
  /** Milliseconds since the epoch. */
  readonly now: number;
  /** Tolerance for responder clocks, as for CRLs (default DEFAULT_CLOCK_SKEW_MS, 5 minutes). */
  readonly clockSkewMs?: number;
  /** The nonce sent in the request; when set, the response must echo it. */
  readonly nonce: Buffer | null;
}

/** Larger than any real response (a few KB with a responder certificate); fetchers can share it. */
export const MAX_OCSP_RESPONSE_BYTES = 256 * 1024;
/** Bounds on the lists a hostile response controls; real responses carry one of each, or a few. */
export const MAX_SINGLE_RESPONSES = 64;
export const MAX_RESPONSE_CERTS = 64;

const OID_PKIX_OCSP_BASIC = '1.3.6.1.5.5.7.48.1.1';
const OID_KP_OCSP_SIGNING = '1.3.6.1.5.5.7.3.9';
const CE_EXT_KEY_USAGE = 37;
const TAG_NULL = 0x05;

/** OCSPResponseStatus names (RFC 6960 4.2.1); 4 is unused. */
const RESPONSE_STATUS: Readonly<Record<number, string>> = {
  1: 'malformedRequest',
  2: 'internalError',
  3: 'tryLater',
  5: 'sigRequired',
  6: 'unauthorized',
};

type ResponderId = { readonly byName: Buffer } | { readonly byKey: Buffer };

interface SingleResponse {
  readonly hashAlgOid: string;
  readonly issuerNameHash: Buffer;
  readonly issuerKeyHash: Buffer;
  readonly serial: string;
  readonly status: OcspCertStatus;
  readonly revokedAt: Date | null;
  readonly reason: string | null;
  readonly thisUpdate: Date;
  readonly nextUpdate: Date | null;
  readonly unsupportedCritical: readonly string[];
}

interface BasicResponse extends SignedParts {
  readonly responderId: ResponderId;
  readonly producedAt: Date;
  readonly responses: readonly SingleResponse[];
  readonly certs: readonly Buffer[];
  /** extnValue content of the nonce extension, or null when absent. */
  readonly nonceValue: Buffer | null;
  readonly unsupportedCritical: readonly string[];
}

/** Outcome of parsing the outer OCSPResponse: a BasicOCSPResponse, or a verdict already. */
type Outer = { readonly basic: BasicResponse } | { readonly fail: OcspCheck };

const fail = (failure: OcspFailure, reason: string): OcspCheck => ({ ok: false, failure, reason });

/**
 * Parses and verifies one DER OCSPResponse for one certificate. Never throws: malformed input is
 * {ok:false, failure:'malformed'}. Checks, in order: response status, response type, structure,
 * signer and signature, critical extensions, nonce, the answer for `certId`, its time window.
 */
export function verifyOcspResponse(der: Buffer, opts: VerifyOcspOptions): OcspCheck {
  try {
    if (!Buffer.isBuffer(der)) return fail('malformed', 'response is not a Buffer');
    if (der.length === 0) return fail('malformed', 'empty response');
    if (der.length > MAX_OCSP_RESPONSE_BYTES) return fail('malformed', `response of ${der.length} bytes is over the ${MAX_OCSP_RESPONSE_BYTES}-byte limit`);
    const outer = parseOuter(der);
    if ('fail' in outer) return outer.fail;
    return judge(outer.basic, opts);
  } catch (err) {
    if (err instanceof DerError) return fail('malformed', err.message);
    // Anything else is a bug here; a responder must still never be able to crash the gateway.
    return fail('malformed', `unexpected parser failure: ${(err as Error)?.message ?? String(err)}`);
  }
}

function judge(basic: BasicResponse, opts: VerifyOcspOptions): OcspCheck {
  const signer = authenticate(basic, opts.issuer, opts.now);
  if (typeof signer !== 'string') return signer;

  if (basic.unsupportedCritical.length > 0) return fail('unsupported', `unsupported critical response extension(s): ${basic.unsupportedCritical.join(', ')}`);
  if (opts.nonce !== null && !nonceEchoed(basic.nonceValue, opts.nonce)) {
    return fail('nonce-mismatch', basic.nonceValue === null ? 'the response does not echo the request nonce' : 'the response carries a different nonce');
  }

  const id = opts.certId;
  const matches = basic.responses.filter((r) =>
    r.hashAlgOid === OID_SHA1 && r.serial === id.serial && r.issuerNameHash.equals(id.issuerNameHash) && r.issuerKeyHash.equals(id.issuerKeyHash));
  if (matches.length === 0) {
    return fail('certid-mismatch', `none of the ${basic.responses.length} answer(s) is for serial ${id.serial} of this issuer`);
  }
  // Two answers for one certificate could disagree; picking one would let the responder's order decide.
  if (matches.length > 1) return fail('malformed', `${matches.length} answers for serial ${id.serial}`);
  const single = matches[0]!;
  if (single.unsupportedCritical.length > 0) return fail('unsupported', `unsupported critical single-response extension(s): ${single.unsupportedCritical.join(', ')}`);

  if (single.nextUpdate !== null && single.nextUpdate.getTime() < single.thisUpdate.getTime()) {
    return fail('malformed', `nextUpdate ${single.nextUpdate.toISOString()} is before thisUpdate ${single.thisUpdate.toISOString()}`);
  }
  const skew = opts.clockSkewMs ?? DEFAULT_CLOCK_SKEW_MS;
  if (single.thisUpdate.getTime() > opts.now + skew) return fail('not-yet-valid', `thisUpdate ${single.thisUpdate.toISOString()} is in the future`);
  if (single.nextUpdate !== null && single.nextUpdate.getTime() < opts.now - skew) {
    return fail('expired', `nextUpdate ${single.nextUpdate.toISOString()} has passed`);
  }
  return {
    ok: true,
    answer: {
      status: single.status,
      thisUpdate: single.thisUpdate,
      nextUpdate: single.nextUpdate,
      producedAt: basic.producedAt,
      revokedAt: single.revokedAt,
      reason: single.reason,
      signer,
    },
  };
}

/** RFC 8954 wraps the nonce in an OCTET STRING; older responders echo it bare. Either is our nonce. */
function nonceEchoed(value: Buffer | null, nonce: Buffer): boolean {
  if (value === null) return false;
  if (value.equals(nonce)) return true;
  return value.length === nonce.length + 2 && value[0] === TAG_OCTET_STRING && value[1] === nonce.length && value.subarray(2).equals(nonce);
}

// ---------------------------------------------------------------------------------------------
// Who signed: the issuer, or a delegated responder certificate carried in the response.

function sha1(data: Uint8Array): Buffer {
  return createHash('sha1').update(data).digest();
}

/** Whether the ResponderID names the certificate whose Name DER and subjectPublicKey are given. */
function responderIdNames(id: ResponderId, subjectDer: Buffer, keyHash: () => Buffer): boolean {
  return 'byName' in id ? id.byName.equals(subjectDer) : id.byKey.equals(keyHash());
}

/**
 * The signer's label ('issuer' or a DN) when the response is signed by someone allowed to answer
 * for the issuer's certificates, else the failure. The ResponderID only selects the candidate; the
 * signature and, for a delegate, its authorization decide.
 */
function authenticate(basic: BasicResponse, issuer: X509Certificate, now: number): string | OcspCheck {
  const issuerDer = issuer.raw;
  const iss = walkCertificate(issuerDer);
  const issuerSubject = issuerDer.subarray(iss.subject.start, iss.subject.end);
  let firstFailure: OcspCheck | null = null;

  if (responderIdNames(basic.responderId, issuerSubject, () => sha1(subjectPublicKeyBits(issuerDer, iss.spki.start, iss.spki.end)))) {
    const sig = verifySignedData(basic.tbs, basic.sigAlgOid, basic.sigAlgParams, basic.signature, issuer, 'issuer key');
    if (sig.ok) return 'issuer';
    firstFailure = fail('bad-signature', `response signature: ${sig.reason}`);
  }

  for (const certDer of basic.certs) {
    let layout;
    try {
      layout = walkCertificate(certDer);
    } catch {
      continue; // a certificate we cannot read cannot be the one the ResponderID names
    }
    const subject = certDer.subarray(layout.subject.start, layout.subject.end);
    if (!responderIdNames(basic.responderId, subject, () => sha1(subjectPublicKeyBits(certDer, layout.spki.start, layout.spki.end)))) continue;
    const dn = certificateDn({ raw: certDer });
    const problem = delegationProblem(certDer, layout, issuer, issuerSubject, now);
    if (problem !== null) {
      firstFailure ??= fail('unauthorized-signer', `delegated responder ${dn}: ${problem}`);
      continue;
    }
    let key: KeyObject;
    try {
      key = createPublicKey({ key: certDer.subarray(layout.spki.start, layout.spki.end), format: 'der', type: 'spki' });
    } catch (err) {
      firstFailure ??= fail('unauthorized-signer', `delegated responder ${dn}: unusable public key (${(err as Error).message})`);
      continue;
    }
    const sig = verifySignedData(basic.tbs, basic.sigAlgOid, basic.sigAlgParams, basic.signature, key, 'responder key');
    if (sig.ok) return dn;
    firstFailure ??= fail('bad-signature', `response signature: ${sig.reason}`);
  }
  return firstFailure ?? fail('unauthorized-signer', 'the ResponderID names neither the issuer nor a responder certificate included in the response');
}

/**
 * Why a responder certificate may not answer for the issuer's certificates (RFC 6960 4.2.2.2), or
 * null: it must be issued directly by the issuer (name and signature), carry id-kp-OCSPSigning, and
 * be inside its validity window. Revocation of the responder certificate itself is not checked
 * (id-pkix-ocsp-nocheck is the usual answer, and short-lived responder certificates the practice).
 */
function delegationProblem(certDer: Buffer, layout: ReturnType<typeof walkCertificate>, issuer: X509Certificate, issuerSubject: Buffer, now: number): string | null {
  if (!rangeEquals(certDer, layout.issuer.start, layout.issuer.end, issuerSubject, 0, issuerSubject.length)) {
    return 'not issued by the certificate\'s CA (issuer name differs)';
  }
  const sig = verifyCertificateSignature(certDer, issuer, 'issuer key');
  if (!sig.ok) return `not signed by the certificate's CA: ${sig.reason}`;
  if (!hasOcspSigningEku(certDer, layout)) return 'lacks the id-kp-OCSPSigning extended key usage';
  const notBefore = decodeTime(certDer, layout.notBefore.tag, layout.notBefore.contentStart, layout.notBefore.end);
  const notAfter = decodeTime(certDer, layout.notAfter.tag, layout.notAfter.contentStart, layout.notAfter.end);
  if (now < notBefore.getTime()) return `not valid before ${notBefore.toISOString()}`;
  if (now > notAfter.getTime()) return `expired at ${notAfter.toISOString()}`;
  return null;
}

function hasOcspSigningEku(der: Buffer, layout: ReturnType<typeof walkCertificate>): boolean {
  let found = false;
  const c = new DerCursor(der);
  forEachExtension(der, layout, (ext) => {
    if (idCe(der, ext.oidStart, ext.oidEnd) !== CE_EXT_KEY_USAGE) return;
    const listEnd = c.expect(ext.valueStart, ext.valueEnd, TAG_SEQUENCE, 'ExtKeyUsageSyntax').end;
    for (let p = c.contentStart; p < listEnd; p = c.end) {
      c.expect(p, listEnd, TAG_OID, 'KeyPurposeId');
      if (decodeOid(der, c.contentStart, c.end) === OID_KP_OCSP_SIGNING) found = true;
    }
  });
  return found;
}

// ---------------------------------------------------------------------------------------------
// Structure. Every function below throws DerError on anything out of shape.

/** OCSPResponse ::= SEQUENCE { responseStatus ENUMERATED, responseBytes [0] EXPLICIT ResponseBytes OPTIONAL } */
function parseOuter(der: Buffer): Outer {
  const c = new DerCursor(der);
  c.expect(0, der.length, TAG_SEQUENCE, 'OCSPResponse');
  if (c.end !== der.length) throw new DerError('trailing data after OCSPResponse', c.end);
  const end = c.end;
  c.expect(c.contentStart, end, TAG_ENUMERATED, 'responseStatus');
  const status = decodeSmallInt(der, c.contentStart, c.end, 'responseStatus');
  if (status !== 0) {
    const name = RESPONSE_STATUS[status] ?? `status ${status}`;
    return { fail: fail('error-status', `responder answered ${name}`) };
  }
  if (c.end === end) throw new DerError('successful response without responseBytes', c.end);
  c.expect(c.end, end, 0xa0, 'responseBytes');
  if (c.end !== end) throw new DerError('trailing data in OCSPResponse', c.end);
  const rbEnd = c.expect(c.contentStart, c.end, TAG_SEQUENCE, 'ResponseBytes').end;
  if (rbEnd !== end) throw new DerError('trailing data after ResponseBytes', rbEnd);
  c.expect(c.contentStart, rbEnd, TAG_OID, 'responseType');
  const type = decodeOid(der, c.contentStart, c.end);
  c.expect(c.end, rbEnd, TAG_OCTET_STRING, 'response');
  if (c.end !== rbEnd) throw new DerError('trailing data in ResponseBytes', c.end);
  if (type !== OID_PKIX_OCSP_BASIC) return { fail: fail('unsupported', `response type ${type} is not id-pkix-ocsp-basic`) };
  return { basic: parseBasic(der, c.contentStart, c.end) };
}

/** BasicOCSPResponse ::= SEQUENCE { tbsResponseData, signatureAlgorithm, signature, certs [0] EXPLICIT SEQUENCE OF Certificate OPTIONAL } */
function parseBasic(der: Buffer, start: number, end: number): BasicResponse {
  const signed = readSignedParts(der, start, end);
  if (signed.end !== end) throw new DerError('trailing data after BasicOCSPResponse', signed.end);
  const c = new DerCursor(der);
  const certs: Buffer[] = [];
  if (signed.next < signed.end) {
    c.expect(signed.next, signed.end, 0xa0, 'certs');
    if (c.end !== signed.end) throw new DerError('trailing data in BasicOCSPResponse', c.end);
    const listEnd = c.expect(c.contentStart, c.end, TAG_SEQUENCE, 'certs list').end;
    for (let p = c.contentStart; p < listEnd; p = c.end) {
      if (certs.length === MAX_RESPONSE_CERTS) throw new DerError(`more than ${MAX_RESPONSE_CERTS} certificates`, p);
      c.expect(p, listEnd, TAG_SEQUENCE, 'Certificate');
      certs.push(der.subarray(c.start, c.end));
    }
  }
  return { ...signed, ...parseResponseData(signed.tbs), certs };
}

/** ResponseData ::= SEQUENCE { version [0] EXPLICIT DEFAULT v1, responderID, producedAt, responses, responseExtensions [1] EXPLICIT OPTIONAL } */
function parseResponseData(der: Buffer): Omit<BasicResponse, keyof SignedParts | 'certs'> {
  const c = new DerCursor(der);
  const end = c.expect(0, der.length, TAG_SEQUENCE, 'ResponseData').end;
  let p = c.contentStart;
  if (p < end && c.read(p, end).tag === 0xa0) {
    c.expect(c.contentStart, c.end, TAG_INTEGER, 'version');
    if (decodeSmallInt(der, c.contentStart, c.end, 'version') !== 0) throw new DerError('unsupported ResponseData version', c.start);
    p = c.end;
  }
  const responder = parseResponderId(der, p, end);
  const responderId = responder.id;
  c.expect(responder.end, end, TAG_GENERALIZED_TIME, 'producedAt');
  const producedAt = decodeTime(der, c.tag, c.contentStart, c.end);
  const listEnd = c.expect(c.end, end, TAG_SEQUENCE, 'responses').end;
  const responses: SingleResponse[] = [];
  for (let q = c.contentStart; q < listEnd; ) {
    if (responses.length === MAX_SINGLE_RESPONSES) throw new DerError(`more than ${MAX_SINGLE_RESPONSES} single responses`, q);
    const single = c.expect(q, listEnd, TAG_SEQUENCE, 'SingleResponse');
    q = single.end;
    responses.push(parseSingle(der, single.start, single.end));
  }
  p = listEnd;
  let nonceValue: Buffer | null = null;
  let unsupportedCritical: string[] = [];
  if (p < end) {
    c.expect(p, end, 0xa1, 'responseExtensions');
    if (c.end !== end) throw new DerError('trailing data in ResponseData', c.end);
    const exts = readExtensions(der, c.contentStart, c.end, [OID_OCSP_NONCE]);
    nonceValue = exts.known.get(OID_OCSP_NONCE) ?? null;
    unsupportedCritical = exts.unsupportedCritical;
  }
  return { responderId, producedAt, responses, nonceValue, unsupportedCritical };
}

/** ResponderID ::= CHOICE { byName [1] EXPLICIT Name, byKey [2] EXPLICIT KeyHash }, which fills [p, its end). */
function parseResponderId(der: Buffer, p: number, end: number): { readonly id: ResponderId; readonly end: number } {
  const c = new DerCursor(der);
  if (p >= end) throw new DerError('missing responderID (truncated)', p);
  const tag = c.read(p, end).tag;
  const outerEnd = c.end;
  if (tag === 0xa1) {
    c.expect(c.contentStart, outerEnd, TAG_SEQUENCE, 'responderID byName');
    if (c.end !== outerEnd) throw new DerError('trailing data in responderID', c.end);
    return { id: { byName: der.subarray(c.start, c.end) }, end: outerEnd };
  }
  if (tag === 0xa2) {
    c.expect(c.contentStart, outerEnd, TAG_OCTET_STRING, 'responderID byKey');
    if (c.end !== outerEnd) throw new DerError('trailing data in responderID', c.end);
    if (c.end - c.contentStart !== 20) throw new DerError('responderID byKey is not a SHA-1 hash', c.start);
    return { id: { byKey: der.subarray(c.contentStart, c.end) }, end: outerEnd };
  }
  throw new DerError(`responderID: unexpected tag 0x${tag.toString(16)}`, p);
}

/** SingleResponse ::= SEQUENCE { certID, certStatus, thisUpdate, nextUpdate [0] EXPLICIT OPTIONAL, singleExtensions [1] EXPLICIT OPTIONAL } */
function parseSingle(der: Buffer, start: number, end: number): SingleResponse {
  const c = new DerCursor(der);
  c.expect(start, end, TAG_SEQUENCE, 'SingleResponse');
  const certIdEnd = c.expect(c.contentStart, end, TAG_SEQUENCE, 'CertID').end;
  const algEnd = c.expect(c.contentStart, certIdEnd, TAG_SEQUENCE, 'hashAlgorithm').end;
  c.expect(c.contentStart, algEnd, TAG_OID, 'hashAlgorithm.algorithm');
  const hashAlgOid = decodeOid(der, c.contentStart, c.end);
  if (c.end < algEnd && (c.read(c.end, algEnd).tag !== TAG_NULL || c.end !== algEnd || c.end !== c.contentStart)) {
    throw new DerError('hashAlgorithm parameters must be absent or NULL', c.start);
  }
  c.expect(algEnd, certIdEnd, TAG_OCTET_STRING, 'issuerNameHash');
  const issuerNameHash = der.subarray(c.contentStart, c.end);
  c.expect(c.end, certIdEnd, TAG_OCTET_STRING, 'issuerKeyHash');
  const issuerKeyHash = der.subarray(c.contentStart, c.end);
  c.expect(c.end, certIdEnd, TAG_INTEGER, 'serialNumber');
  if (c.end === c.contentStart) throw new DerError('serialNumber: empty INTEGER', c.start);
  // RFC 5280 caps serials at 20 octets; 64 leaves room for broken CAs without unbounded hex work.
  if (c.end - c.contentStart > 64) throw new DerError('serialNumber longer than 64 octets', c.start);
  const serial = normalizeSerial(der.toString('hex', c.contentStart, c.end));
  if (c.end !== certIdEnd) throw new DerError('trailing data in CertID', c.end);

  if (certIdEnd >= end) throw new DerError('missing certStatus (truncated)', certIdEnd);
  const statusTag = c.read(certIdEnd, end).tag;
  const statusEnd = c.end;
  let status: OcspCertStatus;
  let revokedAt: Date | null = null;
  let reason: string | null = null;
  if (statusTag === 0x80 || statusTag === 0x82) {
    if (c.end !== c.contentStart) throw new DerError('certStatus good/unknown must be empty', c.start);
    status = statusTag === 0x80 ? 'good' : 'unknown';
  } else if (statusTag === 0xa1) {
    status = 'revoked';
    c.expect(c.contentStart, statusEnd, TAG_GENERALIZED_TIME, 'revocationTime');
    revokedAt = decodeTime(der, c.tag, c.contentStart, c.end);
    if (c.end < statusEnd) {
      c.expect(c.end, statusEnd, 0xa0, 'revocationReason');
      if (c.end !== statusEnd) throw new DerError('trailing data in RevokedInfo', c.end);
      const reasonEnd = c.end;
      c.expect(c.contentStart, reasonEnd, TAG_ENUMERATED, 'CRLReason');
      if (c.end !== reasonEnd) throw new DerError('trailing data in revocationReason', c.end);
      reason = crlReasonName(decodeSmallInt(der, c.contentStart, c.end, 'CRLReason'));
    }
  } else {
    throw new DerError(`certStatus: unexpected tag 0x${statusTag.toString(16)}`, c.start);
  }

  c.expect(statusEnd, end, TAG_GENERALIZED_TIME, 'thisUpdate');
  const thisUpdate = decodeTime(der, c.tag, c.contentStart, c.end);
  let p = c.end;
  let nextUpdate: Date | null = null;
  if (p < end && c.read(p, end).tag === 0xa0) {
    const wrapEnd = c.end;
    c.expect(c.contentStart, wrapEnd, TAG_GENERALIZED_TIME, 'nextUpdate');
    if (c.end !== wrapEnd) throw new DerError('trailing data in nextUpdate', c.end);
    nextUpdate = decodeTime(der, c.tag, c.contentStart, c.end);
    p = wrapEnd;
  }
  let unsupportedCritical: string[] = [];
  if (p < end) {
    c.expect(p, end, 0xa1, 'singleExtensions');
    if (c.end !== end) throw new DerError('trailing data in SingleResponse', c.end);
    unsupportedCritical = readExtensions(der, c.contentStart, c.end, []).unsupportedCritical;
  }
  return { hashAlgOid, issuerNameHash, issuerKeyHash, serial, status, revokedAt, reason, thisUpdate, nextUpdate, unsupportedCritical };
}

/** Extensions: the values of the `known` ones, and the critical ones not known (which make the answer unusable). */
function readExtensions(der: Buffer, start: number, end: number, known: readonly string[]): { known: Map<string, Buffer>; unsupportedCritical: string[] } {
  const values = new Map<string, Buffer>();
  const seen = new Set<string>();
  const unsupportedCritical: string[] = [];
  walkExtensions(new DerCursor(der), start, end, (ext) => {
    const oid = decodeOid(der, ext.oidStart, ext.oidEnd);
    if (seen.has(oid)) throw new DerError(`duplicate extension ${oid}`, ext.oidStart);
    seen.add(oid);
    if (known.includes(oid)) values.set(oid, der.subarray(ext.valueStart, ext.valueEnd));
    else if (ext.critical) unsupportedCritical.push(oid);
  });
  return { known: values, unsupportedCritical };
}
