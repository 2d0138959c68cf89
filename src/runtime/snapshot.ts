/**
 * The runtime snapshot: everything one request needs, immutable, built in one piece by
 * buildSnapshot() and swapped in whole by the Runtime. A request reads `runtime.current` once and
 * keeps that snapshot to its end, so it never mixes two generations (policy from one, upstreams or
 * the XFCC By= from another). The revocation stores are long-lived (they own timers and file
 * watches) and are referenced from here, not owned; each store's own index carries its own
 * generation.
 */
import type { SecureContextOptions } from 'node:tls';
import type { Logger } from 'pino';
import type { GatewayConfig } from '../config/schema.js';
import type { GatewayMaterial } from '../pki/gateway-material.js';
import type { ConnectionAuthenticator } from '../identity/authenticate-connection.js';
import type { PeerIdentity } from '../identity/peer-identity.js';
import type { Rfc9440Fields } from '../identity/rfc9440.js';
import type { CompiledPolicy } from '../policy/types.js';
import type { RequestHeaderFilter } from '../proxy/forward-headers.js';
import type { RouteForwarding } from '../proxy/route-forwarding.js';
import type { Upstream } from '../proxy/upstream-pool.js';
import type { PathOptions } from '../request/normalize-path.js';
import type { CombinedSettings } from '../revocation/combined-revocation.js';
import type { RevocationVerdict } from '../revocation/revocation-policy.js';
import type { RevocationStore } from '../revocation/revocation-store.js';
import type { OcspStores } from './ocsp-stores.js';

/**
 * The listener's TLS options: the complete set, as `setSecureContext` needs it (it resets what is
 * not passed again, docs/architecture.md "TLS facts").
 */
export interface ServerTlsOptions extends SecureContextOptions {
  readonly requestCert: true;
  readonly rejectUnauthorized: false;
  /** Always set: setSecureContext would otherwise replace the keys, and resumption with them. */
  readonly ticketKeys: Buffer;
}

/** The long-lived revocation stores, by domain: `clients` and `upstream <name>`. */
export interface RevocationStores {
  /** The client-certificate store, or null when tls.crl is not set. */
  readonly clients: RevocationStore | null;
  /** Every store, keyed by domain, in config order (clients first). */
  readonly byDomain: ReadonlyMap<string, RevocationStore>;
}

/** What the data plane enforces on every request besides identity and policy. */
export interface RequestSettings {
  readonly paths: PathOptions;
  /** server.maxHeaders: more header lines than this is refused with 431. */
  readonly maxHeaders: number;
  /** server.bodyTimeout, ms. */
  readonly bodyTimeout: number;
  readonly headerFilter: RequestHeaderFilter;
}

/**
 * What a connection's identity contributes to every request under one snapshot, computed once per
 * identity: the XFCC header value (its By= names this snapshot's server certificate), the RFC 9440
 * header values (computed on first use, by routes that send them) and a child logger whose client
 * bindings pino serializes once.
 */
export interface ConnectionContext {
  readonly identity: PeerIdentity;
  readonly xfcc: string;
  readonly rfc9440: Rfc9440Fields;
  readonly log: Logger;
}

export interface RuntimeSnapshot {
  /** 1 for the snapshot built at startup; each later snapshot carries a higher one. */
  readonly generation: number;
  /** When this snapshot was built (ms). */
  readonly loadedAt: number;
  /** The validated configuration it was built from (paths resolved). */
  readonly config: GatewayConfig;
  /** The certificates and keys it was built from. */
  readonly material: GatewayMaterial;
  readonly policy: CompiledPolicy;
  /** Per route, by the route's index: rewrite, Host, response timeout, rate limit, identity headers. */
  readonly forwarding: readonly RouteForwarding[];
  readonly serverTls: ServerTlsOptions;
  /** The connection authenticator for this client CA (its caches are per socket and per certificate). */
  readonly auth: ConnectionAuthenticator<CombinedSettings, RevocationVerdict>;
  readonly revocation: RevocationStores;
  /** The long-lived OCSP stores (tls.ocsp, upstreams.X.tls.ocsp), referenced like the CRL stores. */
  readonly ocsp: OcspStores;
  readonly upstreams: ReadonlyMap<string, Upstream>;
  /** XFCC's By=: the SPIFFE ID of the server certificate, if it has one. */
  readonly xfccBy: string | null;
  readonly requests: RequestSettings;
  /**
   * Per-identity memo for this snapshot (filled by the data plane, src/dataplane/connection-context.ts).
   * Keyed by the identity object the authenticator shares across a certificate's connections.
   */
  readonly contexts: WeakMap<PeerIdentity, ConnectionContext>;
}
