/**
 * Revocation: the immutable snapshot of validated CRLs, keyed by the CA that signed them, answering
 * "is this serial revoked by its issuer's CRL?". Changes build a new snapshot (generation + 1) that
 * the owner swaps in with one assignment, so a request never sees a half-updated set. Policy (which
 * certificates to check, what a missing or stale CRL means) lives with the caller, not here.
 */

import { createHash, type X509Certificate } from 'node:crypto';
import { certFields } from '../x509/cert-fields.js';
import { certificateDn } from '../x509/dn.js';
import type { ParsedCrl } from './parse-crl.js';
import { isStale } from './verify-crl.js';

export interface IndexedCrl {
  readonly crl: ParsedCrl;
  /** The CA certificate whose key verified the CRL (validateCrl's `issuer`). */
  readonly issuer: X509Certificate;
  /** Where the CRL came from (file path, URL), for logs. */
  readonly source: string;
}

export type RevocationStatus =
  | { readonly status: 'good'; readonly crlNumber: bigint | null }
  | { readonly status: 'revoked'; readonly reason: string | null; readonly revokedAt: Date | null; readonly crlNumber: bigint | null }
  | { readonly status: 'no-crl' }
  /** Not listed, but the CRL is past nextUpdate, so "not listed" proves little. A listed serial is 'revoked' even then. */
  | { readonly status: 'stale'; readonly nextUpdate: Date; readonly crlNumber: bigint | null };

export interface CheckOptions {
  readonly now?: Date | undefined;
  /**
   * Whether the certificate being checked is a CA. When known, a CRL scoped by its Issuing
   * Distribution Point to user (or CA) certificates only reports 'no-crl' for the other kind.
   */
  readonly certIsCa?: boolean | undefined;
}

export interface IndexedCrlInfo {
  /**
   * Node's subject of the CRL's CA, lines joined with ', ' (DER order, no RFC 4514 escaping). The
   * one DN not made by src/x509/dn.ts: test/unit/crl-verify.test.ts pins this spelling.
   */
  readonly issuer: string;
  /** The same CA's subject in RFC 4514 (src/x509/dn.ts), as every other DN the gateway reports. */
  readonly issuerDn: string;
  /** See issuerKeyOf(). */
  readonly issuerKey: string;
  /** Decimal string: bigint does not survive JSON logging. */
  readonly crlNumber: string | null;
  readonly thisUpdate: string;
  readonly nextUpdate: string | null;
  readonly stale: boolean;
  readonly entries: number;
  readonly source: string;
}

/**
 * The key the index files a CA under: sha256 over the CA's subject Name DER followed by its
 * SubjectPublicKeyInfo DER (both self-delimiting, so the concatenation is unambiguous), lower hex.
 * Name plus key (rather than the certificate fingerprint) so a CA certificate that was renewed with
 * the same name and key still finds its CRL (its CRLs still apply to everything it issued), while
 * a different key under the same name, or the same key under another name, does not.
 */
export function issuerKeyOf(cert: X509Certificate): string {
  const f = certFields(cert.raw);
  return createHash('sha256').update(f.subjectDer).update(f.spkiDer).digest('hex');
}

interface Slot extends IndexedCrl {
  readonly key: string;
}

function newer(a: ParsedCrl, b: ParsedCrl): boolean {
  if (a.crlNumber !== null && b.crlNumber !== null && a.crlNumber !== b.crlNumber) return a.crlNumber > b.crlNumber;
  return a.thisUpdate.getTime() > b.thisUpdate.getTime();
}

export class RevocationIndex {
  /** Increments with every derived snapshot; lets holders of cached verdicts notice a change. */
  readonly generation: number;
  private readonly slots: ReadonlyMap<string, Slot>;
  /**
   * issuerKeyOf() per certificate object, shared by every snapshot derived from one empty() index:
   * callers usually pass the same trust-store CA objects, and the key costs a DER walk plus a hash.
   */
  private readonly keyCache: WeakMap<X509Certificate, string>;

  private constructor(slots: ReadonlyMap<string, Slot>, generation: number, keyCache: WeakMap<X509Certificate, string>) {
    this.slots = slots;
    this.generation = generation;
    this.keyCache = keyCache;
  }

  static empty(): RevocationIndex {
    return new RevocationIndex(new Map(), 0, new WeakMap());
  }

  private keyOf(issuer: X509Certificate | string): string {
    if (typeof issuer === 'string') return issuer;
    let key = this.keyCache.get(issuer);
    if (key === undefined) {
      key = issuerKeyOf(issuer);
      this.keyCache.set(issuer, key);
    }
    return key;
  }

  /** Number of CAs with a CRL. */
  get size(): number {
    return this.slots.size;
  }

  get(issuer: X509Certificate | string): IndexedCrl | undefined {
    return this.slots.get(this.keyOf(issuer));
  }

  /**
   * Looks `certSerialHex` (canonical hex, as PeerIdentity.serial) up in the CRL of the CA that issued
   * the certificate: pass that CA's certificate (its key is cached per certificate object) or its
   * issuerKeyOf() key.
   */
  check(certSerialHex: string, issuer: X509Certificate | string, opts: CheckOptions = {}): RevocationStatus {
    const slot = this.slots.get(this.keyOf(issuer));
    if (!slot) return { status: 'no-crl' };
    const crl = slot.crl;
    const hit = crl.revoked.lookup(certSerialHex);
    // Revocation is final: a listed serial stays revoked whatever the CRL's age or scope.
    if (hit.revoked) return { status: 'revoked', reason: hit.reason, revokedAt: hit.revokedAt, crlNumber: crl.crlNumber };
    const idp = crl.issuingDistributionPoint;
    if (idp && opts.certIsCa !== undefined) {
      if ((idp.onlyContainsUserCerts && opts.certIsCa) || (idp.onlyContainsCACerts && !opts.certIsCa)) return { status: 'no-crl' };
    }
    if (crl.nextUpdate && isStale(crl, opts.now ?? new Date())) {
      return { status: 'stale', nextUpdate: crl.nextUpdate, crlNumber: crl.crlNumber };
    }
    return { status: 'good', crlNumber: crl.crlNumber };
  }

  /**
   * A snapshot holding exactly `crls` (a full reload). When two CRLs belong to the same CA the newer
   * one (higher CRL number, else later thisUpdate) wins, so the result never depends on file order.
   */
  replace(crls: Iterable<IndexedCrl>): RevocationIndex {
    const next = new Map<string, Slot>();
    for (const c of crls) {
      const key = this.keyOf(c.issuer);
      const cur = next.get(key);
      if (!cur || newer(c.crl, cur.crl)) next.set(key, { ...c, key });
    }
    return new RevocationIndex(next, this.generation + 1, this.keyCache);
  }

  /** A snapshot with `entry` added, or replacing the CRL of the same CA. */
  withCrl(entry: IndexedCrl): RevocationIndex {
    const key = this.keyOf(entry.issuer);
    const next = new Map(this.slots);
    next.set(key, { ...entry, key });
    return new RevocationIndex(next, this.generation + 1, this.keyCache);
  }

  /** A snapshot without the CRL of `issuer` (certificate or issuerKeyOf() key). */
  withoutIssuer(issuer: X509Certificate | string): RevocationIndex {
    const key = this.keyOf(issuer);
    const next = new Map(this.slots);
    next.delete(key);
    return new RevocationIndex(next, this.generation + 1, this.keyCache);
  }

  /** One line per CA for logs, metrics and the admin API. */
  describe(now: Date = new Date()): IndexedCrlInfo[] {
    return [...this.slots.values()].map((s) => ({
      issuer: s.issuer.subject.split('\n').join(', '),
      issuerDn: certificateDn(s.issuer),
      issuerKey: s.key,
      crlNumber: s.crl.crlNumber === null ? null : s.crl.crlNumber.toString(),
      thisUpdate: s.crl.thisUpdate.toISOString(),
      nextUpdate: s.crl.nextUpdate ? s.crl.nextUpdate.toISOString() : null,
      stale: isStale(s.crl, now),
      entries: s.crl.revokedCount,
      source: s.source,
    }));
  }
}
