/**
 * Identity: the typed view of a peer certificate that policy, logging and upstream headers use.
 * Computed once per TLS connection (see identity-from-certificate.ts); everything downstream reads
 * this structure and never re-parses the certificate.
 */

import type { DistinguishedName } from '../x509/dn.js';

// The DN and hex-identifier primitives live in src/x509 (revocation uses them too and must not
// import identity); they are re-exported here because they are part of PeerIdentity's vocabulary.
export type { DistinguishedName, DnAttribute } from '../x509/dn.js';
export { normalizeFingerprint, normalizeSerial } from '../x509/canonical-hex.js';

export interface SpiffeId {
  /** The whole ID, e.g. spiffe://example.org/ns/default/sa/billing */
  readonly uri: string;
  readonly trustDomain: string;
  /** Path part, starting with '/', e.g. /ns/default/sa/billing */
  readonly path: string;
}

export interface SubjectAltNames {
  readonly dns: readonly string[];
  readonly uri: readonly string[];
  readonly email: readonly string[];
  /** Canonical text form (IPv4 dotted quad, IPv6 compressed lower-case). */
  readonly ip: readonly string[];
}

export interface PeerIdentity {
  readonly subject: DistinguishedName;
  readonly issuer: DistinguishedName;
  readonly san: SubjectAltNames;
  /** The single spiffe:// URI SAN, or null (none, or more than one: SPIFFE allows exactly one). */
  readonly spiffe: SpiffeId | null;
  /** Serial as canonical hex: upper-case, no separators, no leading 00 bytes. */
  readonly serial: string;
  /** SHA-256 of the DER certificate: lower-case hex, no separators. */
  readonly fingerprint256: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}
