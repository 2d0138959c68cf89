/**
 * X.509: the one walk of a Certificate (RFC 5280 4.1) down to its TBSCertificate fields, shared by
 * identity (subject, SANs, validity) and revocation (raw Name DER matched byte-wise against a CRL's
 * issuer, the SubjectPublicKeyInfo, Subject/Authority Key Identifiers, KeyUsage). The walk is
 * strict: every element's tag is checked, lengths stay inside their container, optional trailers
 * come in their fixed order and nothing may be left over, so a malformed certificate throws a
 * DerError instead of yielding partial fields.
 */

import {
  DerCursor, DerError, idCe, walkExtensions,
  TAG_BIT_STRING, TAG_INTEGER, TAG_OCTET_STRING, TAG_SEQUENCE, type ExtensionView,
} from './der.js';

/** Offsets of one element: [start, end) is the whole TLV, [contentStart, end) its content. */
export interface ElementSpan {
  readonly tag: number;
  readonly start: number;
  readonly contentStart: number;
  readonly end: number;
}

/** Where each TBSCertificate field sits in the certificate's DER. */
export interface CertificateLayout {
  readonly serial: ElementSpan;
  readonly issuer: ElementSpan;
  readonly notBefore: ElementSpan;
  readonly notAfter: ElementSpan;
  readonly subject: ElementSpan;
  readonly spki: ElementSpan;
  /** The `[3] EXPLICIT Extensions` content (the Extensions SEQUENCE), or null when absent. */
  readonly extensions: { readonly start: number; readonly end: number } | null;
}

const CTX_0_CONSTRUCTED = 0xa0;
const CTX_1_PRIMITIVE = 0x81;
const CTX_1_CONSTRUCTED = 0xa1;
const CTX_2_PRIMITIVE = 0x82;
const CTX_2_CONSTRUCTED = 0xa2;
const CTX_3_CONSTRUCTED = 0xa3;

function span(c: DerCursor): ElementSpan {
  return { tag: c.tag, start: c.start, contentStart: c.contentStart, end: c.end };
}

/** Walks Certificate -> TBSCertificate. Throws DerError on any structural problem. */
export function walkCertificate(buf: Uint8Array): CertificateLayout {
  const c = new DerCursor(buf);
  c.expect(0, buf.length, TAG_SEQUENCE, 'Certificate');
  if (c.end !== buf.length) throw new DerError('trailing data after Certificate', c.end);
  const certEnd = c.end;
  c.expect(c.contentStart, certEnd, TAG_SEQUENCE, 'TBSCertificate');
  const tbsEnd = c.end;

  let p = c.contentStart;
  if (p >= tbsEnd) throw new DerError('missing serialNumber (truncated)', p);
  if (c.read(p, tbsEnd).tag === CTX_0_CONSTRUCTED) p = c.end; // [0] EXPLICIT version
  c.expect(p, tbsEnd, TAG_INTEGER, 'serialNumber');
  if (c.end === c.contentStart) throw new DerError('serialNumber: empty INTEGER', c.start);
  const serial = span(c);
  p = c.expect(c.end, tbsEnd, TAG_SEQUENCE, 'signature').end;
  const issuer = span(c.expect(p, tbsEnd, TAG_SEQUENCE, 'issuer'));
  c.expect(c.end, tbsEnd, TAG_SEQUENCE, 'validity');
  const validityContent = c.contentStart;
  const validityEnd = c.end;
  const subject = span(c.expect(validityEnd, tbsEnd, TAG_SEQUENCE, 'subject'));
  const spki = span(c.expect(c.end, tbsEnd, TAG_SEQUENCE, 'subjectPublicKeyInfo'));

  if (validityContent >= validityEnd) throw new DerError('missing notBefore (truncated)', validityContent);
  const notBefore = span(c.read(validityContent, validityEnd));
  if (notBefore.end >= validityEnd) throw new DerError('missing notAfter (truncated)', notBefore.end);
  const notAfter = span(c.read(notBefore.end, validityEnd));
  if (notAfter.end !== validityEnd) throw new DerError('trailing data in validity', notAfter.end);

  // Optional trailers in their fixed order: issuerUniqueID [1], subjectUniqueID [2], extensions [3].
  let extensions: CertificateLayout['extensions'] = null;
  let order = 0;
  for (p = spki.end; p < tbsEnd; ) {
    const t = c.read(p, tbsEnd).tag;
    p = c.end;
    const rank = t === CTX_1_PRIMITIVE || t === CTX_1_CONSTRUCTED ? 1 : t === CTX_2_PRIMITIVE || t === CTX_2_CONSTRUCTED ? 2 : t === CTX_3_CONSTRUCTED ? 3 : 0;
    if (rank <= order) throw new DerError(`unexpected field (tag 0x${t.toString(16)}) after subjectPublicKeyInfo`, c.start);
    order = rank;
    if (rank === 3) extensions = { start: c.contentStart, end: c.end };
  }

  // The outer signature fields are not inspected (OpenSSL verifies signatures), only checked for
  // shape so that trailing garbage inside the certificate is refused.
  c.expect(tbsEnd, certEnd, TAG_SEQUENCE, 'signatureAlgorithm');
  c.expect(c.end, certEnd, TAG_BIT_STRING, 'signatureValue');
  if (c.end !== certEnd) throw new DerError('trailing data after the signature', c.end);

  return { serial, issuer, notBefore, notAfter, subject, spki, extensions };
}

/** Calls `visit` for each extension of a walked certificate (none when it has no extensions). */
export function forEachExtension(buf: Uint8Array, layout: CertificateLayout, visit: (ext: ExtensionView) => void): void {
  if (layout.extensions === null) return;
  walkExtensions(new DerCursor(buf), layout.extensions.start, layout.extensions.end, visit);
}

export interface CertFields {
  readonly subjectDer: Buffer;
  readonly issuerDer: Buffer;
  readonly spkiDer: Buffer;
  /** Subject Key Identifier, lower hex. */
  readonly subjectKeyId: string | null;
  /** keyIdentifier of the Authority Key Identifier, lower hex. */
  readonly authorityKeyId: string | null;
  /** KeyUsage bits as a mask (bit n = RFC 5280 KeyUsage bit n, e.g. cRLSign = 1 << 6), or null when absent. */
  readonly keyUsage: number | null;
}

export const KEY_USAGE_KEY_CERT_SIGN = 1 << 5;
export const KEY_USAGE_CRL_SIGN = 1 << 6;

const CE_SUBJECT_KEY_IDENTIFIER = 14;
const CE_KEY_USAGE = 15;
const CE_AUTHORITY_KEY_IDENTIFIER = 35;

/** The fields CRL handling needs that node:crypto's X509Certificate does not expose as bytes. */
export function certFields(raw: Buffer): CertFields {
  const layout = walkCertificate(raw);
  let subjectKeyId: string | null = null;
  let authorityKeyId: string | null = null;
  let keyUsage: number | null = null;
  const c = new DerCursor(raw);
  forEachExtension(raw, layout, (ext) => {
    const ce = idCe(raw, ext.oidStart, ext.oidEnd);
    if (ce === CE_SUBJECT_KEY_IDENTIFIER) {
      c.expect(ext.valueStart, ext.valueEnd, TAG_OCTET_STRING, 'SubjectKeyIdentifier');
      subjectKeyId = raw.toString('hex', c.contentStart, c.end);
    } else if (ce === CE_AUTHORITY_KEY_IDENTIFIER) {
      const akiEnd = c.expect(ext.valueStart, ext.valueEnd, TAG_SEQUENCE, 'AuthorityKeyIdentifier').end;
      let r = c.contentStart;
      while (r < akiEnd) {
        if (c.read(r, akiEnd).tag === 0x80) authorityKeyId = raw.toString('hex', c.contentStart, c.end);
        r = c.end;
      }
    } else if (ce === CE_KEY_USAGE) {
      c.expect(ext.valueStart, ext.valueEnd, TAG_BIT_STRING, 'KeyUsage');
      let mask = 0;
      // Bit 0 is the most significant bit of the first content octet after the unused-bits octet.
      for (let i = c.contentStart + 1, bit = 0; i < c.end && bit < 16; i++) {
        const b = raw[i]!;
        for (let k = 7; k >= 0; k--, bit++) if (b & (1 << k)) mask |= 1 << bit;
      }
      keyUsage = mask;
    }
  });
  return {
    subjectDer: raw.subarray(layout.subject.start, layout.subject.end),
    issuerDer: raw.subarray(layout.issuer.start, layout.issuer.end),
    spkiDer: raw.subarray(layout.spki.start, layout.spki.end),
    subjectKeyId,
    authorityKeyId,
    keyUsage,
  };
}
