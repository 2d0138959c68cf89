/**
 * Revocation: turns a peer's certificate chain as Node reports it (getPeerCertificate(true)) into
 * the links revocation is checked on: each certificate below the trust anchor with the CA
 * certificate that issued it. Issuers are matched to the trust bundle's own objects so the index's
 * per-certificate key cache hits; other intermediates are parsed once and kept (bounded).
 */
import { X509Certificate } from 'node:crypto';
import type { DetailedPeerCertificate } from 'node:tls';
import { normalizeSerial } from '../identity/peer-identity.js';
import type { ChainLink } from './revocation-policy.js';

const MAX_CHAIN = 16;
const MAX_SEEN = 1024;

export function peerSubjectLine(peer: { subject?: unknown }): string {
  const s = peer.subject as Record<string, string | string[]> | undefined;
  if (!s) return '';
  return Object.entries(s)
    .map(([k, v]) => (Array.isArray(v) ? v.map((x) => `${k}=${x}`).join(',') : `${k}=${v}`))
    .join(',');
}

export class ChainLinker {
  readonly #trust: ReadonlyMap<string, X509Certificate>;
  readonly #seen = new Map<string, X509Certificate>();

  constructor(trust: readonly X509Certificate[]) {
    this.#trust = new Map(trust.map((c) => [c.fingerprint256, c]));
  }

  links(leaf: DetailedPeerCertificate): ChainLink[] {
    const out: ChainLink[] = [];
    let cur = leaf;
    for (let i = 0; i < MAX_CHAIN; i++) {
      const next = cur.issuerCertificate as DetailedPeerCertificate | undefined | null;
      if (next && next.fingerprint256 === cur.fingerprint256) break; // the self-signed anchor
      out.push({ serial: normalizeSerial(cur.serialNumber), subject: peerSubjectLine(cur), isCa: i > 0, issuer: next ? this.#x509(next) : null });
      if (!next) break;
      cur = next;
    }
    return out;
  }

  #x509(peer: DetailedPeerCertificate): X509Certificate | null {
    const known = this.#trust.get(peer.fingerprint256) ?? this.#seen.get(peer.fingerprint256);
    if (known) return known;
    try {
      const cert = new X509Certificate(peer.raw);
      if (this.#seen.size >= MAX_SEEN) this.#seen.clear();
      this.#seen.set(peer.fingerprint256, cert);
      return cert;
    } catch {
      return null;
    }
  }
}
