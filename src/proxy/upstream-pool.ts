/**
 * Upstream pools: one undici Pool per configured upstream, speaking mTLS with the gateway's own
 * client certificate. The TLS context is built once per pool (not per connection: with a large CRL
 * that costs tens of milliseconds each time). Verification is always on: the chain must verify
 * against the upstream's `ca`, the certificate must carry `servername`, and `expect` pins it
 * further. TLS session resumption is disabled on the upstream leg because Node skips
 * checkServerIdentity on a resumed session (docs/architecture.md, "TLS facts"): every new upstream connection
 * is fully verified, and kept-alive connections make that cost rare.
 */
import { X509Certificate } from 'node:crypto';
import { createSecureContext, checkServerIdentity, type DetailedPeerCertificate, type PeerCertificate, type SecureContext } from 'node:tls';
import { Pool } from 'undici';
import type { UpstreamConfig } from '../config/schema.js';
import { identityFromDer } from '../identity/identity-from-certificate.js';
import { normalizeFingerprint, type PeerIdentity } from '../identity/peer-identity.js';
import type { UpstreamTlsMaterial } from '../pki/gateway-material.js';
import { ChainLinker } from '../x509/chain-links.js';
import { checkChain, type RevocationSettings } from '../revocation/revocation-policy.js';
import type { RevocationStore } from '../revocation/revocation-store.js';
import { GatewayError } from '../errors/registry.js';
import { UpstreamGate } from './upstream-gate.js';

export interface Upstream {
  readonly name: string;
  readonly origin: string;
  /** The pool in force; replaced (the old one drained) when the upstream's CRLs change. */
  readonly pool: Pool;
  /** How many requests ride this upstream at once, and how long the rest may wait. */
  readonly gate: UpstreamGate;
  /**
   * Starts a new pool and drains the old one, so every later request runs on a connection whose
   * certificate was verified against the current CRLs. In-flight requests finish on the old pool.
   */
  renew(): void;
  /**
   * Marks one request as using this upstream until the returned function is called. A retired
   * upstream closes its pool only once nothing holds it, so a request admitted under the previous
   * snapshot still finds a working pool even if it waited for its body or a slot across a reload.
   */
  hold(): () => void;
  /** No new snapshot uses this upstream (a reload removed or replaced it): close when unheld. */
  retire(): Promise<void>;
  close(): Promise<void>;
}

export interface UpstreamRevocation {
  readonly store: RevocationStore;
  readonly settings: RevocationSettings;
  readonly now: () => number;
}

type Expect = NonNullable<UpstreamConfig['tls']['expect']>;

/** Returns the reason the identity fails the pin, or null when it matches every pinned field. */
export function pinMismatch(identity: PeerIdentity, expect: Expect): string | null {
  if (expect.spiffe !== undefined && identity.spiffe?.uri !== expect.spiffe) {
    return `SPIFFE ID ${identity.spiffe?.uri ?? '(none)'} is not ${expect.spiffe}`;
  }
  if (expect.uri !== undefined && !identity.san.uri.includes(expect.uri)) return `no URI SAN ${expect.uri}`;
  if (expect.dns !== undefined && !identity.san.dns.some((d) => d.toLowerCase() === expect.dns!.toLowerCase())) {
    return `no DNS SAN ${expect.dns}`;
  }
  if (expect.fingerprint !== undefined && identity.fingerprint256 !== normalizeFingerprint(expect.fingerprint)) {
    return `fingerprint ${identity.fingerprint256} is not the pinned one`;
  }
  return null;
}

export function buildUpstreamSecureContext(cfg: UpstreamConfig, material: UpstreamTlsMaterial): SecureContext {
  return createSecureContext({
    cert: material.client.pem,
    key: material.client.keyPem,
    ca: [...material.ca.pems],
    minVersion: cfg.tls.minVersion,
  });
}

export function createUpstream(name: string, cfg: UpstreamConfig, material: UpstreamTlsMaterial, revocation: UpstreamRevocation | null): Upstream {
  const origin = new URL(cfg.url).origin;
  const servername = cfg.tls.servername;
  const expect = cfg.tls.expect;
  const secureContext = buildUpstreamSecureContext(cfg, material);
  const linker = new ChainLinker(material.ca.certs);
  // Node destroys the upstream socket with whatever this returns; the gateway's own verdicts are
  // GatewayErrors carrying their registry code from the start, so translateUpstreamError keeps
  // their code without a look-alike alias table.
  const verifyIdentity = (_host: string, cert: PeerCertificate): Error | undefined => {
    const nameErr = checkServerIdentity(servername, cert);
    if (nameErr) return nameErr;
    if (revocation) {
      // OpenSSL's own CRL check is not used (it demands a CRL for every CA, hard-fails on
      // nextUpdate and costs a full CRL verification per handshake); the gateway's index decides.
      // The chain from the upstream's CA bundle when it holds every issuer; otherwise as the
      // upstream presented it, which must reach a bundle anchor (see ChainLinker.fromPeer).
      const chain = linker.bundleCompletes(cert.raw) ? linker.fromBundle(new X509Certificate(cert.raw)) : linker.fromPeer(cert as DetailedPeerCertificate);
      if (chain === null) {
        return new GatewayError('GW_ERR_UPSTREAM_CERT_REVOCATION_UNKNOWN', {
          message: `upstream ${name}: the certificate chain could not be linked to the CA certificates in upstreams.${name}.tls.ca, so revocation cannot be checked on every CA (add the upstream's intermediate CAs there)`,
        });
      }
      const verdict = checkChain(revocation.store.index, chain.links, revocation.settings, revocation.now());
      if (!verdict.ok) {
        return new GatewayError(verdict.revoked ? 'GW_ERR_UPSTREAM_CERT_REVOKED' : 'GW_ERR_UPSTREAM_CERT_REVOCATION_UNKNOWN', {
          message: `upstream ${name}: certificate ${verdict.serial} of ${verdict.subject} ${verdict.revoked ? `revoked (${verdict.reason})` : `has no usable revocation status: ${verdict.reason}`}`,
          detail: { revocation: verdict },
        });
      }
    }
    if (expect) {
      let why: string | null;
      try {
        why = pinMismatch(identityFromDer(cert.raw), expect);
      } catch (err) {
        why = `certificate could not be parsed: ${(err as Error).message}`;
      }
      if (why !== null) return new GatewayError('GW_ERR_UPSTREAM_IDENTITY_MISMATCH', { message: `upstream ${name}: ${why}` });
    }
    return undefined;
  };
  const newPool = () => new Pool(origin, {
    connections: cfg.connections,
    pipelining: 1,
    headersTimeout: cfg.timeouts.response,
    bodyTimeout: cfg.timeouts.idle,
    // Idle pooled connections live up to timeouts.keepAlive; an upstream's Keep-Alive: timeout=
    // hint can only shorten that (undici subtracts a 2 s margin from the hint).
    keepAliveTimeout: cfg.timeouts.keepAlive,
    keepAliveMaxTimeout: cfg.timeouts.keepAlive,
    connect: {
      secureContext,
      servername,
      rejectUnauthorized: true,
      checkServerIdentity: verifyIdentity,
      maxCachedSessions: 0,
      timeout: cfg.timeouts.connect,
    },
  });
  let pool = newPool();
  const draining = new Set<Promise<void>>();
  let holds = 0;
  let retired: { resolve: () => void; promise: Promise<void> } | null = null;
  const closeAll = () => Promise.all([pool.close(), ...draining]).then(() => undefined);
  const release = () => {
    holds--;
    if (holds === 0 && retired !== null) void closeAll().then(retired.resolve, retired.resolve);
  };
  return {
    name,
    origin,
    gate: new UpstreamGate(cfg.connections, cfg.timeouts.queue),
    get pool() {
      return pool;
    },
    renew() {
      const old = pool;
      pool = newPool();
      const p = old.close().catch(() => undefined);
      draining.add(p);
      void p.finally(() => draining.delete(p));
    },
    hold() {
      holds++;
      let released = false;
      return () => {
        if (released) return;
        released = true;
        release();
      };
    },
    retire() {
      if (retired === null) {
        let resolve!: () => void;
        const promise = new Promise<void>((r) => (resolve = r));
        retired = { resolve, promise };
        if (holds === 0) void closeAll().then(resolve, resolve);
      }
      return retired.promise;
    },
    async close() {
      await closeAll();
    },
  };
}
