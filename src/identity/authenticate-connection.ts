/**
 * Connection authentication: turns a TLS socket into either a verified PeerIdentity or a refusal
 * with a stable code. The handshake is accepted whatever the client presents (the server runs with
 * requestCert and without rejectUnauthorized) because Node would otherwise drop a bad client with a
 * bare TCP reset and lose the reason (docs/architecture.md, "TLS facts"); every request on a connection
 * that is not `authorized` is refused here with 401 and the connection is closed.
 *
 * The verdict is computed once per connection and cached on it; what can change while a
 * connection lives (the validity window passing) is re-checked per request by `checkStillValid`.
 * The length of the chain the client presented (tls.maxChainLength) is judged per connection and
 * never taken from the per-certificate cache: two connections with one leaf can present different
 * chains.
 */
import { X509Certificate } from 'node:crypto';
import type { TLSSocket, DetailedPeerCertificate, PeerCertificate } from 'node:tls';
import type { ErrorCode } from '../errors/registry.js';
import { certFields } from '../x509/cert-fields.js';
import { ChainLinker, type ChainLink } from '../x509/chain-links.js';
import { certificateDn } from '../x509/dn.js';
import { identityFromDer } from './identity-from-certificate.js';
import type { PeerIdentity } from './peer-identity.js';
import { leafOnceChainTaken, presentedChainLength } from './presented-chain.js';

export type ConnectionVerdict =
  | {
      readonly ok: true;
      readonly identity: PeerIdentity;
      /**
       * The client certificate's DER, as presented (for RFC 9440's Client-Cert). Created together
       * with `identity` and `links`: one identity object always comes with this DER and these links.
       */
      readonly leafDer: Buffer;
      readonly chainDepth: number;
      readonly resumed: boolean;
      /** The presented chain up to (not including) the trust anchor, each with its issuer. */
      readonly links: readonly ChainLink[];
    }
  | {
      readonly ok: false;
      readonly code: ErrorCode;
      /** OpenSSL's reason or the gateway's own, for the log. */
      readonly reason: string;
      /** Subject (RFC 4514) of what the peer presented, for the log (null when nothing was presented). */
      readonly peerSubject: string | null;
      readonly peerSerial: string | null;
    };

const OPENSSL_TO_CODE: Readonly<Record<string, ErrorCode>> = {
  CERT_HAS_EXPIRED: 'GW_ERR_CLIENT_CERT_EXPIRED',
  CERT_NOT_YET_VALID: 'GW_ERR_CLIENT_CERT_NOT_YET_VALID',
  CERT_REVOKED: 'GW_ERR_CLIENT_CERT_REVOKED',
  UNABLE_TO_GET_ISSUER_CERT: 'GW_ERR_CLIENT_CERT_UNTRUSTED',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'GW_ERR_CLIENT_CERT_UNTRUSTED',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'GW_ERR_CLIENT_CERT_UNTRUSTED',
  SELF_SIGNED_CERT_IN_CHAIN: 'GW_ERR_CLIENT_CERT_UNTRUSTED',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'GW_ERR_CLIENT_CERT_UNTRUSTED',
  CERT_UNTRUSTED: 'GW_ERR_CLIENT_CERT_UNTRUSTED',
  CERT_REJECTED: 'GW_ERR_CLIENT_CERT_UNTRUSTED',
  CERT_SIGNATURE_FAILURE: 'GW_ERR_CLIENT_CERT_UNTRUSTED',
  INVALID_PURPOSE: 'GW_ERR_CLIENT_CERT_USAGE',
  INVALID_CA: 'GW_ERR_CLIENT_CERT_USAGE',
  UNABLE_TO_GET_CRL: 'GW_ERR_CLIENT_CERT_REVOCATION_UNKNOWN',
  CRL_HAS_EXPIRED: 'GW_ERR_CLIENT_CERT_REVOCATION_UNKNOWN',
  CRL_NOT_YET_VALID: 'GW_ERR_CLIENT_CERT_REVOCATION_UNKNOWN',
  CRL_SIGNATURE_FAILURE: 'GW_ERR_CLIENT_CERT_REVOCATION_UNKNOWN',
  UNABLE_TO_DECRYPT_CRL_SIGNATURE: 'GW_ERR_CLIENT_CERT_REVOCATION_UNKNOWN',
};

const EKU_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const EKU_ANY = '2.5.29.37.0';

/** What the authenticator needs of a revocation verdict: pass or not, and until when it holds. */
export interface RevocationAnswer {
  readonly ok: boolean;
  /** Epoch ms after which the verdict must be recomputed even if the generation did not change. */
  readonly validUntil: number;
}

/**
 * The revocation status of chains, as the authenticator consults it. Declared here and injected
 * (src/revocation's RevocationStore is one) so that identity imports nothing from revocation,
 * which comes after it in the layer order (test/unit/imports-run-one-way.test.ts).
 */
export interface ChainRevocationSource<S, V extends RevocationAnswer> {
  /** Changes whenever a verdict may change (a CRL loaded, replaced or dropped). */
  readonly generation: number;
  checkChain(links: readonly ChainLink[], settings: S, now: number): V;
}

/** The verdict when no revocation source is configured. */
export type NoRevocation = { readonly ok: true; readonly validUntil: number; readonly failOpen: null };

export interface AuthenticatorOptions<S = unknown, V extends RevocationAnswer = RevocationAnswer> {
  /** Maximum number of CA certificates above the client certificate. */
  readonly verifyDepth: number;
  /**
   * Most certificates a client may present in its chain, leaf included (tls.maxChainLength). Only
   * enforced where the runtime lets the presented chain be counted: see presented-chain.ts (Node
   * 24.21 needs recordPresentedChainLengths()). Undefined leaves it unlimited; only test
   * stand-ins omit it.
   */
  readonly maxChainLength?: number;
  readonly now: () => number;
  /** The clientCA bundle; chain certificates are matched to these objects by fingerprint. */
  readonly trust: readonly X509Certificate[];
  /** In-process revocation for client chains, with its settings; null when no CRL source is configured. */
  readonly revocation: { readonly store: ChainRevocationSource<S, V>; readonly settings: S } | null;
}

/** What a connection's verdict holds that depends on the certificate alone. */
type CertificateVerdict = Exclude<ConnectionVerdict, { ok: true }> | Omit<Extract<ConnectionVerdict, { ok: true }>, 'resumed'>;

/** What a connection's verdict needs of the client's leaf, from whichever call gave it. */
interface PresentedLeaf {
  readonly raw: Buffer;
  readonly fingerprint256: string;
  /** Upper-case hex, as both of Node's certificate APIs give it; null when absent. */
  readonly serialNumber: string | null;
  /** Already parsed, when it came from getPeerX509Certificate(). */
  readonly x509: X509Certificate | null;
}

/** The client's leaf, or null when it presented none (see #compute for the order of the calls). */
function presentedLeaf(socket: TLSSocket): PresentedLeaf | null {
  const x509 = leafOnceChainTaken(socket);
  if (x509 !== undefined) {
    // X509Certificate's `raw` copies the DER on every read (about 20 µs per handshake in the
    // profile), and `serialNumber` formats it anew (about 6 µs): a connection whose certificate
    // verdict is cached needs neither, only the fingerprint that is the cache's key.
    return {
      get raw() {
        return x509.raw;
      },
      fingerprint256: x509.fingerprint256,
      get serialNumber() {
        return x509.serialNumber;
      },
      x509,
    };
  }
  const summary = socket.getPeerCertificate(false) as PeerCertificate | null;
  if (!summary || !summary.raw) return null;
  return { raw: summary.raw, fingerprint256: typeof summary.fingerprint256 === 'string' ? summary.fingerprint256 : '', serialNumber: summary.serialNumber ?? null, x509: null };
}

const MAX_CACHED_CERTIFICATES = 4096;

interface CachedRevocation<V> {
  readonly generation: number;
  readonly validUntil: number;
  readonly verdict: V;
}

const OK_NO_REVOCATION: NoRevocation = Object.freeze({ ok: true, validUntil: Number.POSITIVE_INFINITY, failOpen: null });

/**
 * Per-server authenticator; the per-connection cache lives in a WeakMap owned by this instance.
 * S and V are the revocation source's settings and verdict types, inferred from the options.
 */
export class ConnectionAuthenticator<S = unknown, V extends RevocationAnswer = RevocationAnswer> {
  readonly #verdicts = new WeakMap<TLSSocket, ConnectionVerdict>();
  readonly #revocation = new WeakMap<TLSSocket, CachedRevocation<V>>();
  /**
   * Verdicts on certificates whose chain the trust bundle completes, by SHA-256 fingerprint: all
   * they depend on is the certificate and the bundle, both fixed for this authenticator. Services
   * reconnect with the same few certificates, so a new connection costs a lookup instead of an
   * X509 parse (slow on Node 20's OpenSSL 3.0), an identity parse and a chain walk, and its
   * connections share one identity object. Bounded; the oldest entries go first.
   */
  readonly #byCertificate = new Map<string, CertificateVerdict>();
  readonly #opts: AuthenticatorOptions<S, V>;
  readonly #linker: ChainLinker;

  constructor(opts: AuthenticatorOptions<S, V>) {
    this.#opts = opts;
    this.#linker = new ChainLinker(opts.trust);
    this.#trustFingerprints = new Set(opts.trust.map((c) => c.fingerprint256));
  }
  readonly #trustFingerprints: ReadonlySet<string>;

  /** The cached verdict, if this connection was judged already (no computation). */
  peek(socket: TLSSocket): ConnectionVerdict | undefined {
    return this.#verdicts.get(socket);
  }

  /**
   * Revocation status of an authenticated connection against the index in force now. Cached per
   * connection and recomputed when the index generation changes or a CRL it relied on goes stale,
   * so resumed TLS sessions and long-lived keep-alive connections cannot outlive a revocation.
   */
  revocation(socket: TLSSocket, verdict: Extract<ConnectionVerdict, { ok: true }>): V | NoRevocation {
    const rev = this.#opts.revocation;
    if (rev === null) return OK_NO_REVOCATION;
    const generation = rev.store.generation;
    const now = this.#opts.now();
    const cached = this.#revocation.get(socket);
    if (cached !== undefined && cached.generation === generation && now < cached.validUntil) return cached.verdict;
    const result = rev.store.checkChain(verdict.links, rev.settings, now);
    this.#revocation.set(socket, { generation, validUntil: result.validUntil, verdict: result });
    return result;
  }

  /** The cached verdict for this connection, computing it on first use. */
  verdict(socket: TLSSocket): ConnectionVerdict {
    let v = this.#verdicts.get(socket);
    if (v === undefined) {
      v = this.#compute(socket);
      this.#verdicts.set(socket, v);
    }
    return v;
  }

  /** Per-request re-check of what time can change on a live connection. Null when still valid. */
  checkStillValid(identity: PeerIdentity): ErrorCode | null {
    const now = this.#opts.now();
    if (now > identity.notAfter.getTime()) return 'GW_ERR_CLIENT_CERT_EXPIRED';
    if (now < identity.notBefore.getTime()) return 'GW_ERR_CLIENT_CERT_NOT_YET_VALID';
    return null;
  }

  #compute(socket: TLSSocket): ConnectionVerdict {
    // As few certificate calls per connection as possible, in an order that matters. The leaf comes
    // from getPeerX509Certificate() where Node has already made that call itself (Node 24.21:
    // cheap, and the chain it empties is already gone; presented-chain.ts), and otherwise (Node 20)
    // from getPeerCertificate(false): there the first getPeerX509Certificate() call copies every
    // certificate the client sent and empties the chain getPeerCertificate(true) reports (the same
    // bug docs/architecture.md, "TLS facts", records for client sockets). Then the detailed chain
    // only when the trust bundle cannot complete it, and last the presented-chain count, which on
    // Node 20 is that first call and is paid once, at the end.
    const leaf = presentedLeaf(socket);
    if (leaf === null) {
      return { ok: false, code: 'GW_ERR_CLIENT_CERT_MISSING', reason: 'no client certificate presented', peerSubject: null, peerSerial: null };
    }
    // The subject (RFC 4514, src/x509/dn.ts) and the serial are formatted only for a refusal or a
    // cache miss: accepted connections never log them, and a cache hit should cost no certificate walk.
    if (!socket.authorized) {
      const reason = String(socket.authorizationError ?? 'UNKNOWN');
      return { ok: false, code: OPENSSL_TO_CODE[reason] ?? 'GW_ERR_CLIENT_CERT_INVALID', reason, peerSubject: certificateDn(leaf), peerSerial: leaf.serialNumber };
    }
    // The chain from the trust bundle when it holds every issuer (the common case, and cheap);
    // otherwise the chain as the client presented it, which includes intermediates it sent.
    // Only bundle-completed certificates are cached, so a hit needs no bundle walk.
    let verdict = this.#byCertificate.get(leaf.fingerprint256);
    if (verdict === undefined) {
      const fromBundle = this.#linker.bundleCompletes(leaf.raw);
      verdict = this.#judgeCertificate(leaf, fromBundle ? null : (socket.getPeerCertificate(true) as DetailedPeerCertificate), leaf.serialNumber);
      const key = leaf.fingerprint256;
      if (fromBundle && key.length > 0) {
        if (this.#byCertificate.size >= MAX_CACHED_CERTIFICATES) this.#byCertificate.delete(this.#byCertificate.keys().next().value!);
        this.#byCertificate.set(key, verdict);
      }
    }
    if (!verdict.ok) return verdict;
    const resumed = socket.isSessionReused();
    const max = this.#opts.maxChainLength;
    // Counted per connection and after the certificate is judged: the count is the only call that
    // scales with what the client sent (on Node 20 it copies every certificate), so it is paid only
    // for chains OpenSSL authorized, and it comes after getPeerCertificate(true), whose chain it
    // empties on Node 20. A resumed session presented no certificates.
    if (max !== undefined && !resumed) {
      const presented = presentedChainLength(socket) ?? 0;
      if (presented > max) {
        return {
          ok: false,
          code: 'GW_ERR_CLIENT_CERT_INVALID',
          reason: `presented chain has ${presented} certificates, more than tls.maxChainLength (${max})`,
          peerSubject: certificateDn(leaf),
          peerSerial: leaf.serialNumber,
        };
      }
    }
    return { ...verdict, resumed };
  }

  /**
   * Whether the chain Node reports for a connection climbs to a self-issued root that is not in
   * tls.clientCA (so the chain is complete, and untrusted here). A chain Node cut short (Node 24
   * drops client-sent intermediates) ends below a root and does not count.
   */
  #endsAtRootOutsideTrust(leaf: DetailedPeerCertificate): boolean {
    let top = leaf;
    for (let i = 0; i < 32 && top.issuerCertificate && top.issuerCertificate.fingerprint256 !== top.fingerprint256; i++) top = top.issuerCertificate;
    try {
      const f = certFields(top.raw);
      return f.subjectDer.equals(f.issuerDer) && !this.#trustFingerprints.has(top.fingerprint256);
    } catch {
      return false;
    }
  }

  /** Everything about a verified certificate that does not depend on the connection. */
  #judgeCertificate(presented: PresentedLeaf, detailed: DetailedPeerCertificate | null, peerSerial: string | null): CertificateVerdict {
    let leaf: X509Certificate;
    try {
      leaf = presented.x509 ?? new X509Certificate(presented.raw);
    } catch (err) {
      return { ok: false, code: 'GW_ERR_CLIENT_CERT_INVALID', reason: `certificate could not be parsed: ${(err as Error).message}`, peerSubject: certificateDn(presented), peerSerial };
    }
    // OpenSSL already enforces purpose (EKU) for ssl clients; these checks are defence in depth and
    // they also cover a CA certificate without KeyUsage, which OpenSSL's purpose check lets through.
    if (leaf.ca) {
      return { ok: false, code: 'GW_ERR_CLIENT_CERT_USAGE', reason: 'CA certificate presented as a client certificate', peerSubject: certificateDn(presented), peerSerial };
    }
    const eku = leaf.keyUsage as string[] | undefined;
    if (eku && eku.length > 0 && !eku.includes(EKU_CLIENT_AUTH) && !eku.includes(EKU_ANY)) {
      return { ok: false, code: 'GW_ERR_CLIENT_CERT_USAGE', reason: 'certificate lacks the clientAuth extended key usage', peerSubject: certificateDn(presented), peerSerial };
    }
    const chain = detailed === null ? this.#linker.fromBundle(leaf) : this.#linker.fromPeer(detailed);
    if (chain === null) {
      // From the bundle: the names said it completes the chain but no bundle CA matched by key
      // identifier. From the peer: the chain Node reports stops short of a tls.clientCA anchor,
      // which OpenSSL's verdict rules out, so Node lost part of it (Node 24.21 drops client-sent
      // intermediates, nodejs/node#65579). Either way revocation and depth cannot be checked on
      // every CA: refuse rather than skip one.
      // A chain that ends at a root of its own which tls.clientCA does not hold is simply not
      // trusted: OpenSSL admitted it under a bundle a reload has since replaced.
      if (detailed !== null && this.#endsAtRootOutsideTrust(detailed)) {
        return { ok: false, code: 'GW_ERR_CLIENT_CERT_UNTRUSTED', reason: 'the chain ends at a root CA that is not in tls.clientCA', peerSubject: certificateDn(presented), peerSerial };
      }
      return {
        ok: false,
        code: 'GW_ERR_CLIENT_CERT_INVALID',
        reason:
          detailed === null
            ? 'the chain could not be matched to the CA certificates in tls.clientCA'
            : 'the chain above the client certificate is not available from the TLS stack (the client sent an intermediate CA that is not in tls.clientCA; on Node 24 add the intermediate CAs to tls.clientCA)',
        peerSubject: certificateDn(presented),
        peerSerial,
      };
    }
    const depth = chain.depth;
    if (depth > this.#opts.verifyDepth) {
      return {
        ok: false,
        code: 'GW_ERR_CLIENT_CERT_INVALID',
        reason: `chain has ${depth} CA certificates above the client certificate (tls.verifyDepth is ${this.#opts.verifyDepth})`,
        peerSubject: certificateDn(presented),
        peerSerial,
      };
    }
    let identity: PeerIdentity;
    try {
      identity = identityFromDer(leaf.raw);
    } catch (err) {
      return { ok: false, code: 'GW_ERR_CLIENT_CERT_INVALID', reason: `certificate could not be parsed: ${(err as Error).message}`, peerSubject: certificateDn(presented), peerSerial };
    }
    return { ok: true, identity, leafDer: leaf.raw, chainDepth: depth, links: chain.links };
  }
}
