/**
 * Builds one runtime snapshot from a configuration and its loaded material: compiles the policy,
 * creates the upstream pools, the connection authenticator for the client CA, the listener's TLS
 * options and the per-request settings. Nothing here listens or reads files, so it can run again
 * for a reload; a throw leaves the snapshot in force untouched.
 */
import type { GatewayConfig } from '../config/schema.js';
import { ConnectionAuthenticator } from '../identity/authenticate-connection.js';
import { identityFromDer } from '../identity/identity-from-certificate.js';
import type { PeerIdentity } from '../identity/peer-identity.js';
import type { GatewayMaterial } from '../pki/gateway-material.js';
import { compilePolicy } from '../policy/compile-policy.js';
import { RequestHeaderFilter } from '../proxy/forward-headers.js';
import { compileRouteForwarding } from '../proxy/route-forwarding.js';
import { createUpstream, type FleetDeps, type Upstream } from '../proxy/upstream-pool.js';
import { CombinedRevocation, type CombinedSettings } from '../revocation/combined-revocation.js';
import type { OcspStores } from './ocsp-stores.js';
import { revocationSettings } from './revocation-stores.js';
import type { ConnectionContext, RevocationStores, RuntimeSnapshot, ServerTlsOptions } from './snapshot.js';

export interface SnapshotDeps {
  readonly generation: number;
  readonly material: GatewayMaterial;
  /** Wall clock in ms (validity re-checks, revocation freshness). */
  readonly now: () => number;
  /**
   * The long-lived revocation stores for this material. Called once the policy has compiled, so a
   * bad route is reported before a bad CRL source, as at startup before.
   */
  readonly revocation: (material: GatewayMaterial) => RevocationStores;
  /** The long-lived OCSP stores for this material; none when omitted. */
  readonly ocsp?: ((material: GatewayMaterial) => OcspStores) | undefined;
  /**
   * Session ticket keys when tls.sessionTickets.keyFile is not set: generated once per process (or
   * handed down by the primary to every worker) so that a reload keeps resumption working.
   */
  readonly ticketKeys: Buffer;
  /**
   * The snapshot in force, on a reload: its connection authenticator and upstreams are kept when
   * nothing they depend on changed, so their caches and pooled connections survive.
   */
  readonly previous?: RuntimeSnapshot | undefined;
  /** What upstream fleets need: DNS lookup and where they report health, ejections and discovery. */
  readonly fleet: Omit<FleetDeps, 'now'>;
}

/**
 * Reuse across reloads: an object built from config (authenticator, upstream, listener TLS
 * options) is remembered with a key naming everything it was made from (the config subtree, the
 * PEM material, the identity of the revocation store it uses); a later build with the same key
 * takes the previous object instead of making a new one.
 */
const storeIds = new WeakMap<object, number>();
let nextStoreId = 1;
function identityOf(o: object | null): number {
  if (o === null) return 0;
  let id = storeIds.get(o);
  if (id === undefined) storeIds.set(o, (id = nextStoreId++));
  return id;
}
const reuseKeys = new WeakMap<object, string>();
const NO_OCSP: OcspStores = Object.freeze({ clients: null, upstreams: new Map() });
const poolKeys = new WeakMap<object, string>();

function reuse<T extends object>(previous: T | undefined, key: string): T | undefined {
  return previous !== undefined && reuseKeys.get(previous) === key ? previous : undefined;
}
function remember<T extends object>(value: T, key: string): T {
  reuseKeys.set(value, key);
  return value;
}

export function buildSnapshot(config: GatewayConfig, deps: SnapshotDeps): RuntimeSnapshot {
  const { material, now } = deps;
  const { server, clientCA } = material;
  const policy = compilePolicy(config.routes, { caseSensitive: config.server.paths.caseSensitive });
  const revocation = deps.revocation(material);
  const ocsp = deps.ocsp?.(material) ?? NO_OCSP;
  const previous = deps.previous;
  const upstreams = new Map<string, Upstream>();
  for (const [name, u] of Object.entries(config.upstreams)) {
    const store = revocation.byDomain.get(`upstream ${name}`) ?? null;
    const m = material.upstreams.get(name)!;
    const key = JSON.stringify([name, u, m.client.pem, m.client.keyPem, m.ca.pems, identityOf(store)]);
    const before = previous?.upstreams.get(name);
    const kept = reuse(before, key);
    if (kept !== undefined) {
      upstreams.set(name, kept);
      continue;
    }
    // What the targets' pools are made of: when only the fleet's shape changed (targets, balance,
    // health, retries, limits other than maxConnections), the new fleet takes over the targets it
    // shares with the old one, pooled connections and health included.
    const ocspStore = ocsp.upstreams.get(name) ?? null;
    const poolKey = JSON.stringify([name, u.tls, u.protocol, u.timeouts, u.limits.maxConnections, m.client.pem, m.client.keyPem, m.ca.pems, identityOf(store), identityOf(ocspStore)]);
    const fleet = createUpstream(name, u, m, store ? { store, settings: revocationSettings(u.tls.revocation), now } : null, { ...deps.fleet, now, http1Client: config.server.engine === 'lean' ? 'lean' : 'undici' }, before !== undefined && poolKeys.get(before) === poolKey ? before : null, ocspStore);
    poolKeys.set(fleet, poolKey);
    upstreams.set(name, remember(fleet, key));
  }
  const authKey = JSON.stringify([config.tls.verifyDepth, config.tls.maxChainLength, clientCA.pems, config.tls.revocation, config.tls.ocsp.mode, config.tls.ocsp.onUnavailable, identityOf(revocation.clients), identityOf(ocsp.clients)]);
  const clientOcsp = config.tls.ocsp.mode === 'off' ? null : ocsp.clients;
  const clientRevocation: { store: CombinedRevocation; settings: CombinedSettings } | null =
    revocation.clients === null && clientOcsp === null
      ? null
      : {
          store: new CombinedRevocation(revocation.clients, clientOcsp),
          settings: {
            crl: revocationSettings(config.tls.revocation),
            ocsp: clientOcsp === null || config.tls.ocsp.mode === 'off' ? null : { mode: config.tls.ocsp.mode, onUnavailable: config.tls.ocsp.onUnavailable },
          },
        };
  const auth =
    reuse(previous?.auth, authKey) ??
    remember(
      new ConnectionAuthenticator({
        verifyDepth: config.tls.verifyDepth,
        maxChainLength: config.tls.maxChainLength,
        now,
        trust: clientCA.certs,
        revocation: clientRevocation,
      }),
      authKey,
    );
  const ticketKeys = material.ticketKeys ?? deps.ticketKeys;
  // Kept when unchanged, so the listener is given a new context only when there is one.
  const tlsKey = JSON.stringify([server.keyPem, server.pem, clientCA.pems, config.tls.minVersion, ticketKeys.toString('base64')]);
  const serverTls: ServerTlsOptions = reuse(previous?.serverTls, tlsKey) ?? remember<ServerTlsOptions>({
    key: server.keyPem,
    cert: server.pem,
    ca: [...clientCA.pems],
    // Client certificates are requested and verified by OpenSSL, but a failed verification does
    // not abort the handshake: the data plane refuses every request on such a connection with 401
    // and a code naming the reason, then closes it. With rejectUnauthorized: true Node would cut
    // the connection with a bare reset and the reason would be lost (docs/architecture.md, "TLS
    // facts"). The test/security suite pins that no unverified connection ever reaches routing.
    requestCert: true,
    rejectUnauthorized: false,
    minVersion: config.tls.minVersion,
    ticketKeys,
  }, tlsKey);
  const previousForwarding = new Map(previous?.config.routes.map((r, i) => [r.name, previous.forwarding[i]!]));
  const forwarding = config.routes.map((r) => compileRouteForwarding(r, config.forwardClientCert, previousForwarding.get(r.name)));
  return Object.freeze({
    generation: deps.generation,
    loadedAt: now(),
    config,
    material,
    policy,
    forwarding,
    serverTls,
    auth,
    revocation,
    ocsp,
    upstreams,
    // XFCC's By= names the gateway itself: the SPIFFE ID of its server certificate, if it has one.
    xfccBy: identityFromDer(server.leaf.raw).spiffe?.uri ?? null,
    requests: {
      paths: { allowSemicolons: config.server.paths.allowSemicolons, allowTrimmableSegments: config.server.paths.allowTrimmableSegments },
      maxHeaders: config.server.maxHeaders,
      bodyTimeout: config.server.bodyTimeout,
      headerFilter: new RequestHeaderFilter(config.server.stripRequestHeaders),
    },
    contexts: new WeakMap<PeerIdentity, ConnectionContext>(),
  });
}
