/**
 * The revocation stores a configuration names: one for client certificates (tls.crl) and one per
 * upstream with CRL sources. They are long-lived (timers, file watches, URL refreshes), owned by
 * the gateway rather than by a snapshot, and report each change of their index through the hooks.
 */
import type { Logger } from 'pino';
import type { GatewayConfig, RevocationConfig } from '../config/schema.js';
import type { GatewayMaterial } from '../pki/gateway-material.js';
import type { TrustBundle } from '../pki/tls-material.js';
import { normalizeCrlSources } from '../revocation/crl-sources.js';
import { parseCrlFileOffThread } from '../revocation/parse-off-thread.js';
import type { RevocationSettings } from '../revocation/revocation-policy.js';
import { RevocationStore, type ParseCrlsFn } from '../revocation/revocation-store.js';
import type { RevocationStores } from './snapshot.js';

export interface RevocationStoreDeps {
  readonly logger: Logger;
  readonly now: () => number;
  /** CRL file parser; the default parses big files off the event loop. */
  readonly parse?: ParseCrlsFn | undefined;
  /** After the client index changed (live connections are judged again). */
  readonly onClientsChange: () => void;
  /** After an upstream's index changed (its pool is renewed). */
  readonly onUpstreamChange: (name: string) => void;
}

/** Big CRLs (over 1 MiB) are parsed in a worker thread so a reload never stalls traffic. */
const parseDefault: ParseCrlsFn = (bytes) => parseCrlFileOffThread(bytes);

export function revocationSettings(r: RevocationConfig): RevocationSettings {
  return { scope: r.scope, missing: r.missing, stale: r.stale, graceMs: r.grace ?? 0 };
}

/** What a store was made from; a reload keeps a store whose key is unchanged. */
const storeKeys = new WeakMap<RevocationStore, string>();

export interface RevocationStoreChange {
  readonly stores: RevocationStores;
  /** New stores: to load before the swap, start after it, stop if the reload fails. */
  readonly created: readonly RevocationStore[];
  /** Stores of the previous set not kept: to stop after the swap. */
  readonly retired: readonly RevocationStore[];
}

/** Creates (does not load or start) the stores; `revocation-off` is logged when tls.crl is unset. */
export function createRevocationStores(config: GatewayConfig, material: GatewayMaterial, deps: RevocationStoreDeps): RevocationStores {
  return reviseRevocationStores(config, material, null, deps).stores;
}

/**
 * The stores for a (re)loaded configuration: a domain whose CRL sources, revocation settings and
 * trust are unchanged keeps its store (with its index, timers and watches); any other gets a new
 * one, which the caller loads before the swap.
 */
export function reviseRevocationStores(config: GatewayConfig, material: GatewayMaterial, previous: RevocationStores | null, deps: RevocationStoreDeps): RevocationStoreChange {
  const { logger, now } = deps;
  const parse = deps.parse ?? parseDefault;
  const byDomain = new Map<string, RevocationStore>();
  const created: RevocationStore[] = [];
  const makeStore = (domain: string, key: string, sources: GatewayConfig['tls']['crl'], rev: RevocationConfig, trust: TrustBundle['certs'], onChange: () => void) => {
    const storeKey = JSON.stringify([domain, sources, rev, trust.map((c) => c.fingerprint256)]);
    const old = previous?.byDomain.get(domain);
    if (old !== undefined && storeKeys.get(old) === storeKey) return old;
    const store = new RevocationStore({
      domain,
      sources: normalizeCrlSources(sources, key),
      trust,
      logger,
      now,
      parse,
      warnBeforeMs: rev.warnBefore,
      pollIntervalMs: rev.pollInterval,
      onChange,
    });
    storeKeys.set(store, storeKey);
    created.push(store);
    return store;
  };
  const clients = config.tls.crl && config.tls.crl.length > 0 ? makeStore('clients', 'tls.crl', config.tls.crl, config.tls.revocation, material.clientCA.certs, () => deps.onClientsChange()) : null;
  if (clients) byDomain.set('clients', clients);
  else if (previous === null || previous.clients !== null) logger.warn({ event: 'revocation-off', domain: 'clients' }, 'tls.crl is not set: client certificates are not checked for revocation');
  for (const [name, u] of Object.entries(config.upstreams)) {
    if (u.tls.crl && u.tls.crl.length > 0) {
      byDomain.set(`upstream ${name}`, makeStore(`upstream ${name}`, `upstreams.${name}.tls.crl`, u.tls.crl, u.tls.revocation, material.upstreams.get(name)!.ca.certs, () => deps.onUpstreamChange(name)));
    }
  }
  const kept = new Set(byDomain.values());
  const retired = previous === null ? [] : [...previous.byDomain.values()].filter((s) => !kept.has(s));
  return { stores: { clients, byDomain }, created, retired };
}
