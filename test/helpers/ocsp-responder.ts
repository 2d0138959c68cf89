/**
 * Test helper: an OCSP responder (RFC 6960) on 127.0.0.1, plain HTTP, port 0, that the OCSP tests
 * start in-process, plus the parts it is made of so unit tests can use them directly: the response
 * signer (buildOcspResponse), a request parser (parseOcspRequest), and certificates for OCSP
 * (delegated responder certificates with or without id-kp-OCSPSigning, leaves whose Authority
 * Information Access names a responder). Modes make it misbehave the ways real responders do.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createHash, createPrivateKey, generateKeyPairSync, KeyObject, randomBytes, webcrypto, X509Certificate } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { encExtension, encOid, signerFor, tlv, type CrlWriterExtension } from '../../src/revocation/crl-writer.js';
import { certificateKeyHash, OID_OCSP_NONCE, OID_SHA1 } from '../../src/revocation/ocsp-request.js';
import type { OcspCertStatus } from '../../src/revocation/ocsp-response.js';
import { crlReasonName } from '../../src/revocation/revoked-serials.js';
import type { Ca, Issued, KeyAlgorithm } from '../../src/pki/dev-pki.js';
import { normalizeSerial } from '../../src/x509/canonical-hex.js';
import { walkCertificate } from '../../src/x509/cert-fields.js';
import { DerCursor, decodeOid, walkExtensions, TAG_INTEGER, TAG_OCTET_STRING, TAG_OID, TAG_SEQUENCE } from '../../src/x509/der.js';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const OID_PKIX_OCSP_BASIC = '1.3.6.1.5.5.7.48.1.1';
export const OID_KP_OCSP_SIGNING = '1.3.6.1.5.5.7.3.9';

// ---------------------------------------------------------------------------------------------
// Requests

/** One CertID as a client sent it (hash algorithm included, so a test can see what was asked). */
export interface RequestedCertId {
  readonly hashAlgOid: string;
  readonly issuerNameHash: Buffer;
  readonly issuerKeyHash: Buffer;
  /** Canonical hex. */
  readonly serial: string;
  /** INTEGER content bytes as sent. */
  readonly serialDer: Buffer;
}

export interface ParsedOcspRequest {
  readonly certIds: readonly RequestedCertId[];
  /** The nonce (unwrapped from its RFC 8954 OCTET STRING), or null. */
  readonly nonce: Buffer | null;
  /** The nonce extension's value exactly as sent, for a verbatim echo. */
  readonly nonceValue: Buffer | null;
}

/** Parses an OCSPRequest (unsigned; at most 16 Requests). Throws DerError when malformed. */
export function parseOcspRequest(der: Buffer): ParsedOcspRequest {
  const c = new DerCursor(der);
  c.expect(0, der.length, TAG_SEQUENCE, 'OCSPRequest');
  const tbsEnd = c.expect(c.contentStart, c.end, TAG_SEQUENCE, 'TBSRequest').end;
  let p = c.contentStart;
  while (p < tbsEnd && (c.read(p, tbsEnd).tag === 0xa0 || c.tag === 0xa1)) p = c.end; // version, requestorName
  const listEnd = c.expect(p, tbsEnd, TAG_SEQUENCE, 'requestList').end;
  const certIds: RequestedCertId[] = [];
  for (let q = c.contentStart; q < listEnd; ) {
    if (certIds.length === 16) throw new Error('more than 16 requests');
    const reqEnd = c.expect(q, listEnd, TAG_SEQUENCE, 'Request').end;
    q = reqEnd;
    const idEnd = c.expect(c.contentStart, reqEnd, TAG_SEQUENCE, 'CertID').end;
    const algEnd = c.expect(c.contentStart, idEnd, TAG_SEQUENCE, 'hashAlgorithm').end;
    c.expect(c.contentStart, algEnd, TAG_OID, 'hashAlgorithm.algorithm');
    const hashAlgOid = decodeOid(der, c.contentStart, c.end);
    c.expect(algEnd, idEnd, TAG_OCTET_STRING, 'issuerNameHash');
    const issuerNameHash = Buffer.from(der.subarray(c.contentStart, c.end));
    c.expect(c.end, idEnd, TAG_OCTET_STRING, 'issuerKeyHash');
    const issuerKeyHash = Buffer.from(der.subarray(c.contentStart, c.end));
    c.expect(c.end, idEnd, TAG_INTEGER, 'serialNumber');
    const serialDer = Buffer.from(der.subarray(c.contentStart, c.end));
    certIds.push({ hashAlgOid, issuerNameHash, issuerKeyHash, serialDer, serial: normalizeSerial(serialDer.toString('hex')) });
  }
  let nonce: Buffer | null = null;
  let nonceValue: Buffer | null = null;
  if (listEnd < tbsEnd) {
    c.expect(listEnd, tbsEnd, 0xa2, 'requestExtensions');
    walkExtensions(new DerCursor(der), c.contentStart, c.end, (ext) => {
      if (decodeOid(der, ext.oidStart, ext.oidEnd) !== OID_OCSP_NONCE) return;
      nonceValue = Buffer.from(der.subarray(ext.valueStart, ext.valueEnd));
      const x = new DerCursor(der).read(ext.valueStart, ext.valueEnd);
      nonce = x.tag === TAG_OCTET_STRING && x.end === ext.valueEnd ? Buffer.from(der.subarray(x.contentStart, x.end)) : nonceValue;
    });
  }
  return { certIds, nonce, nonceValue };
}

/** The bytes of an HTTP OCSP request: the POST body, or the GET path's base64 (RFC 6960 A.1; URL-encoded or base64url). */
export function decodeGetPath(path: string): Buffer {
  const text = decodeURIComponent(path.replace(/^\/+/, ''));
  if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(text)) throw new Error('GET path is not base64');
  return Buffer.from(text.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
}

// ---------------------------------------------------------------------------------------------
// Responses

export interface OcspSingleAnswer {
  readonly certId: { readonly issuerNameHash: Buffer; readonly issuerKeyHash: Buffer; readonly serialDer: Buffer; readonly hashAlgOid?: string };
  readonly status: OcspCertStatus;
  readonly revokedAt?: Date;
  /** RFC 5280 CRLReason code; omitted -> no revocationReason. */
  readonly reason?: number;
  readonly thisUpdate: Date;
  /** null omits nextUpdate. */
  readonly nextUpdate: Date | null;
  readonly extensions?: readonly CrlWriterExtension[];
}

export interface BuildOcspResponseOptions {
  /** Key that signs the ResponseData. */
  readonly signerKey: KeyObject;
  /** Certificate the ResponderID names (by name or by key hash); need not match signerKey. */
  readonly responderCertDer: Buffer;
  readonly responderId?: 'name' | 'key';
  /** Certificates carried in the response (a delegated responder's certificate). */
  readonly certs?: readonly Buffer[];
  readonly producedAt: Date;
  readonly answers: readonly OcspSingleAnswer[];
  /** Nonce extension value as it should appear (wrapNonce() for the RFC 8954 form); null/omitted: none. */
  readonly nonceValue?: Buffer | null;
  readonly extensions?: readonly CrlWriterExtension[];
  readonly rsaPss?: boolean;
}

/** RFC 8954 nonce extension value: an OCTET STRING holding the nonce. */
export function wrapNonce(nonce: Buffer): Buffer {
  return tlv(0x04, nonce);
}

/** GeneralizedTime YYYYMMDDHHMMSSZ, as RFC 6960 requires for every OCSP time. */
export function generalizedTime(d: Date): Buffer {
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  const text = `${p(d.getUTCFullYear(), 4)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}Z`;
  return tlv(0x18, Buffer.from(text, 'latin1'));
}

function encSingle(a: OcspSingleAnswer): Buffer {
  const nul = Buffer.from([0x05, 0x00]);
  const certId = tlv(0x30,
    tlv(0x30, encOid(a.certId.hashAlgOid ?? OID_SHA1), nul),
    tlv(0x04, a.certId.issuerNameHash),
    tlv(0x04, a.certId.issuerKeyHash),
    tlv(0x02, a.certId.serialDer));
  let status: Buffer;
  if (a.status === 'good') status = Buffer.from([0x80, 0x00]);
  else if (a.status === 'unknown') status = Buffer.from([0x82, 0x00]);
  else {
    status = tlv(0xa1,
      generalizedTime(a.revokedAt ?? a.thisUpdate),
      a.reason === undefined ? Buffer.alloc(0) : tlv(0xa0, tlv(0x0a, Buffer.from([a.reason]))));
  }
  return tlv(0x30,
    certId,
    status,
    generalizedTime(a.thisUpdate),
    a.nextUpdate ? tlv(0xa0, generalizedTime(a.nextUpdate)) : Buffer.alloc(0),
    a.extensions?.length ? tlv(0xa1, tlv(0x30, ...a.extensions.map(encExtension))) : Buffer.alloc(0));
}

/** A successful, signed BasicOCSPResponse: what a responder sends. */
export function buildOcspResponse(o: BuildOcspResponseOptions): Buffer {
  const layout = walkCertificate(o.responderCertDer);
  const responderId = (o.responderId ?? 'name') === 'name'
    ? tlv(0xa1, o.responderCertDer.subarray(layout.subject.start, layout.subject.end))
    : tlv(0xa2, tlv(0x04, certificateKeyHash(o.responderCertDer)));
  const exts = [...(o.nonceValue ? [{ oid: OID_OCSP_NONCE, value: o.nonceValue }] : []), ...(o.extensions ?? [])];
  const tbs = tlv(0x30,
    responderId,
    generalizedTime(o.producedAt),
    tlv(0x30, ...o.answers.map(encSingle)),
    exts.length ? tlv(0xa1, tlv(0x30, ...exts.map(encExtension))) : Buffer.alloc(0));
  const signer = signerFor(o.signerKey, o.rsaPss ?? false);
  const basic = tlv(0x30,
    tbs,
    signer.algId,
    tlv(0x03, Buffer.from([0]), signer.sign(tbs)),
    o.certs?.length ? tlv(0xa0, tlv(0x30, ...o.certs)) : Buffer.alloc(0));
  return tlv(0x30, tlv(0x0a, Buffer.from([0])), tlv(0xa0, tlv(0x30, encOid(OID_PKIX_OCSP_BASIC), tlv(0x04, basic))));
}

/** OCSPResponseStatus values (RFC 6960 4.2.1). */
export const OCSP_STATUS = { malformedRequest: 1, internalError: 2, tryLater: 3, sigRequired: 5, unauthorized: 6 } as const;

/** An unsuccessful OCSPResponse: only the status, no responseBytes. */
export function buildOcspErrorResponse(status: number): Buffer {
  return tlv(0x30, tlv(0x0a, Buffer.from([status])));
}

// ---------------------------------------------------------------------------------------------
// Certificates

type CryptoKeyPair = webcrypto.CryptoKeyPair;

function keyParams(alg: KeyAlgorithm): webcrypto.EcKeyGenParams | webcrypto.RsaHashedKeyGenParams {
  return alg === 'RSA-2048'
    ? { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }
    : { name: 'ECDSA', namedCurve: 'P-256' };
}

function toPem(der: Buffer, label: string): string {
  return `-----BEGIN ${label}-----\n${(der.toString('base64').match(/.{1,64}/g) ?? []).join('\n')}\n-----END ${label}-----\n`;
}

interface IssueOptions {
  readonly name: string;
  readonly subject: string;
  readonly extensions: x509.Extension[];
  readonly keyAlgorithm?: KeyAlgorithm;
  readonly notBefore?: Date;
  readonly notAfter?: Date;
  /** Signs with these keys instead of the CA's while still naming the CA as issuer (a forgery). */
  readonly signingKeys?: CryptoKeyPair;
}

async function issue(ca: Ca, o: IssueOptions): Promise<Issued> {
  const keys = (await webcrypto.subtle.generateKey(keyParams(o.keyAlgorithm ?? 'ECDSA-P256'), true, ['sign', 'verify'])) as CryptoKeyPair;
  const signingKey = (o.signingKeys ?? ca.keys).privateKey;
  const now = Date.now();
  const serialBytes = randomBytes(16);
  serialBytes[0] = (serialBytes[0]! & 0x7f) || 1;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serialBytes.toString('hex'),
    subject: o.subject,
    issuer: ca.cert.subjectName,
    notBefore: o.notBefore ?? new Date(now - 3600_000),
    notAfter: o.notAfter ?? new Date(now + 7 * 86_400_000),
    publicKey: keys.publicKey,
    signingKey,
    signingAlgorithm: signingKey.algorithm.name === 'ECDSA' ? { name: 'ECDSA', hash: 'SHA-256' } : { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
    extensions: [...o.extensions, await x509.SubjectKeyIdentifierExtension.create(keys.publicKey)],
  });
  const der = Buffer.from(cert.rawData);
  const certPem = toPem(der, 'CERTIFICATE');
  return {
    name: o.name,
    certPem,
    keyPem: KeyObject.from(keys.privateKey).export({ type: 'pkcs8', format: 'pem' }) as string,
    der,
    serial: serialBytes.toString('hex').toUpperCase(),
    chainPem: certPem + (ca.issuer === null ? '' : ca.chainPem),
    keys,
    cert,
    issuer: ca,
  };
}

/**
 * A delegated OCSP responder certificate issued by `ca` (RFC 6960 4.2.2.2). `ocspSigning: false`
 * leaves out id-kp-OCSPSigning (a certificate the gateway must refuse as a signer); `signingKeys`
 * signs it with another key while naming `ca` as issuer.
 */
export async function issueOcspResponderCert(
  ca: Ca,
  o: { ocspSigning?: boolean; keyAlgorithm?: KeyAlgorithm; notBefore?: Date; notAfter?: Date; signingKeys?: CryptoKeyPair; cn?: string } = {},
): Promise<Issued> {
  const eku = o.ocspSigning ?? true ? [OID_KP_OCSP_SIGNING] : [x509.ExtendedKeyUsage.clientAuth];
  return issue(ca, {
    name: 'ocsp-responder',
    subject: `O=Example,CN=${o.cn ?? 'OCSP Responder'}`,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension(eku, false),
      // id-pkix-ocsp-nocheck: the usual companion of a delegated responder certificate.
      new x509.Extension('1.3.6.1.5.5.7.48.1.5', false, Buffer.from([0x05, 0x00])),
    ],
    ...(o.keyAlgorithm ? { keyAlgorithm: o.keyAlgorithm } : {}),
    ...(o.notBefore ? { notBefore: o.notBefore } : {}),
    ...(o.notAfter ? { notAfter: o.notAfter } : {}),
    ...(o.signingKeys ? { signingKeys: o.signingKeys } : {}),
  });
}

/** A client (or server) leaf under `ca` whose Authority Information Access names these OCSP URLs. */
export async function issueLeafWithOcsp(
  ca: Ca,
  o: { ocspUrls: readonly string[]; cn?: string; uris?: readonly string[]; dns?: readonly string[]; usage?: 'client' | 'server' | 'client+server'; keyAlgorithm?: KeyAlgorithm; notBefore?: Date; notAfter?: Date },
): Promise<Issued> {
  const usage = o.usage ?? 'client';
  const eku: string[] = [];
  if (usage !== 'client') eku.push(x509.ExtendedKeyUsage.serverAuth);
  if (usage !== 'server') eku.push(x509.ExtendedKeyUsage.clientAuth);
  const san: x509.JsonGeneralNames = [
    ...(o.dns ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(o.uris ?? []).map((value) => ({ type: 'url' as const, value })),
  ];
  const cn = o.cn ?? 'ocsp-client';
  return issue(ca, {
    name: cn,
    subject: `O=Example,CN=${cn}`,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension(eku, false),
      ...(san.length ? [new x509.SubjectAlternativeNameExtension(san, false)] : []),
      ...(o.ocspUrls.length ? [new x509.AuthorityInfoAccessExtension({ ocsp: [...o.ocspUrls] })] : []),
    ],
    ...(o.keyAlgorithm ? { keyAlgorithm: o.keyAlgorithm } : {}),
    ...(o.notBefore ? { notBefore: o.notBefore } : {}),
    ...(o.notAfter ? { notAfter: o.notAfter } : {}),
  });
}

// ---------------------------------------------------------------------------------------------
// The HTTP responder

/**
 * normal: answers honestly. error: tryLater. wrong-signer: claims to be the issuer but signs with
 * another key (the verifier says bad-signature). expired: nextUpdate an hour ago. future: thisUpdate
 * an hour ahead. mismatch: answers for another serial. slow: answers after `delayMs`. down: destroys
 * the socket. garbage: a body that is not DER. no-nonce / wrong-nonce: drops or replaces the nonce.
 */
export type OcspResponderMode = 'normal' | 'error' | 'wrong-signer' | 'expired' | 'future' | 'mismatch' | 'slow' | 'down' | 'garbage' | 'no-nonce' | 'wrong-nonce';

export interface OcspResponderOptions {
  /** The CA that issued the certificates being checked. */
  readonly issuerCertPem: string;
  readonly issuerKeyPem: string;
  /** Who signs: the CA itself (default) or a delegated responder certificate, which is then included. */
  readonly signer?: 'issuer' | { readonly certPem: string; readonly keyPem: string };
  /** nextUpdate - thisUpdate (default one hour); short values force the gateway to refresh. */
  readonly validityMs?: number;
  /** Answer for serials without setStatus (default 'good'). */
  readonly defaultStatus?: OcspCertStatus;
  readonly responderId?: 'name' | 'key';
}

export interface SeenOcspRequest {
  readonly method: string;
  readonly serials: readonly string[];
  readonly nonce: Buffer | null;
}

export interface OcspResponder {
  readonly url: string;
  readonly port: number;
  /** HTTP requests received, any mode, well-formed or not. */
  readonly requests: number;
  readonly lastRequest: SeenOcspRequest | null;
  setStatus(serialHex: string, status: OcspCertStatus, opts?: { revokedAt?: Date; reason?: number | string }): void;
  setMode(mode: OcspResponderMode, opts?: { delayMs?: number }): void;
  close(): Promise<void>;
}

interface StatusEntry {
  readonly status: OcspCertStatus;
  readonly revokedAt?: Date;
  readonly reason?: number;
}

function reasonCode(reason: number | string): number {
  if (typeof reason === 'number') return reason;
  for (let code = 0; code <= 10; code++) if (crlReasonName(code) === reason) return code;
  throw new Error(`unknown CRLReason ${reason}`);
}

const MAX_REQUEST_BYTES = 64 * 1024;

export async function startOcspResponder(o: OcspResponderOptions): Promise<OcspResponder> {
  const issuerDer = new X509Certificate(o.issuerCertPem).raw;
  const issuerKey = createPrivateKey(o.issuerKeyPem);
  const delegated = o.signer && o.signer !== 'issuer' ? { der: new X509Certificate(o.signer.certPem).raw, key: createPrivateKey(o.signer.keyPem) } : null;
  const rogueKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const issuerLayout = walkCertificate(issuerDer);
  const issuerId = {
    issuerNameHash: createHash('sha1').update(issuerDer.subarray(issuerLayout.subject.start, issuerLayout.subject.end)).digest(),
    issuerKeyHash: certificateKeyHash(issuerDer),
  };
  const validityMs = o.validityMs ?? 3600_000;
  const statuses = new Map<string, StatusEntry>();
  let mode: OcspResponderMode = 'normal';
  let delayMs = 1000;
  let requests = 0;
  let lastRequest: SeenOcspRequest | null = null;
  const timers = new Set<NodeJS.Timeout>();
  const sockets = new Set<Socket>();

  const respond = (parsed: ParsedOcspRequest): Buffer => {
    if (mode === 'error') return buildOcspErrorResponse(OCSP_STATUS.tryLater);
    if (mode === 'garbage') return Buffer.from('this is not an OCSP response');
    const now = Math.floor(Date.now() / 1000) * 1000;
    let thisUpdate = new Date(now);
    if (mode === 'expired') thisUpdate = new Date(now - 3600_000 - validityMs);
    if (mode === 'future') thisUpdate = new Date(now + 3600_000);
    const nextUpdate = new Date(thisUpdate.getTime() + validityMs);
    const answers = parsed.certIds.map((id): OcspSingleAnswer => {
      const ours = id.issuerNameHash.equals(issuerId.issuerNameHash) && id.issuerKeyHash.equals(issuerId.issuerKeyHash);
      const entry: StatusEntry = ours ? statuses.get(id.serial) ?? { status: o.defaultStatus ?? 'good' } : { status: 'unknown' };
      const serialDer = Buffer.from(id.serialDer);
      if (mode === 'mismatch') serialDer[serialDer.length - 1] = serialDer[serialDer.length - 1]! ^ 1;
      return {
        certId: { ...id, serialDer },
        status: entry.status,
        ...(entry.revokedAt ? { revokedAt: entry.revokedAt } : {}),
        ...(entry.reason !== undefined ? { reason: entry.reason } : {}),
        thisUpdate,
        nextUpdate,
      };
    });
    let nonceValue = parsed.nonceValue;
    if (mode === 'no-nonce') nonceValue = null;
    if (mode === 'wrong-nonce') nonceValue = wrapNonce(randomBytes(16));
    const signerKey = mode === 'wrong-signer' ? rogueKey : delegated?.key ?? issuerKey;
    return buildOcspResponse({
      signerKey,
      responderCertDer: mode === 'wrong-signer' ? issuerDer : delegated?.der ?? issuerDer,
      ...(o.responderId ? { responderId: o.responderId } : {}),
      ...(delegated && mode !== 'wrong-signer' ? { certs: [delegated.der] } : {}),
      producedAt: new Date(now),
      answers,
      nonceValue,
    });
  };

  const send = (res: ServerResponse, body: Buffer): void => {
    res.writeHead(200, { 'content-type': 'application/ocsp-response', 'content-length': body.length });
    res.end(body);
  };

  const handle = (req: IncomingMessage, res: ServerResponse, der: Buffer): void => {
    let parsed: ParsedOcspRequest;
    try {
      parsed = parseOcspRequest(der);
    } catch {
      send(res, buildOcspErrorResponse(OCSP_STATUS.malformedRequest));
      return;
    }
    lastRequest = { method: req.method ?? '', serials: parsed.certIds.map((id) => id.serial), nonce: parsed.nonce };
    const body = respond(parsed);
    if (mode !== 'slow') {
      send(res, body);
      return;
    }
    const timer = setTimeout(() => {
      timers.delete(timer);
      if (!res.destroyed) send(res, body);
    }, delayMs);
    timers.add(timer);
  };

  const server = http.createServer((req, res) => {
    requests++;
    if (mode === 'down') {
      req.socket.destroy();
      return;
    }
    if (req.method === 'GET') {
      let der: Buffer;
      try {
        der = decodeGetPath(req.url ?? '/');
      } catch {
        send(res, buildOcspErrorResponse(OCSP_STATUS.malformedRequest));
        return;
      }
      handle(req, res, der);
      return;
    }
    if (req.method !== 'POST') {
      res.writeHead(405).end();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_REQUEST_BYTES) req.socket.destroy();
      else chunks.push(chunk);
    });
    req.on('end', () => handle(req, res, Buffer.concat(chunks)));
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const port = (server.address() as AddressInfo).port;

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    get requests() {
      return requests;
    },
    get lastRequest() {
      return lastRequest;
    },
    setStatus(serialHex, status, opts = {}) {
      statuses.set(normalizeSerial(serialHex), {
        status,
        ...(opts.revokedAt ? { revokedAt: opts.revokedAt } : {}),
        ...(opts.reason !== undefined ? { reason: reasonCode(opts.reason) } : {}),
      });
    },
    setMode(next, opts = {}) {
      mode = next;
      if (opts.delayMs !== undefined) delayMs = opts.delayMs;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const t of timers) clearTimeout(t);
        timers.clear();
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
