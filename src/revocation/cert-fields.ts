/**
 * Revocation: the few certificate fields CRL handling needs that node:crypto's X509Certificate
 * does not expose as bytes: raw subject Name DER (matched byte-wise against a CRL's issuer), the
 * SubjectPublicKeyInfo, Subject/Authority Key Identifiers and KeyUsage.
 */

import { createHash, type X509Certificate } from 'node:crypto';
import { DerCursor, DerError, TAG_BIT_STRING, TAG_BOOLEAN, TAG_INTEGER, TAG_OCTET_STRING, TAG_OID, TAG_SEQUENCE } from './der-reader.js';

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

/** Walks Certificate -> tbsCertificate. Throws DerError on malformed input. */
export function certFields(raw: Buffer): CertFields {
  const c = new DerCursor(raw);
  c.expect(0, raw.length, TAG_SEQUENCE, 'Certificate');
  const certEnd = c.end;
  c.expect(c.contentStart, certEnd, TAG_SEQUENCE, 'tbsCertificate');
  const tbsEnd = c.end;
  let p = c.contentStart;
  c.read(p, tbsEnd);
  if (c.tag === 0xa0) p = c.end; // [0] EXPLICIT version
  p = c.expect(p, tbsEnd, TAG_INTEGER, 'serialNumber').end;
  p = c.expect(p, tbsEnd, TAG_SEQUENCE, 'signature').end;
  c.expect(p, tbsEnd, TAG_SEQUENCE, 'issuer');
  const issuerDer = raw.subarray(c.start, c.end);
  p = c.expect(c.end, tbsEnd, TAG_SEQUENCE, 'validity').end;
  c.expect(p, tbsEnd, TAG_SEQUENCE, 'subject');
  const subjectDer = raw.subarray(c.start, c.end);
  c.expect(c.end, tbsEnd, TAG_SEQUENCE, 'subjectPublicKeyInfo');
  const spkiDer = raw.subarray(c.start, c.end);
  p = c.end;

  let subjectKeyId: string | null = null;
  let authorityKeyId: string | null = null;
  let keyUsage: number | null = null;
  while (p < tbsEnd) {
    if (c.read(p, tbsEnd).tag !== 0xa3) {
      p = c.end; // issuerUniqueID [1] / subjectUniqueID [2]
      continue;
    }
    p = c.end;
    const extsEnd = c.expect(c.contentStart, c.end, TAG_SEQUENCE, 'Extensions').end;
    let q = c.contentStart;
    while (q < extsEnd) {
      c.expect(q, extsEnd, TAG_SEQUENCE, 'Extension');
      const extEnd = c.end;
      q = extEnd;
      c.expect(c.contentStart, extEnd, TAG_OID, 'extnID');
      const o = c.contentStart;
      const isCe = c.end - o === 3 && raw[o] === 0x55 && raw[o + 1] === 0x1d;
      const ce = isCe ? raw[o + 2]! : -1;
      // Locals, not c.tag: TypeScript keeps c.tag narrowed across c.read() calls.
      let tag = c.read(c.end, extEnd).tag;
      if (tag === TAG_BOOLEAN) tag = c.read(c.end, extEnd).tag;
      if (tag !== TAG_OCTET_STRING) throw new DerError('extnValue: expected OCTET STRING', c.start);
      const vStart = c.contentStart;
      const vEnd = c.end;
      if (ce === 14) {
        c.expect(vStart, vEnd, TAG_OCTET_STRING, 'SubjectKeyIdentifier');
        subjectKeyId = raw.toString('hex', c.contentStart, c.end);
      } else if (ce === 35) {
        const akiEnd = c.expect(vStart, vEnd, TAG_SEQUENCE, 'AuthorityKeyIdentifier').end;
        let r = c.contentStart;
        while (r < akiEnd) {
          if (c.read(r, akiEnd).tag === 0x80) authorityKeyId = raw.toString('hex', c.contentStart, c.end);
          r = c.end;
        }
      } else if (ce === 15) {
        c.expect(vStart, vEnd, TAG_BIT_STRING, 'KeyUsage');
        let mask = 0;
        // Bit 0 is the most significant bit of the first content octet after the unused-bits octet.
        for (let i = c.contentStart + 1, bit = 0; i < c.end && bit < 16; i++) {
          const b = raw[i]!;
          for (let k = 7; k >= 0; k--, bit++) if (b & (1 << k)) mask |= 1 << bit;
        }
        keyUsage = mask;
      }
    }
  }
  return { subjectDer, issuerDer, spkiDer, subjectKeyId, authorityKeyId, keyUsage };
}

/**
 * Identity of a CA for revocation purposes: sha256 over its subject Name DER followed by its
 * SubjectPublicKeyInfo DER (both self-delimiting, so the concatenation is unambiguous). A renewed CA
 * certificate with the same name and key keeps its key (its CRLs still apply to everything it
 * issued); a different key under the same name, or the same key under another name, does not.
 */
export function caKeyOf(cert: X509Certificate): string {
  const f = certFields(cert.raw);
  return createHash('sha256').update(f.subjectDer).update(f.spkiDer).digest('hex');
}
