/**
 * The revocation stores a configuration names: one for client certificates (tls.crl) and one per
 * upstream with CRL sources. They are long-lived (timers, file watches, URL refreshes), owned by
 * the gateway rather than by a snapshot, and report each change of their index through the hooks.
 */
import type { Logger } from 'pino';
import type { GatewayConfig, RevocationConfig } from '../config/schema.js';
import type { GatewayMaterial } from '../pki/gateway-material.js';
import type { TrustBundle } from '../pki/tls-material.js';
import { describeSource, normalizeCrlSources, type CrlSourceSpec } from '../revocation/crl-sources.js';
import { parseCrlFileOffThread } from '../revocation/parse-off-thread.js';
import type { RevocationSettings } from '../revocation/revocation-policy.js';
import { RevocationStore, type ParseCrlsFn } from '../revocation/revocation-store.js';
import type { RevocationStores } from './snapshot.js';
import { crlDistributionPointUrls } from '../x509/crl-distribution-points.js';
import { certificateDn } from '../x509/dn.js';

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
  const makeStore = (domain: string, key: string, sources: GatewayConfig['tls']['crl'], rev: RevocationConfig, trust: TrustBundle['certs'], onChange: () => void, derived: readonly CrlSourceSpec[] = []) => {
    const storeKey = JSON.stringify([domain, sources, derived, rev, trust.map((c) => c.fingerprint256)]);
    const old = previous?.byDomain.get(domain);
    if (old !== undefined && storeKeys.get(old) === storeKey) return old;
    const store = new RevocationStore({
      domain,
      sources: [...normalizeCrlSources(sources, key), ...derived],
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
  const derived = distributionPointSources(config, material.clientCA.certs, previous, logger);
  const clients = (config.tls.crl && config.tls.crl.length > 0) || derived.length > 0 ? makeStore('clients', 'tls.crl', config.tls.crl, config.tls.revocation, material.clientCA.certs, () => deps.onClientsChange(), derived) : null;
  if (clients !== null && derived.length > 0 && created.includes(clients)) logger.info({ event: 'crl-distribution-points', domain: 'clients', urls: derived.map((d) => describeSource(d)) }, 'CRLs named by the client CA certificates are fetched like url sources');
  if (clients) byDomain.set('clients', clients);
  else if (previous === null || previous.clients !== null) logger.warn({ event: 'revocation-off', domain: 'clients' }, 'tls.crl is not set: client certificates are not checked for revocation');
  for (const [name, u] of Object.entries(config.upstreams)) {
    if (u.tls.crl && u.tls.crl.length > 0) {
      byDomain.set(`upstream ${name}`, makeStore(`upstream ${name}`, `upstreams.${name}.tls.crl`, u.tls.crl, u.tls.revocation, material.upstreams.get(name)!.ca.certs, () => deps.onUpstreamChange(name)));
    }
  }
  const kept = new Set(byDomain.values());
  const retired = previous === null ? [] : [...previous.byDomain.values()].filter((s) => !kept.has(s));
  const stores = { clients, byDomain };
  if (config.tls.crlFromDistributionPoints) derivedFrom.set(stores, bundleKey(material.clientCA.certs));
  return { stores, created, retired };
}

/** The client CA bundle whose distribution points a store set was derived from (logs once per bundle). */
const derivedFrom = new WeakMap<RevocationStores, string>();
const bundleKey = (certs: TrustBundle['certs']) => certs.map((c) => c.fingerprint256).join(',');

/**
 * tls.crlFromDistributionPoints: one url source, with a url source's defaults and no disk cache,
 * per distinct http(s) CRL distribution point the client CA certificates name, minus the URLs
 * tls.crl already lists. What was refused, or that nothing was found, is logged once per CA bundle.
 */
function distributionPointSources(config: GatewayConfig, certs: TrustBundle['certs'], previous: RevocationStores | null, logger: Logger): CrlSourceSpec[] {
  if (!config.tls.crlFromDistributionPoints) return [];
  const report = previous === null || derivedFrom.get(previous) !== bundleKey(certs);
  const configured = new Set(normalizeCrlSources(config.tls.crl, 'tls.crl').flatMap((s) => (s.kind === 'url' ? [URL.canParse(s.url) ? new URL(s.url).href : s.url] : [])));
  const urls = new Set<string>();
  let named = 0;
  for (const ca of certs) {
    const onRefused = (reason: string) => {
      if (report) logger.warn({ event: 'crl-distribution-point-refused', domain: 'clients', ca: certificateDn(ca), reason }, 'a CRL distribution point of a client CA certificate is not fetched');
    };
    for (const url of crlDistributionPointUrls(ca.raw, onRefused)) {
      named++;
      if (!configured.has(url)) urls.add(url);
    }
  }
  if (named === 0 && report) logger.warn({ event: 'crl-distribution-points-none', domain: 'clients' }, 'tls.crlFromDistributionPoints is set but no client CA certificate names an http(s) CRL distribution point');
  // The string form of a url source is normalized with the defaults of a configured `url:` entry.
  return normalizeCrlSources([...urls], 'tls.crlFromDistributionPoints');
}
