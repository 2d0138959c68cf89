/**
 * One target of an upstream fleet: one origin (a pod, a VM, a Service VIP) with its own undici
 * Pool, and the state the fleet keeps about it (requests in flight, passive and active health).
 * The pool's connections use the upstream's shared TLS context and identity check, opened by a
 * connector of the pool's own (resuming-target-connect.ts): with tls.sessionResumption it resumes
 * TLS sessions and judges every resumed connection again on the chain its full handshake verified
 * (Node skips checkServerIdentity on a resumed session: docs/architecture.md, "TLS facts"). A new
 * pool (renew) gets a new connector, so no session verified before a CRL change is offered again.
 * A target of a `protocol: http2` upstream has one HTTP/2 session instead of a pool
 * (src/proxy/http2-upstream-client.ts, which says why not undici's allowH2), and with
 * server.engine `lean` a `protocol: http1` target has the gateway's own HTTP/1.1 client
 * (src/proxy/http1-upstream-client.ts); all three are Dispatchers.
 */
import type { PeerCertificate, SecureContext } from 'node:tls';
import { Pool } from 'undici';
import { Http1UpstreamClient } from './http1-upstream-client.js';
import { Http2UpstreamClient } from './http2-upstream-client.js';
import { OutlierRecord } from './outlier-detector.js';
import { TargetConnector } from './resuming-target-connect.js';
import { installUndiciTrailerGuard } from './undici-trailer-guard.js';
import type { UpstreamOcspCheck } from './upstream-ocsp.js';

/** What a target's requests go through: undici's Pool, the gateway's own HTTP/1.1 client, or its HTTP/2 session. */
export type TargetClient = Pool | Http1UpstreamClient | Http2UpstreamClient;

export interface TargetPoolSettings {
  /** http2: one HTTP/2 session, h2 required by ALPN (upstreams.<name>.protocol). */
  readonly protocol: 'http1' | 'http2';
  /**
   * The HTTP/1.1 client of a `protocol: http1` target: undici's Pool, or with server.engine `lean`
   * the gateway's own (http1-upstream-client.ts). Absent: undici.
   */
  readonly http1Client?: 'undici' | 'lean' | undefined;
  readonly secureContext: SecureContext;
  readonly servername: string;
  readonly checkServerIdentity: (host: string, cert: PeerCertificate) => Error | undefined;
  /** upstreams.<name>.tls.ocsp, when on: every connection asks for a staple and is judged before use (upstream-ocsp.ts). */
  readonly ocsp?: UpstreamOcspCheck | null | undefined;
  /** upstreams.<name>.tls.sessionResumption (absent: off, every connection a full handshake). */
  readonly sessionResumption?: boolean | undefined;
  /** The gateway's clock, for the validity of a resumed session's remembered chain (absent: Date.now). */
  readonly now?: (() => number) | undefined;
  /** The connector of the pool generation these settings belong to (set by UpstreamTarget; absent: one per connection). */
  readonly connector?: TargetConnector | undefined;
  /** Most connections this target's pool opens. */
  readonly connections: number;
  readonly connectTimeout: number;
  readonly responseTimeout: number;
  readonly idleTimeout: number;
  readonly keepAlive: number;
}

export class UpstreamTarget {
  /** The origin, e.g. https://10.0.0.11:9443: the target's key in the fleet and in metrics. */
  readonly origin: string;
  /** host:port as the Host header names this target. */
  readonly authority: string;
  /** Relative share for the balancer; set by the fleet that owns it (a reload may change it). */
  weight: number;
  /** Requests on this target now (the balancer's least-request input). */
  active = 0;
  /** Passive health (outlier detection) state. */
  readonly outlier = new OutlierRecord();
  /** Active health: false once unhealthyThreshold checks failed in a row, until healthyThreshold pass. */
  healthy = true;
  checkPasses = 0;
  checkFailures = 0;
  lastCheck: { readonly at: number; readonly ok: boolean; readonly detail: string } | null = null;
  ejections = 0;
  readonly #settings: TargetPoolSettings;
  /** #settings with the connector of the pool in force: its sessions are the pool's. */
  #generation!: TargetPoolSettings;
  #pool: TargetClient;
  readonly #draining = new Set<Promise<void>>();
  #closed = false;
  /**
   * Fleets that use this target. A reload that keeps the target's origin and pool settings hands
   * the same target (its pool, health and ejection state) to the new fleet; it closes when the
   * last fleet releases it.
   */
  #owners = 1;

  constructor(origin: string, weight: number, settings: TargetPoolSettings) {
    const url = new URL(origin);
    this.origin = url.origin;
    this.authority = url.host;
    this.weight = weight;
    this.#settings = settings;
    this.#pool = this.#newPool();
  }

  /** The key balancers use. */
  get key(): string {
    return this.origin;
  }

  get pool(): TargetClient {
    return this.#pool;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * The TLS and connect settings of this target's connections, for those opened outside the pool
   * (WebSocket tunnels), with the connector (and so the TLS sessions) of the pool in force.
   */
  get settings(): TargetPoolSettings {
    return this.#generation;
  }

  /** A pool with a connector of its own: sessions never outlive the pool they were verified for. */
  #newPool(): TargetClient {
    const s = { ...this.#settings, connector: new TargetConnector(this.#settings) };
    this.#generation = s;
    if (s.protocol === 'http2') return new Http2UpstreamClient(this.origin, s);
    if (s.http1Client === 'lean') return new Http1UpstreamClient(this.origin, s);
    installUndiciTrailerGuard();
    return new Pool(this.origin, {
      connections: s.connections,
      pipelining: 1,
      headersTimeout: s.responseTimeout,
      bodyTimeout: s.idleTimeout,
      // Idle pooled connections live up to timeouts.keepAlive; an upstream's Keep-Alive: timeout=
      // hint can only shorten that (undici subtracts a 2 s margin from the hint).
      keepAliveTimeout: s.keepAlive,
      keepAliveMaxTimeout: s.keepAlive,
      connect: s.connector.undici,
    });
  }

  /**
   * Starts a new pool and drains the old one, so every later request runs on a connection whose
   * certificate was verified against the current CRLs. In-flight requests finish on the old pool.
   */
  renew(): void {
    if (this.#closed) return;
    const old = this.#pool;
    this.#pool = this.#newPool();
    this.#drain(old);
  }

  #drain(pool: TargetClient): void {
    const p = pool.close().catch(() => undefined);
    this.#draining.add(p);
    void p.finally(() => this.#draining.delete(p));
  }

  /** One more fleet uses this target. */
  adopt(): void {
    this.#owners++;
  }

  /** A fleet no longer uses this target: closes it when none does. */
  release(): Promise<void> {
    this.#owners--;
    return this.#owners <= 0 ? this.close() : Promise.resolve();
  }

  /** Closes the pool once its in-flight requests finished (undici's close waits for them). */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([this.#pool.close().catch(() => undefined), ...this.#draining]);
  }
}
