/**
 * Revocation: the enforcement decision for one presented chain against the current index, under
 * one trust domain's settings (scope, missing, stale/grace). Pure: the caller passes the clock.
 * The verdict says until when it holds without an index change (a CRL going stale changes it), so
 * callers can cache it per connection keyed by the index generation.
 */
import type { ChainLink } from '../x509/chain-links.js';
import { certificateDn } from '../x509/dn.js';
import type { RevocationIndex } from './revocation-index.js';

export interface RevocationSettings {
  readonly scope: 'chain' | 'leaf';
  readonly missing: 'deny' | 'allow';
  readonly stale: 'deny' | 'grace' | 'allow';
  readonly graceMs: number;
}

export type RevocationVerdict =
  | {
      readonly ok: true;
      /** Epoch ms after which the verdict must be recomputed even if the index did not change. */
      readonly validUntil: number;
      /** Set when the chain passed only because a policy failed open (stale grace/allow, missing allow). */
      readonly failOpen: string | null;
    }
  | {
      readonly ok: false;
      readonly revoked: boolean;
      readonly serial: string;
      readonly subject: string;
      readonly issuer: string;
      /** CRL reason code name for a revocation, or why revocation status is unknown. */
      readonly reason: string;
      readonly revokedAt: Date | null;
      readonly crlNumber: string | null;
      readonly validUntil: number;
      /** Which check refused: a CRL (the default) or OCSP (combined-revocation.ts). */
      readonly source?: 'crl' | 'ocsp';
      /**
       * Set while an OCSP lookup for the leaf runs: the verdict is a refusal until it settles, so a
       * caller that does not wait fails closed; the data plane waits on it and asks again.
       */
      readonly pending?: Promise<void>;
    };

function issuerName(link: ChainLink): string {
  return link.issuer ? certificateDn(link.issuer) : '(unknown issuer)';
}

export function checkChain(index: RevocationIndex, links: readonly ChainLink[], settings: RevocationSettings, now: number): RevocationVerdict {
  const count = settings.scope === 'leaf' ? Math.min(1, links.length) : links.length;
  let validUntil = Number.POSITIVE_INFINITY;
  let failOpen: string | null = null;
  const nowDate = new Date(now);
  for (let i = 0; i < count; i++) {
    const link = links[i]!;
    const deny = (revoked: boolean, reason: string, extra: { revokedAt?: Date | null; crlNumber?: bigint | null } = {}): RevocationVerdict => ({
      ok: false,
      revoked,
      serial: link.serial,
      subject: link.subject,
      issuer: issuerName(link),
      reason,
      revokedAt: extra.revokedAt ?? null,
      crlNumber: extra.crlNumber === undefined || extra.crlNumber === null ? null : extra.crlNumber.toString(),
      validUntil: Number.POSITIVE_INFINITY,
    });
    if (link.issuer === null) {
      if (settings.missing === 'deny') return deny(false, 'issuer of this certificate is unknown, so its CRL cannot be found');
      failOpen ??= `no issuer for ${link.subject} (missing: allow)`;
      continue;
    }
    const st = index.check(link.serial, link.issuer, { now: nowDate, certIsCa: link.isCa });
    switch (st.status) {
      case 'revoked':
        return deny(true, st.reason ?? 'unspecified', { revokedAt: st.revokedAt, crlNumber: st.crlNumber });
      case 'good': {
        const nextUpdate = index.get(link.issuer)?.crl.nextUpdate;
        if (nextUpdate) validUntil = Math.min(validUntil, nextUpdate.getTime() + (settings.stale === 'grace' ? settings.graceMs : 0) + 1);
        break;
      }
      case 'no-crl':
        if (settings.missing === 'deny') return deny(false, `no CRL for issuer ${issuerName(link)} (missing: deny)`);
        failOpen ??= `no CRL for issuer ${issuerName(link)} (missing: allow)`;
        break;
      case 'stale': {
        const expiredFor = now - st.nextUpdate.getTime();
        if (settings.stale === 'allow') {
          failOpen ??= `CRL of ${issuerName(link)} is past its nextUpdate ${st.nextUpdate.toISOString()} (stale: allow)`;
        } else if (settings.stale === 'grace' && expiredFor <= settings.graceMs) {
          failOpen ??= `CRL of ${issuerName(link)} is past its nextUpdate ${st.nextUpdate.toISOString()}, within grace`;
          validUntil = Math.min(validUntil, st.nextUpdate.getTime() + settings.graceMs + 1);
        } else {
          return deny(false, `CRL of ${issuerName(link)} expired at ${st.nextUpdate.toISOString()} (stale: ${settings.stale})`, { crlNumber: st.crlNumber });
        }
        break;
      }
    }
  }
  return { ok: true, validUntil, failOpen };
}
