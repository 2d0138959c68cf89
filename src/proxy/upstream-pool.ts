/**
 * Upstreams as fleets: one configured upstream is a set of targets (a single `url`, a fixed
 * `targets` list, or the addresses DNS `discovery` returns), each with its own undici Pool, all
 * sharing one TLS context and one identity check (src/proxy/upstream-verify.ts). The fleet owns
 * which targets may take a request (active health, outlier ejection), how one is chosen
 * (src/proxy/balancer.ts), the circuit-breaking limits (src/proxy/upstream-gate.ts) and the retry
 * budget. The data plane sees one object: it asks for a target, reports how the attempt went, and
 * decides retries with the fleet's settings (src/dataplane/proxy-http.ts).
 */
import type { Logger } from 'pino';
import type { RetryReason, UpstreamConfig } from '../config/schema.js';
import type { UpstreamTlsMaterial } from '../pki/gateway-material.js';
import type { OcspStore } from '../revocation/ocsp-store.js';
import { createBalancer, type Balancer } from './balancer.js';
import { DnsDiscovery, MAX_DISCOVERED_TARGETS, type DnsLookup } from './dns-discovery.js';
import { HealthChecker } from './health-checker.js';
import { OutlierDetector } from './outlier-detector.js';
import { RetryBudget } from './retry-budget.js';
import { UpstreamGate } from './upstream-gate.js';
import { UpstreamOcspCheck } from './upstream-ocsp.js';
import { UpstreamTarget, type TargetPoolSettings } from './upstream-target.js';
import { buildUpstreamSecureContext, upstreamIdentityCheck, type UpstreamRevocation } from './upstream-verify.js';

export type { UpstreamRevocation } from './upstream-verify.js';

/** What a fleet reports as it changes (logged and counted by the caller). */
export interface FleetEvents {
  targetsChanged(upstream: string, added: readonly string[], removed: readonly string[]): void;
  discoveryFailed(upstream: string, err: Error): void;
  healthChecked(upstream: string, target: string, ok: boolean): void;
  healthChanged(upstream: string, target: string, healthy: boolean, detail: string): void;
  ejected(upstream: string, target: string, forMs: number, times: number): void;
}

export interface FleetDeps {
  readonly now: () => number;
  readonly lookup: DnsLookup;
  readonly events: FleetEvents;
  readonly random?: () => number;
  /** Where an upstream admitted by an OCSP fail-open (onUnavailable: allow) is logged. */
  readonly logger?: Logger | undefined;
  /** The HTTP/1.1 client of `protocol: http1` targets (server.engine: node → undici, lean → the gateway's own). */
  readonly http1Client?: 'undici' | 'lean' | undefined;
}

export interface RetrySettings {
  readonly attempts: number;
  readonly on: ReadonlySet<RetryReason>;
  /** `on` names a status (502, 503, 504): responses must be looked at before they are relayed. */
  readonly onStatus: boolean;
  readonly backoffMs: number;
}

export interface UpstreamTargetStatus {
  readonly origin: string;
  readonly weight: number;
  readonly healthy: boolean;
  readonly ejected: boolean;
  readonly ejectedUntil: string | null;
  readonly timesEjected: number;
  readonly consecutiveFailures: number;
  readonly active: number;
  readonly lastCheck: { readonly at: string; readonly ok: boolean; readonly detail: string } | null;
}

export interface Upstream {
  readonly name: string;
  /** upstreams.<name>.protocol: http2 targets speak HTTP/2 only. */
  readonly protocol: 'http1' | 'http2';
  /** The upstream's tls.servername (the name every target's certificate must carry). */
  readonly servername: string;
  /** Requests carried at once (limits.maxConnections) and how long the rest may wait. */
  readonly gate: UpstreamGate;
  readonly limits: { readonly maxPending: number; readonly maxRequests: number };
  readonly retries: RetrySettings;
  readonly budget: RetryBudget;
  /** Number of targets now. */
  readonly size: number;
  /**
   * A target for one attempt: healthy, not ejected, not in `tried`, chosen by the balancer.
   * Undefined when there is none.
   */
  pick(tried: ReadonlySet<UpstreamTarget> | null): UpstreamTarget | undefined;
  /** How many targets could take a request now, leaving out `except`. */
  eligibleCount(except: ReadonlySet<UpstreamTarget>): number;
  /** An attempt on `target` was answered with a non-5xx status. */
  succeeded(target: UpstreamTarget): void;
  /** An attempt on `target` failed (connection, TLS, timeout, reset or a 5xx): passive health. */
  failed(target: UpstreamTarget): void;
  /** Starts discovery (resolving once before it returns) and health checks. */
  start(): Promise<void>;
  /** Renews every target's pool (the upstream's CRLs changed): later requests run on connections verified against them. */
  renew(): void;
  /**
   * Marks one request as using this upstream until the returned function is called. A retired
   * upstream closes its pools only once nothing holds it, so a request admitted under the previous
   * snapshot still finds a working pool even if it waited for its body or a slot across a reload.
   */
  hold(): () => void;
  /** No new snapshot uses this upstream (a reload removed or replaced it): close when unheld. */
  retire(): Promise<void>;
  close(): Promise<void>;
  targets(): readonly UpstreamTarget[];
  status(): { readonly targets: readonly UpstreamTargetStatus[]; readonly discovery: { readonly dns: string; readonly resolutions: number; readonly lastError: string | null } | null };
}

/** The origins a config names directly (url or targets); empty for discovery. */
function configuredOrigins(cfg: UpstreamConfig): string[] {
  return (cfg.targets ?? (cfg.url !== undefined ? [cfg.url] : [])).map((o) => new URL(o).origin);
}

class UpstreamFleet implements Upstream {
  readonly name: string;
  readonly protocol: 'http1' | 'http2';
  readonly servername: string;
  readonly gate: UpstreamGate;
  readonly limits: { readonly maxPending: number; readonly maxRequests: number };
  readonly retries: RetrySettings;
  readonly budget: RetryBudget;
  readonly #cfg: UpstreamConfig;
  readonly #deps: FleetDeps;
  readonly #poolSettings: TargetPoolSettings;
  readonly #balancer: Balancer;
  readonly #outliers: OutlierDetector | null;
  readonly #health: HealthChecker | null;
  readonly #discovery: DnsDiscovery | null;
  /** Targets of the fleet this one replaces, by origin, that may be taken over as they are. */
  readonly #adoptable: ReadonlyMap<string, UpstreamTarget>;
  #discoveryError: string | null = null;
  #targets: UpstreamTarget[] = [];
  /** Targets that may take a request, valid until a state change or `#eligibleUntil`. */
  #eligible: UpstreamTarget[] = [];
  #eligibleUntil = 0;
  #dirty = true;
  #holds = 0;
  #retired: { resolve: () => void; promise: Promise<void> } | null = null;
  #stopped = false;

  constructor(name: string, cfg: UpstreamConfig, material: UpstreamTlsMaterial, revocation: UpstreamRevocation | null, deps: FleetDeps, previous: Upstream | null, ocsp: OcspStore | null) {
    this.name = name;
    this.protocol = cfg.protocol;
    this.#adoptable = new Map((previous?.targets() ?? []).map((t) => [t.origin, t]));
    this.servername = cfg.tls.servername;
    this.#cfg = cfg;
    this.#deps = deps;
    this.gate = new UpstreamGate(cfg.limits.maxConnections, cfg.timeouts.queue);
    this.limits = { maxPending: cfg.limits.maxPending, maxRequests: cfg.limits.maxRequests };
    const on = new Set(cfg.retries.on);
    this.retries = { attempts: cfg.retries.attempts, on, onStatus: on.has('502') || on.has('503') || on.has('504'), backoffMs: cfg.retries.backoff };
    this.budget = new RetryBudget(cfg.retries.budget);
    this.#poolSettings = previous instanceof UpstreamFleet ? previous.#poolSettings : {
      protocol: cfg.protocol,
      http1Client: deps.http1Client,
      secureContext: buildUpstreamSecureContext(cfg, material),
      servername: cfg.tls.servername,
      checkServerIdentity: upstreamIdentityCheck(name, cfg, material, revocation),
      sessionResumption: cfg.tls.sessionResumption,
      now: deps.now,
      ocsp: ocsp === null ? null : new UpstreamOcspCheck({ name, store: ocsp, mode: cfg.tls.ocsp.mode, requireStapled: cfg.tls.ocsp.requireStapled, onUnavailable: cfg.tls.ocsp.onUnavailable, trust: material.ca.certs, now: deps.now, logger: deps.logger }),
      connections: cfg.limits.maxConnections,
      connectTimeout: cfg.timeouts.connect,
      responseTimeout: cfg.timeouts.response,
      idleTimeout: cfg.timeouts.idle,
      keepAlive: cfg.timeouts.keepAlive,
    };
    this.#balancer = createBalancer(cfg.balance, deps.random);
    const od = cfg.outlierDetection;
    this.#outliers = od.enabled ? new OutlierDetector({ consecutiveFailures: od.consecutiveFailures, baseEjectionMs: od.baseEjection, maxEjectionPercent: od.maxEjectionPercent }) : null;
    const hc = cfg.healthCheck;
    this.#health =
      hc === undefined
        ? null
        : new HealthChecker(
            { path: hc.path, intervalMs: hc.interval, timeoutMs: hc.timeout, healthyThreshold: hc.healthyThreshold, unhealthyThreshold: hc.unhealthyThreshold, expectStatus: hc.expectStatus },
            cfg.tls.servername,
            {
              checked: (t, ok) => deps.events.healthChecked(name, t.origin, ok),
              changed: (t, healthy, detail) => {
                this.#dirty = true;
                deps.events.healthChanged(name, t.origin, healthy, detail);
              },
            },
            deps.now,
          );
    const d = cfg.discovery;
    this.#discovery =
      d === undefined
        ? null
        : new DnsDiscovery({
            name: d.dns,
            port: d.port,
            refreshMs: d.refresh,
            lookup: deps.lookup,
            events: {
              changed: (origins) => {
                this.#discoveryError = null;
                this.#setTargets(origins);
              },
              failed: (err) => {
                this.#discoveryError = `${(err as { code?: string }).code ?? 'error'}: ${err.message}`;
                deps.events.discoveryFailed(name, err);
              },
              truncated: (n) => deps.events.discoveryFailed(name, Object.assign(new Error(`${d.dns} resolved to ${n} addresses; the first ${MAX_DISCOVERED_TARGETS} are used`), { code: 'ETOOMANY' })),
            },
          });
    if (this.#discovery === null) {
      const weights = new Map(Object.entries(cfg.weights ?? {}).map(([k, w]) => [new URL(k).origin, w]));
      this.#targets = configuredOrigins(cfg).map((o) => this.#target(o, weights.get(o) ?? 1));
    }
  }

  /** A target for `origin`: the replaced fleet's one if it had it (pool, health, ejection kept), else new. */
  #target(origin: string, weight: number): UpstreamTarget {
    const kept = this.#adoptable.get(origin);
    if (kept !== undefined && !kept.closed) {
      kept.adopt();
      kept.weight = weight;
      // Without active checks in this fleet nothing would ever mark a target up again.
      if (this.#health === null) {
        kept.healthy = true;
        kept.checkPasses = 0;
        kept.checkFailures = 0;
        kept.lastCheck = null;
      }
      return kept;
    }
    return new UpstreamTarget(origin, weight, this.#poolSettings);
  }

  get size(): number {
    return this.#targets.length;
  }

  targets(): readonly UpstreamTarget[] {
    return this.#targets;
  }

  async start(): Promise<void> {
    if (this.#stopped) return;
    if (this.#discovery !== null) await this.#discovery.start();
    if (this.#health !== null && !this.#stopped) for (const t of this.#targets) this.#health.watch(t);
  }

  #setTargets(origins: readonly string[]): void {
    if (this.#stopped) return;
    const want = new Set(origins);
    const have = new Map(this.#targets.map((t) => [t.origin, t]));
    const added: string[] = [];
    const removed: string[] = [];
    const next: UpstreamTarget[] = [];
    for (const t of this.#targets) {
      if (want.has(t.origin)) next.push(t);
      else {
        removed.push(t.origin);
        this.#health?.unwatch(t);
        // Requests already on it finish; undici's close waits for them.
        void t.release();
      }
    }
    for (const origin of origins) {
      if (have.has(origin)) continue;
      const t = this.#target(origin, 1);
      next.push(t);
      added.push(origin);
      this.#health?.watch(t);
    }
    this.#targets = next;
    this.#dirty = true;
    if (added.length > 0 || removed.length > 0) this.#deps.events.targetsChanged(this.name, added, removed);
  }

  #eligibleAt(now: number): UpstreamTarget[] {
    if (!this.#dirty && now < this.#eligibleUntil) return this.#eligible;
    const out: UpstreamTarget[] = [];
    let until = Infinity;
    for (const t of this.#targets) {
      if (!t.healthy) continue;
      if (this.#outliers !== null && this.#outliers.isEjected(t.outlier, now)) {
        until = Math.min(until, this.#outliers.ejectedUntil(t.outlier));
        continue;
      }
      out.push(t);
    }
    this.#eligible = out;
    this.#eligibleUntil = until;
    this.#dirty = false;
    return out;
  }

  pick(tried: ReadonlySet<UpstreamTarget> | null): UpstreamTarget | undefined {
    let list = this.#eligibleAt(this.#deps.now());
    if (tried !== null && tried.size > 0) list = list.filter((t) => !tried.has(t));
    if (list.length <= 1) return list[0];
    return this.#balancer.pick(list);
  }

  eligibleCount(except: ReadonlySet<UpstreamTarget>): number {
    let n = 0;
    for (const t of this.#eligibleAt(this.#deps.now())) if (!except.has(t)) n++;
    return n;
  }

  succeeded(target: UpstreamTarget): void {
    if (this.#outliers !== null) this.#outliers.success(target.outlier);
  }

  failed(target: UpstreamTarget): void {
    const od = this.#outliers;
    if (od === null || target.closed) return;
    const now = this.#deps.now();
    let ejectedNow = 0;
    for (const t of this.#targets) if (t !== target && od.isEjected(t.outlier, now)) ejectedNow++;
    if (od.failure(target.outlier, now, this.#targets.length, ejectedNow) === 'ejected') {
      target.ejections++;
      this.#dirty = true;
      this.#deps.events.ejected(this.name, target.origin, od.ejectedUntil(target.outlier) - now, od.timesEjected(target.outlier));
    }
  }

  renew(): void {
    for (const t of this.#targets) t.renew();
  }

  hold(): () => void {
    this.#holds++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#holds--;
      if (this.#holds === 0 && this.#retired !== null) void this.#closeAll().then(this.#retired.resolve, this.#retired.resolve);
    };
  }

  #stop(): void {
    this.#stopped = true;
    this.#discovery?.stop();
    this.#health?.stop();
  }

  #closeAll(): Promise<void> {
    const targets = this.#targets;
    this.#targets = [];
    this.#dirty = true;
    return Promise.all(targets.map((t) => t.release())).then(() => undefined);
  }

  retire(): Promise<void> {
    this.#stop();
    if (this.#retired === null) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      this.#retired = { resolve, promise };
      if (this.#holds === 0) void this.#closeAll().then(resolve, resolve);
    }
    return this.#retired.promise;
  }

  async close(): Promise<void> {
    this.#stop();
    await this.#closeAll();
  }

  status() {
    const now = this.#deps.now();
    const od = this.#outliers;
    return {
      targets: this.#targets.map((t) => {
        const ejected = od !== null && od.isEjected(t.outlier, now);
        return {
          origin: t.origin,
          weight: t.weight,
          healthy: t.healthy,
          ejected,
          ejectedUntil: ejected ? new Date(od.ejectedUntil(t.outlier)).toISOString() : null,
          timesEjected: t.ejections,
          consecutiveFailures: od?.consecutiveFailures(t.outlier) ?? 0,
          active: t.active,
          lastCheck: t.lastCheck === null ? null : { at: new Date(t.lastCheck.at).toISOString(), ok: t.lastCheck.ok, detail: t.lastCheck.detail },
        };
      }),
      discovery: this.#cfg.discovery === undefined ? null : { dns: this.#cfg.discovery.dns, resolutions: this.#discovery!.resolutions, lastError: this.#discoveryError },
    };
  }
}

/**
 * `previous`: the fleet this one replaces on a reload, when nothing its pools depend on changed
 * (TLS material and settings, timeouts, maxConnections, revocation store). Targets it shares with
 * it by origin are taken over as they are: pooled connections, health and ejection state.
 * `ocsp`: the upstream's OCSP store when upstreams.<name>.tls.ocsp is on (src/runtime/ocsp-stores.ts).
 */
export function createUpstream(name: string, cfg: UpstreamConfig, material: UpstreamTlsMaterial, revocation: UpstreamRevocation | null, deps: FleetDeps, previous: Upstream | null = null, ocsp: OcspStore | null = null): Upstream {
  return new UpstreamFleet(name, cfg, material, revocation, deps, previous, ocsp);
}
