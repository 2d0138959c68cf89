/**
 * Active health checks (timers): every `interval` each target of a fleet is asked `GET path` over
 * its own pool, so over mTLS with the gateway's client certificate and the same verification as
 * real requests. A target goes down after `unhealthyThreshold` failing checks in a row and comes
 * back after `healthyThreshold` passing ones (Envoy's unhealthy_threshold / healthy_threshold,
 * HAProxy's fall / rise). Targets start healthy, so a reload or a new pod is not refused while its
 * first check runs; the first check runs at once.
 */
import type { UpstreamTarget } from './upstream-target.js';

export interface HealthCheckSettings {
  readonly path: string;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly healthyThreshold: number;
  readonly unhealthyThreshold: number;
  readonly expectStatus: readonly number[];
}

export interface HealthCheckEvents {
  /** Every check's outcome (for counters). */
  checked(target: UpstreamTarget, ok: boolean, detail: string): void;
  /** A target crossed a threshold. */
  changed(target: UpstreamTarget, healthy: boolean, detail: string): void;
}

/** How much of a health check's response body is read before the connection is given up. */
const MAX_BODY = 64 * 1024;

export class HealthChecker {
  readonly #settings: HealthCheckSettings;
  readonly #host: string;
  readonly #events: HealthCheckEvents;
  readonly #now: () => number;
  readonly #timers = new Map<UpstreamTarget, NodeJS.Timeout>();
  #stopped = false;

  /** `host`: the Host header of the checks (the upstream's tls.servername). */
  constructor(settings: HealthCheckSettings, host: string, events: HealthCheckEvents, now: () => number) {
    this.#settings = settings;
    this.#host = host;
    this.#events = events;
    this.#now = now;
  }

  /** Starts checking a target; its first check runs at once. */
  watch(target: UpstreamTarget): void {
    if (this.#stopped || this.#timers.has(target)) return;
    this.#schedule(target, 0);
  }

  unwatch(target: UpstreamTarget): void {
    const timer = this.#timers.get(target);
    if (timer !== undefined) clearTimeout(timer);
    this.#timers.delete(target);
  }

  stop(): void {
    this.#stopped = true;
    for (const timer of this.#timers.values()) clearTimeout(timer);
    this.#timers.clear();
  }

  #schedule(target: UpstreamTarget, delay: number): void {
    const timer = setTimeout(() => {
      void this.#check(target).then(() => {
        if (!this.#stopped && this.#timers.get(target) === timer) {
          // ±10% jitter so a fleet's checks do not fire in step.
          this.#schedule(target, this.#settings.intervalMs * (0.9 + Math.random() * 0.2));
        }
      });
    }, delay);
    timer.unref();
    this.#timers.set(target, timer);
  }

  async #check(target: UpstreamTarget): Promise<void> {
    if (target.closed) return;
    const s = this.#settings;
    let ok = false;
    let detail: string;
    try {
      const res = await target.pool.request({
        method: 'GET',
        path: s.path,
        headers: { host: this.#host, 'user-agent': 'mtls-gateway-health-check' },
        signal: AbortSignal.timeout(s.timeoutMs),
        headersTimeout: s.timeoutMs,
        bodyTimeout: s.timeoutMs,
      });
      ok = s.expectStatus.includes(res.statusCode);
      detail = `status ${res.statusCode}`;
      await res.body.dump({ limit: MAX_BODY }).catch(() => undefined);
    } catch (err) {
      const e = err as { code?: unknown; message?: unknown; name?: unknown };
      detail = typeof e.code === 'string' ? e.code : e.name === 'TimeoutError' ? 'timeout' : String(e.message ?? err);
    }
    if (this.#stopped || target.closed) return;
    target.lastCheck = { at: this.#now(), ok, detail };
    this.#events.checked(target, ok, detail);
    if (ok) {
      target.checkFailures = 0;
      target.checkPasses++;
      if (!target.healthy && target.checkPasses >= s.healthyThreshold) {
        target.healthy = true;
        this.#events.changed(target, true, detail);
      }
    } else {
      target.checkPasses = 0;
      target.checkFailures++;
      if (target.healthy && target.checkFailures >= s.unhealthyThreshold) {
        target.healthy = false;
        this.#events.changed(target, false, detail);
      }
    }
  }
}
