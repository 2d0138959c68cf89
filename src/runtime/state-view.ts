/**
 * What the admin listener and the metrics report about the state in force: readiness with its
 * reasons, the certificates the gateway holds and trusts, the CRLs in force, and the /status
 * document. Pure functions of a snapshot and a few facts (no I/O, no clock of their own), so they
 * can be tested without a listener and read at any moment.
 */
import type { X509Certificate } from 'node:crypto';
import type { RevocationConfig } from '../config/schema.js';
import type { StaplingState } from '../revocation/ocsp-stapler.js';
import type { CertificateInfo, CrlInfo, UpstreamTargetInfo } from '../telemetry/metrics.js';
import { certificateDn } from '../x509/dn.js';
import type { RuntimeSnapshot } from './snapshot.js';

/** What readiness needs besides the snapshot. */
export interface ReadinessFacts {
  /** The data-plane listener accepts connections. */
  readonly listening: boolean;
  /** A drain has started (SIGTERM/SIGINT). */
  readonly draining: boolean;
  /** Wall clock, ms. */
  readonly now: number;
}

export interface Readiness {
  readonly ready: boolean;
  /** Why not, one line each; empty when ready. */
  readonly reasons: readonly string[];
}

function notAfter(c: X509Certificate): Date {
  return new Date(c.validTo);
}

/** The revocation settings that govern a store's domain. */
function revocationFor(snapshot: RuntimeSnapshot, domain: string): RevocationConfig | null {
  if (domain === 'clients') return snapshot.config.tls.revocation;
  const name = domain.startsWith('upstream ') ? domain.slice('upstream '.length) : null;
  return name !== null ? (snapshot.config.upstreams[name]?.tls.revocation ?? null) : null;
}

export function readiness(snapshot: RuntimeSnapshot | null, facts: ReadinessFacts): Readiness {
  const reasons: string[] = [];
  if (facts.draining) reasons.push('draining: the gateway is shutting down');
  if (!facts.listening) reasons.push('listener: not accepting connections');
  if (snapshot === null) {
    reasons.push('snapshot: no configuration loaded');
    return { ready: false, reasons };
  }
  const server = snapshot.material.server.leaf;
  if (notAfter(server).getTime() <= facts.now) reasons.push(`tls.cert: the server certificate expired at ${notAfter(server).toISOString()}`);
  else if (new Date(server.validFrom).getTime() > facts.now) reasons.push(`tls.cert: the server certificate is not valid before ${new Date(server.validFrom).toISOString()}`);
  const now = new Date(facts.now);
  for (const [domain, store] of snapshot.revocation.byDomain) {
    const rev = revocationFor(snapshot, domain);
    if (rev === null) continue;
    const crls = store.describe();
    if (crls.length === 0 && rev.missing === 'deny') {
      reasons.push(`crl ${domain}: no CRL loaded and missing is "deny", so every certificate in scope is refused`);
    }
    for (const c of crls) {
      if (c.nextUpdate === null) continue;
      const next = Date.parse(c.nextUpdate);
      if (next >= now.getTime()) continue;
      if (rev.stale === 'deny') reasons.push(`crl ${domain}: the CRL of ${c.issuerDn} is past its nextUpdate (${c.nextUpdate}) and stale is "deny"`);
      else if (rev.stale === 'grace' && now.getTime() > next + (rev.grace ?? 0)) {
        reasons.push(`crl ${domain}: the CRL of ${c.issuerDn} is past its nextUpdate (${c.nextUpdate}) and its grace of ${rev.grace ?? 0} ms`);
      }
    }
  }
  return { ready: reasons.length === 0, reasons };
}

function info(role: CertificateInfo['role'], c: X509Certificate, upstream?: string): CertificateInfo {
  return { role, subject: certificateDn(c), serial: c.serialNumber, notAfter: notAfter(c), ...(upstream !== undefined ? { upstream } : {}) };
}

/**
 * The gateway's own certificates (server leaf, upstream client leaves) and the CAs it trusts
 * (client CA bundle, each upstream's CA bundle).
 */
export function certificatesOf(snapshot: RuntimeSnapshot): CertificateInfo[] {
  const m = snapshot.material;
  const out: CertificateInfo[] = [info('server', m.server.leaf)];
  for (const c of m.clientCA.certs) out.push(info('client-ca', c));
  for (const [name, u] of m.upstreams) {
    out.push(info('upstream-client', u.client.leaf, name));
    for (const c of u.ca.certs) out.push(info('upstream-ca', c, name));
  }
  return out;
}

export interface CrlStatus extends CrlInfo {
  readonly number: string | null;
  readonly thisUpdate: string;
  readonly source: string;
  readonly stale: boolean;
}

export function crlsOf(snapshot: RuntimeSnapshot): CrlStatus[] {
  const out: CrlStatus[] = [];
  for (const [domain, store] of snapshot.revocation.byDomain) {
    for (const c of store.describe()) {
      out.push({ domain, issuer: c.issuerDn, number: c.crlNumber, thisUpdate: c.thisUpdate, nextUpdate: c.nextUpdate, entries: c.entries, source: c.source, stale: c.stale });
    }
  }
  return out;
}

export interface LastReload {
  readonly at: string;
  readonly result: 'success' | 'failure';
  readonly trigger: string;
  readonly generation: number;
  readonly durationMs: number;
  readonly error: { readonly code: string; readonly message: string; readonly key: string | null } | null;
}

/** Every target of every upstream fleet in force, for the metrics gauges. */
export function upstreamTargetsOf(snapshot: RuntimeSnapshot): UpstreamTargetInfo[] {
  const out: UpstreamTargetInfo[] = [];
  for (const [name, fleet] of snapshot.upstreams) {
    for (const t of fleet.status().targets) out.push({ upstream: name, target: t.origin, healthy: t.healthy, ejected: t.ejected, active: t.active });
  }
  return out;
}

/** One OCSP store for /status: its settings, its counters and (a bounded sample of) its cache. */
export function ocspOf(snapshot: RuntimeSnapshot) {
  const stores = [...(snapshot.ocsp.clients ? [snapshot.ocsp.clients] : []), ...snapshot.ocsp.upstreams.values()];
  return stores.map((s) => ({
    domain: s.domain,
    mode: s.domain === 'clients' ? snapshot.config.tls.ocsp.mode : (snapshot.config.upstreams[s.domain.slice('upstream '.length)]?.tls.ocsp.mode ?? 'off'),
    cached: s.size,
    hits: s.counts.hits,
    misses: s.counts.misses,
    lookups: s.counts.lookups,
    entries: s.describe(100),
  }));
}

/** The /status document. */
export function statusOf(snapshot: RuntimeSnapshot, extra: { lastReload: LastReload | null; readiness: Readiness; connectionsOpen: number; stapling?: StaplingState }) {
  const cfg = snapshot.config;
  return {
    generation: snapshot.generation,
    loadedAt: new Date(snapshot.loadedAt).toISOString(),
    lastReload: extra.lastReload,
    ready: extra.readiness.ready,
    notReadyReasons: extra.readiness.reasons,
    connectionsOpen: extra.connectionsOpen,
    certificates: certificatesOf(snapshot).map((c) => ({ role: c.role, subject: c.subject, serial: c.serial, notAfter: c.notAfter.toISOString(), ...(c.upstream !== undefined ? { upstream: c.upstream } : {}) })),
    crls: crlsOf(snapshot),
    ocsp: ocspOf(snapshot),
    // OCSP stapling of the server certificate (tls.stapling); the stapler owns it, not the snapshot.
    stapling: extra.stapling ?? null,
    routes: cfg.routes.map((r, i) => ({
      name: r.name,
      upstream: r.upstream,
      match: r.match,
      audit: r.audit === true,
      allow: r.allow.length,
      deny: r.deny.length,
      ...(r.rewrite !== undefined ? { rewrite: r.rewrite } : {}),
      host: snapshot.forwarding[i]?.host ?? 'upstream',
      ...(r.rateLimit !== undefined ? { rateLimit: { key: r.rateLimit.key, perSecond: r.rateLimit.rate, burst: r.rateLimit.burst, buckets: snapshot.forwarding[i]?.rateLimit?.limiter.size ?? 0 } } : {}),
    })),
    upstreams: Object.entries(cfg.upstreams).map(([name, u]) => {
      const fleet = snapshot.upstreams.get(name);
      const st = fleet?.status();
      return {
        name,
        ...(u.url !== undefined ? { url: u.url } : {}),
        servername: u.tls.servername,
        balance: u.balance,
        connections: u.limits.maxConnections,
        limits: u.limits,
        active: fleet?.gate.active ?? 0,
        waiting: fleet?.gate.waiting ?? 0,
        retries: { attempts: u.retries.attempts, on: u.retries.on, budgetPercent: u.retries.budget, retriesActive: fleet?.budget.retriesActive ?? 0 },
        healthCheck: u.healthCheck ?? null,
        discovery: st?.discovery ?? null,
        targets: st?.targets ?? [],
      };
    }),
  };
}

export type GatewayStatus = ReturnType<typeof statusOf>;
