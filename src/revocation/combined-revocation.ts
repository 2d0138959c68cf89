/**
 * Revocation: CRLs and OCSP together, for one trust domain, as one ChainRevocationSource. CRLs
 * apply whenever they are configured and OCSP adds to them: either one saying "revoked" is revoked.
 * OCSP judges the leaf only; the CA certificates above it stay with the CRLs (tls.revocation.scope).
 *
 * For the leaf, by `tls.ocsp.mode`:
 * - a verified answer decides: `good` establishes the status (a missing or stale CRL for the leaf's
 *   issuer then does not refuse it; a CRL that lists it still does), `revoked` and `unknown` refuse;
 * - no responder known: `require` refuses, `prefer` leaves the leaf to its CRL (or, without CRLs,
 *   to no check at all, as before OCSP);
 * - the responder failed (unreachable, timeout, error status, an answer that does not verify):
 *   `onUnavailable: deny` refuses, `allow` admits on the CRL verdict, logged as fail-open;
 * - a lookup still running: refused with `pending`, which the data plane awaits and then asks again
 *   (a handshake waits on the network only for a certificate with no cached answer).
 */
import type { ChainLink } from '../x509/chain-links.js';
import { certificateDn } from '../x509/dn.js';
import type { OcspState, OcspStore } from './ocsp-store.js';
import { checkChain, type RevocationSettings, type RevocationVerdict } from './revocation-policy.js';
import type { RevocationStore } from './revocation-store.js';

export interface OcspPolicy {
  readonly mode: 'prefer' | 'require';
  readonly onUnavailable: 'deny' | 'allow';
}

/** One domain's revocation settings: CRL rules (when CRLs are configured) and OCSP's (when on). */
export interface CombinedSettings {
  readonly crl: RevocationSettings;
  readonly ocsp: OcspPolicy | null;
}

type Deny = Extract<RevocationVerdict, { ok: false }>;

const OK_FOREVER: RevocationVerdict = Object.freeze({ ok: true, validUntil: Number.POSITIVE_INFINITY, failOpen: null });

function denyLeaf(leaf: ChainLink, revoked: boolean, reason: string, extra: Partial<Pick<Deny, 'revokedAt' | 'validUntil' | 'pending'>> = {}): Deny {
  return {
    ok: false,
    revoked,
    serial: leaf.serial,
    subject: leaf.subject,
    issuer: leaf.issuer ? certificateDn(leaf.issuer) : '(unknown issuer)',
    reason,
    revokedAt: extra.revokedAt ?? null,
    crlNumber: null,
    validUntil: extra.validUntil ?? Number.POSITIVE_INFINITY,
    source: 'ocsp',
    ...(extra.pending ? { pending: extra.pending } : {}),
  };
}

/**
 * The leaf's verdict from its OCSP state and its CRL verdict (null when no CRLs are configured).
 * Pure: exported for the unit tests of every combination.
 */
export function combineLeaf(leaf: ChainLink, state: OcspState, policy: OcspPolicy, crl: RevocationVerdict | null): RevocationVerdict {
  // A CRL that lists the certificate is final, whatever OCSP says.
  if (crl !== null && !crl.ok && crl.revoked) return crl;
  switch (state.kind) {
    case 'answer': {
      const a = state.answer;
      if (a.status === 'revoked') {
        return denyLeaf(leaf, true, `OCSP: revoked${a.reason ? ` (${a.reason})` : ''} by ${state.url}`, { revokedAt: a.revokedAt });
      }
      if (a.status === 'unknown') return denyLeaf(leaf, false, `OCSP: the responder ${state.url} does not know this certificate (unknown)`, { validUntil: state.expiresAt });
      const crlUntil = crl !== null && crl.ok ? crl.validUntil : Number.POSITIVE_INFINITY;
      return { ok: true, validUntil: Math.min(crlUntil, state.expiresAt), failOpen: null };
    }
    case 'no-responder':
      if (policy.mode === 'require') return denyLeaf(leaf, false, 'OCSP: no responder is known for this certificate (no tls.ocsp.responders entry for its issuer, no AIA OCSP URL) and tls.ocsp.mode is require');
      return crl ?? OK_FOREVER;
    case 'pending':
      return denyLeaf(leaf, false, 'OCSP: lookup in progress', { pending: state.done });
    case 'unavailable': {
      if (policy.onUnavailable === 'deny') return denyLeaf(leaf, false, `OCSP: no usable answer from ${state.url}: ${state.reason} (onUnavailable: deny)`, { validUntil: state.until });
      const failOpen = `OCSP: no usable answer from ${state.url}: ${state.reason} (onUnavailable: allow)`;
      if (crl === null) return { ok: true, validUntil: state.until, failOpen };
      if (!crl.ok) return crl;
      return { ok: true, validUntil: Math.min(crl.validUntil, state.until), failOpen: crl.failOpen ?? failOpen };
    }
  }
}

/** The intermediates' CRL verdict and the leaf's together: the first refusal, else the tighter ok. */
function both(leaf: RevocationVerdict, rest: RevocationVerdict): RevocationVerdict {
  if (!leaf.ok) return leaf;
  if (!rest.ok) return rest;
  return { ok: true, validUntil: Math.min(leaf.validUntil, rest.validUntil), failOpen: leaf.failOpen ?? rest.failOpen };
}

/**
 * The ChainRevocationSource the connection authenticator consults for client chains (and the
 * upstream verifier for upstream chains). `generation` moves when either the CRL index or an OCSP
 * answer changes.
 */
export class CombinedRevocation {
  readonly crl: RevocationStore | null;
  readonly ocsp: OcspStore | null;

  constructor(crl: RevocationStore | null, ocsp: OcspStore | null) {
    this.crl = crl;
    this.ocsp = ocsp;
  }

  get generation(): number {
    return (this.crl?.generation ?? 0) + (this.ocsp?.generation ?? 0);
  }

  checkChain(links: readonly ChainLink[], settings: CombinedSettings, now: number): RevocationVerdict {
    const crl = this.crl;
    const ocsp = this.ocsp;
    if (ocsp === null || settings.ocsp === null || links.length === 0) return crl === null ? OK_FOREVER : checkChain(crl.index, links, settings.crl, now);
    const leaf = links[0]!;
    const leafCrl = crl === null ? null : checkChain(crl.index, [leaf], settings.crl, now);
    const rest = crl === null || settings.crl.scope === 'leaf' ? OK_FOREVER : checkChain(crl.index, links.slice(1), settings.crl, now);
    // A revocation on either side is final before any lookup is made.
    if (leafCrl !== null && !leafCrl.ok && leafCrl.revoked) return leafCrl;
    if (!rest.ok && rest.revoked) return rest;
    const state: OcspState = leaf.issuer === null ? { kind: 'no-responder' } : ocsp.state(leaf.raw, leaf.issuer, leaf.serial, leaf.subject);
    return both(combineLeaf(leaf, state, settings.ocsp, leafCrl), rest);
  }
}
