/**
 * Upstream verification: how the gateway judges an upstream's certificate, as strictly as a
 * client's. The TLS context (the gateway's client certificate and the upstream's CA bundle) is
 * built once per upstream; after OpenSSL verified the chain, upstreamIdentityCheck() requires
 * `servername`, runs the gateway's own revocation verdict and the pins. Every target of a fleet
 * shares both: pod IPs are never the certificate's name.
 */
import { X509Certificate } from 'node:crypto';
import { createSecureContext, checkServerIdentity, type DetailedPeerCertificate, type PeerCertificate, type SecureContext } from 'node:tls';
import type { UpstreamConfig } from '../config/schema.js';
import { identityFromDer } from '../identity/identity-from-certificate.js';
import { normalizeFingerprint, type PeerIdentity } from '../identity/peer-identity.js';
import type { UpstreamTlsMaterial } from '../pki/gateway-material.js';
import { ChainLinker } from '../x509/chain-links.js';
import { checkChain, type RevocationSettings } from '../revocation/revocation-policy.js';
import type { RevocationStore } from '../revocation/revocation-store.js';
import { GatewayError } from '../errors/registry.js';

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

/**
 * The check every upstream connection runs after OpenSSL verified the chain: the name, the
 * gateway's own revocation verdict, and the pins. One per upstream, shared by all its targets.
 */
export function upstreamIdentityCheck(name: string, cfg: UpstreamConfig, material: UpstreamTlsMaterial, revocation: UpstreamRevocation | null): (host: string, cert: PeerCertificate) => Error | undefined {
  const servername = cfg.tls.servername;
  const expect = cfg.tls.expect;
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
  return verifyIdentity;
}
