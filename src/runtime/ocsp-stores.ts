/**
 * The OCSP stores a configuration names: one for client certificates (tls.ocsp, when its mode is
 * not off) and one per upstream whose tls.ocsp mode is not off. Like the CRL stores they are
 * long-lived (their answers and refresh timers survive a reload that does not change what they
 * were made from) and owned by the gateway rather than by a snapshot.
 */
import type { X509Certificate } from 'node:crypto';
import type { Logger } from 'pino';
import type { GatewayConfig } from '../config/schema.js';
import type { GatewayMaterial } from '../pki/gateway-material.js';
import { compileDnMatcher } from '../policy/compile-policy.js';
import { createOcspHttpLookup, ocspUrlProblem, type OcspLookupFn } from '../revocation/ocsp-http-lookup.js';
import { ocspUrlsOf } from '../revocation/ocsp-request.js';
import { OcspStore, type OcspMetricsSink } from '../revocation/ocsp-store.js';
import { certFields } from '../x509/cert-fields.js';
import { decodeName, type DistinguishedName } from '../x509/dn.js';

export interface OcspStores {
  readonly clients: OcspStore | null;
  /** By upstream name. */
  readonly upstreams: ReadonlyMap<string, OcspStore>;
}

export interface OcspStoreDeps {
  readonly logger: Logger;
  readonly now: () => number;
  /** The HTTP exchange; the default is createOcspHttpLookup(). */
  readonly lookup?: OcspLookupFn | undefined;
  readonly metrics?: OcspMetricsSink | null | undefined;
  /** A refreshed answer turned a client certificate with live connections bad. */
  readonly onClientsChange: () => void;
  /** The same for an upstream's certificate. */
  readonly onUpstreamChange: (name: string) => void;
}

/** The first usable http(s) OCSP URL of a certificate's AIA, or null. */
export function aiaResponder(certDer: Buffer): string | null {
  for (const url of ocspUrlsOf(certDer)) if (ocspUrlProblem(url) === null) return url;
  return null;
}

function issuerDn(issuer: X509Certificate, cache: WeakMap<X509Certificate, DistinguishedName>): DistinguishedName {
  let dn = cache.get(issuer);
  if (dn === undefined) {
    const name = certFields(issuer.raw).subjectDer;
    dn = decodeName(name, 0, name.length);
    cache.set(issuer, dn);
  }
  return dn;
}

/**
 * tls.ocsp.responders compiled: the first entry whose issuer selector matches the certificate's
 * issuing CA names the responder; otherwise the certificate's own AIA OCSP URL. Throws (naming the
 * key) on a selector that does not compile.
 */
export function compileResponders(responders: GatewayConfig['tls']['ocsp']['responders']): (leafDer: Buffer, issuer: X509Certificate) => string | null {
  const compiled = responders.map((r, i) => ({ test: compileDnMatcher(r.issuer, `tls.ocsp.responders[${i}].issuer`), url: r.url }));
  const dns = new WeakMap<X509Certificate, DistinguishedName>();
  return (leafDer, issuer) => {
    if (compiled.length > 0) {
      const dn = issuerDn(issuer, dns);
      for (const r of compiled) if (r.test(dn)) return r.url;
    }
    return aiaResponder(leafDer);
  };
}

const storeKeys = new WeakMap<OcspStore, string>();

export interface OcspStoreChange {
  readonly stores: OcspStores;
  /** Stores of the previous set not kept: to stop after the swap. */
  readonly retired: readonly OcspStore[];
}

/**
 * The stores for a (re)loaded configuration: a domain whose OCSP settings and trust are unchanged
 * keeps its store, answers and timers included.
 */
export function reviseOcspStores(config: GatewayConfig, material: GatewayMaterial, previous: OcspStores | null, deps: OcspStoreDeps): OcspStoreChange {
  // One HTTP agent for the stores this call creates; none when every store is kept.
  let lookup = deps.lookup;
  const make = (
    domain: string,
    old: OcspStore | undefined,
    settings: { timeout: number; maxBytes: number; cacheSize: number; nonce: boolean },
    responders: GatewayConfig['tls']['ocsp']['responders'],
    trust: readonly X509Certificate[],
    onChange: () => void,
  ): OcspStore => {
    const key = JSON.stringify([domain, settings, responders, trust.map((c) => c.fingerprint256)]);
    if (old !== undefined && storeKeys.get(old) === key) return old;
    const store = new OcspStore({
      domain,
      timeoutMs: settings.timeout,
      maxBytes: settings.maxBytes,
      cacheSize: settings.cacheSize,
      nonce: settings.nonce,
      responderFor: compileResponders(responders),
      lookup: (lookup ??= createOcspHttpLookup()),
      logger: deps.logger,
      now: deps.now,
      metrics: deps.metrics ?? null,
      onChange,
    });
    storeKeys.set(store, key);
    return store;
  };
  const o = config.tls.ocsp;
  const clients = o.mode === 'off' ? null : make('clients', previous?.clients ?? undefined, o, o.responders, material.clientCA.certs, deps.onClientsChange);
  const upstreams = new Map<string, OcspStore>();
  for (const [name, u] of Object.entries(config.upstreams)) {
    const uo = u.tls.ocsp;
    if (uo.mode === 'off' && !uo.requireStapled) continue;
    // Upstream certificates are looked up at their AIA; answers are per connection, so the cache is small.
    const settings = { timeout: uo.timeout, maxBytes: 65_536, cacheSize: 256, nonce: false };
    upstreams.set(name, make(`upstream ${name}`, previous?.upstreams.get(name), settings, [], material.upstreams.get(name)!.ca.certs, () => deps.onUpstreamChange(name)));
  }
  const kept = new Set<OcspStore>([...(clients ? [clients] : []), ...upstreams.values()]);
  const retired = previous === null ? [] : [...(previous.clients ? [previous.clients] : []), ...previous.upstreams.values()].filter((s) => !kept.has(s));
  return { stores: { clients, upstreams }, retired };
}
