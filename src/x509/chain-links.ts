/**
 * X.509: turns a peer's certificate chain (completed from a trust bundle, or as Node reports it from
 * getPeerCertificate(true)) into links: each certificate below the trust anchor with the CA
 * certificate that issued it, the unit revocation is checked on. Issuers are matched to the trust
 * bundle's own objects so the revocation index's per-certificate key cache hits; other
 * intermediates are parsed once and kept (bounded).
 */
import { X509Certificate } from 'node:crypto';
import type { DetailedPeerCertificate } from 'node:tls';
import { normalizeSerial } from './canonical-hex.js';
import { certFields } from './cert-fields.js';
import { certificateDn } from './dn.js';

/** One certificate of the presented chain, with the CA certificate that issued it. */
export interface ChainLink {
  /** Canonical hex serial. */
  readonly serial: string;
  /** RFC 4514 subject, for logs and verdicts. */
  readonly subject: string;
  readonly isCa: boolean;
  /** The issuing CA's certificate; null when the chain could not be completed. */
  readonly issuer: X509Certificate | null;
  /** The certificate's DER (OCSP reads its AIA; a reference, not a copy). */
  readonly raw: Buffer;
}

const MAX_CHAIN = 16;
const MAX_SEEN = 1024;

export class ChainLinker {
  readonly #trust: ReadonlyMap<string, X509Certificate>;
  readonly #bySubject = new Map<string, X509Certificate[]>();
  /** Bundle CAs by subject Name DER (hex): the issuer Name DER of each, or null when self-issued. */
  readonly #issuerOfSubject = new Map<string, string | null>();
  readonly #seen = new Map<string, X509Certificate>();

  constructor(trust: readonly X509Certificate[]) {
    this.#trust = new Map(trust.map((c) => [c.fingerprint256, c]));
    for (const c of trust) {
      const list = this.#bySubject.get(c.subject);
      if (list) list.push(c);
      else this.#bySubject.set(c.subject, [c]);
      const f = certFields(c.raw);
      const subject = f.subjectDer.toString('hex');
      const issuer = f.issuerDer.toString('hex');
      this.#issuerOfSubject.set(subject, issuer === subject ? null : issuer);
    }
  }

  /**
   * Whether the bundle alone holds every issuer above a certificate (by Name DER), so fromBundle()
   * can complete its chain. Cheap (a DER walk of the leaf, no parsing into objects); lets the
   * caller decide before it touches the socket's certificate APIs, whose call order matters
   * (see src/identity/authenticate-connection.ts).
   */
  bundleCompletes(leafDer: Buffer): boolean {
    let issuer: string | null | undefined;
    try {
      issuer = certFields(leafDer).issuerDer.toString('hex');
    } catch {
      return false;
    }
    for (let i = 0; i < MAX_CHAIN; i++) {
      if (!this.#issuerOfSubject.has(issuer)) return false;
      const next = this.#issuerOfSubject.get(issuer);
      if (next === null || next === undefined) return true;
      issuer = next;
    }
    return false;
  }

  /**
   * The chain of a leaf that OpenSSL has already verified, completed from the trust bundle alone:
   * each certificate with its issuer, up to the self-signed anchor, and the number of CA
   * certificates above the leaf. This avoids getPeerCertificate(true), which costs about 0.5 ms per
   * call (it converts every certificate of the chain into a JS object with three fingerprints).
   * Returns null when an issuer is not in the bundle (the client sent that intermediate itself):
   * the caller then falls back to the peer's own chain.
   */
  fromBundle(leaf: X509Certificate): { readonly links: ChainLink[]; readonly depth: number } | null {
    const links: ChainLink[] = [];
    let cur = leaf;
    for (let i = 0; i < MAX_CHAIN; i++) {
      if (i > 0 && cur.checkIssued(cur)) return { links, depth: i };
      const issuer = this.#issuerInBundle(cur);
      if (issuer === null) return null;
      links.push({ serial: normalizeSerial(cur.serialNumber), subject: certificateDn(cur), isCa: i > 0, issuer, raw: cur.raw });
      cur = issuer;
    }
    return null;
  }

  #issuerInBundle(cert: X509Certificate): X509Certificate | null {
    const candidates = (this.#bySubject.get(cert.issuer) ?? []).filter((ca) => cert.checkIssued(ca));
    if (candidates.length <= 1) return candidates[0] ?? null;
    // Several CAs share the name and key identifier match (a re-keyed CA without AKI/SKI): the
    // signature decides.
    return candidates.find((ca) => cert.verify(ca.publicKey)) ?? null;
  }

  /**
   * The chain as the peer presented it (Node completes it from the trust store), or null when it
   * does not end at a self-signed certificate of the trust bundle. OpenSSL only authorizes chains
   * that end at a trust anchor, so a shorter chain means the TLS stack lost part of it: Node 24.21
   * drops client-sent intermediates from getPeerCertificate(true) on server sockets
   * (nodejs/node#65579). Revocation and depth checks on such a chain would silently skip the
   * missing CAs, so callers refuse instead.
   */
  fromPeer(leaf: DetailedPeerCertificate): { readonly links: ChainLink[]; readonly depth: number } | null {
    const links: ChainLink[] = [];
    let cur = leaf;
    for (let i = 0; i < MAX_CHAIN; i++) {
      const next = cur.issuerCertificate as DetailedPeerCertificate | undefined | null;
      if (next && next.fingerprint256 === cur.fingerprint256) {
        // The self-signed end of the chain: only an anchor of this bundle completes it.
        return this.#trust.has(cur.fingerprint256) ? { links, depth: i } : null;
      }
      if (!next || !next.raw) return null;
      links.push({ serial: normalizeSerial(cur.serialNumber), subject: certificateDn(cur), isCa: i > 0, issuer: this.#x509(next), raw: cur.raw });
      cur = next;
    }
    return null;
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
