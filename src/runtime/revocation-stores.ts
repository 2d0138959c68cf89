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

/** Creates (does not load or start) the stores; `revocation-off` is logged when tls.crl is unset. */
export function createRevocationStores(config: GatewayConfig, material: GatewayMaterial, deps: RevocationStoreDeps): RevocationStores {
  const { logger, now } = deps;
  const parse = deps.parse ?? parseDefault;
  const byDomain = new Map<string, RevocationStore>();
  const makeStore = (domain: string, key: string, sources: GatewayConfig['tls']['crl'], rev: RevocationConfig, trust: TrustBundle['certs'], onChange: () => void) =>
    new RevocationStore({
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
  const clients = config.tls.crl && config.tls.crl.length > 0 ? makeStore('clients', 'tls.crl', config.tls.crl, config.tls.revocation, material.clientCA.certs, () => deps.onClientsChange()) : null;
  if (clients) byDomain.set('clients', clients);
  else logger.warn({ event: 'revocation-off', domain: 'clients' }, 'tls.crl is not set: client certificates are not checked for revocation');
  for (const [name, u] of Object.entries(config.upstreams)) {
    if (u.tls.crl && u.tls.crl.length > 0) {
      byDomain.set(`upstream ${name}`, makeStore(`upstream ${name}`, `upstreams.${name}.tls.crl`, u.tls.crl, u.tls.revocation, material.upstreams.get(name)!.ca.certs, () => deps.onUpstreamChange(name)));
    }
  }
  return { clients, byDomain };
}
