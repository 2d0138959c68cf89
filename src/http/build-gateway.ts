/**
 * The gateway facade: assembles the gateway without listening, so that tests, the CLI and the
 * demo share one wiring. It loads the material, creates the long-lived revocation stores, builds
 * the first runtime snapshot (src/runtime), puts the data plane (src/dataplane) on a listener and
 * connects the reloader, the file watch and the metrics to them. One request's path is in
 * docs/architecture.md; what a reload does is in docs/operations.md.
 */
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { GatewayConfig } from '../config/schema.js';
import { recordPresentedChainLengths } from '../identity/presented-chain.js';
import { loadGatewayMaterial, TICKET_KEY_BYTES } from '../pki/gateway-material.js';
import { readFileFromDisk, type ReadFileFn } from '../pki/tls-material.js';
import { defaultDnsLookup, type DnsLookup } from '../proxy/dns-discovery.js';
import type { FleetEvents } from '../proxy/upstream-pool.js';
import { createOcspHttpLookup, type OcspLookupFn } from '../revocation/ocsp-http-lookup.js';
import { OcspStapler } from '../revocation/ocsp-stapler.js';
import type { ParseCrlsFn, RevocationStore } from '../revocation/revocation-store.js';
import { ConnectionRegistry } from '../dataplane/connection-registry.js';
import { drainListener } from '../dataplane/drain.js';
import { Http1Handler } from '../dataplane/http1-handler.js';
import { applySnapshotToServer, createListener, type GatewayApp } from '../dataplane/listener.js';
import { WebSocketUpgrades } from '../dataplane/websocket-upgrade.js';
import { buildSnapshot } from '../runtime/build-snapshot.js';
import { CertificateExpiryTimer } from '../runtime/certificate-expiry-timer.js';
import { ConfigFileWatch, filesNamedBy } from '../runtime/config-file-watch.js';
import { Reloader, type ReloadResult } from '../runtime/reloader.js';
import { reviseOcspStores, type OcspStoreDeps } from '../runtime/ocsp-stores.js';
import { createRevocationStores, type RevocationStoreDeps } from '../runtime/revocation-stores.js';
import { Runtime } from '../runtime/runtime.js';
import { certificatesOf, crlsOf, readiness, statusOf, upstreamTargetsOf, type GatewayStatus, type Readiness } from '../runtime/state-view.js';
import { GatewayMetrics } from '../telemetry/metrics.js';

export interface GatewayDeps {
  readonly config: GatewayConfig;
  readonly logger: Logger;
  /** Wall clock in ms; injectable so validity re-checks can be tested. */
  readonly now?: () => number;
  readonly readFile?: ReadFileFn;
  /** CRL file parser; the default parses big files off the event loop. */
  readonly parseCrls?: ParseCrlsFn;
  /**
   * How a reload obtains the configuration: normally by reading the config file again. Without
   * it, a reload keeps `config` and re-reads every file it names.
   */
  readonly loadConfig?: () => Promise<GatewayConfig>;
  /**
   * The config file, watched (with every file it names) for changes that trigger a reload; the
   * CLI sets it. Unset: no file watch (reload on demand only).
   */
  readonly watchFile?: string;
  /** Session ticket keys when tls.sessionTickets.keyFile is unset (workers get the primary's). */
  readonly ticketKeys?: Buffer;
  /** Metrics registry to count into (the CLI's has the default process metrics). */
  readonly metrics?: GatewayMetrics;
  /** How upstream `discovery` names resolve; the system resolver by default (tests inject one). */
  readonly lookup?: DnsLookup;
  /** One OCSP exchange over HTTP; the default is undici (tests may wrap it to count lookups). */
  readonly ocspLookup?: OcspLookupFn;
}

export interface Gateway {
  readonly app: GatewayApp;
  readonly runtime: Runtime;
  readonly metrics: GatewayMetrics;
  /** Revocation stores in force: `clients` and one per upstream that has CRL sources. */
  readonly revocation: ReadonlyMap<string, RevocationStore>;
  /** Starts listening on config.listen; resolves with the bound address. */
  listen(): Promise<AddressInfo>;
  /**
   * Reloads everything (config, certificates, keys, CAs, policy, upstreams, CRLs): validate, then
   * swap. Never rejects: a failure keeps the running state and is in the result.
   */
  reload(trigger: string): Promise<ReloadResult>;
  readiness(): Readiness;
  status(): GatewayStatus;
  /**
   * The graceful stop: not ready at once, keep serving for server.drainDelay, then stop accepting,
   * let in-flight requests finish (each connection closes after its response) for at most
   * server.drainTimeout, cut what is left, and release everything.
   */
  drain(signal: string): Promise<void>;
  close(): Promise<void>;
}

export async function buildGateway(deps: GatewayDeps): Promise<Gateway> {
  const { config, logger } = deps;
  const now = deps.now ?? Date.now;
  const read = deps.readFile ?? readFileFromDisk;
  const metrics = deps.metrics ?? new GatewayMetrics();
  // Without a key file, one key for the process: every reload passes the same one to
  // setSecureContext, so resumption survives reloads (and the primary shares its own with workers).
  const ticketKeys = deps.ticketKeys ?? randomBytes(TICKET_KEY_BYTES);

  // Load and check everything before anything listens: a bad file stops startup, naming its key.
  const material = await loadGatewayMaterial(config, read, new Date(now()));
  const registry = new ConnectionRegistry(logger, metrics);
  const storeDeps: RevocationStoreDeps = {
    logger,
    now,
    parse: deps.parseCrls,
    // After the client CRLs changed, every live connection is judged again.
    onClientsChange: () => registry.rejudge(runtime.current),
    // After an upstream's CRLs changed, later requests run on connections verified against them.
    onUpstreamChange: (name) => runtime.current.upstreams.get(name)?.renew(),
  };
  const ocspDeps: OcspStoreDeps = {
    logger,
    now,
    lookup: deps.ocspLookup,
    metrics,
    // A refreshed OCSP answer that revoked a client certificate closes its live connections.
    onClientsChange: () => registry.rejudge(runtime.current),
    onUpstreamChange: (name) => runtime.current.upstreams.get(name)?.renew(),
  };
  const events: FleetEvents = {
    targetsChanged: (upstream, added, removed) => logger.info({ event: 'upstream-targets-changed', upstream, added, removed }, 'upstream targets changed'),
    discoveryFailed: (upstream, err) => {
      metrics.upstreamDiscoveryFailed(upstream);
      logger.warn({ event: 'upstream-discovery-failed', upstream, reason: (err as { code?: unknown }).code ?? err.message, message: err.message }, 'upstream discovery failed; the last good targets stay');
    },
    healthChecked: (upstream, _target, ok) => metrics.upstreamHealthCheck(upstream, ok),
    healthChanged: (upstream, target, healthy, detail) =>
      logger[healthy ? 'info' : 'warn']({ event: healthy ? 'upstream-target-healthy' : 'upstream-target-unhealthy', upstream, target, detail }, healthy ? 'upstream target passes its health checks again' : 'upstream target failed its health checks'),
    ejected: (upstream, target, forMs, times) => {
      metrics.upstreamEjected(upstream, target);
      logger.warn({ event: 'upstream-target-ejected', upstream, target, forMs, times }, 'upstream target ejected after consecutive failures');
    },
  };
  const fleet = { lookup: deps.lookup ?? defaultDnsLookup, events, logger };
  const snapshot = buildSnapshot(config, { generation: 1, material, now, ticketKeys, fleet, revocation: (m) => createRevocationStores(config, m, storeDeps), ocsp: (m) => reviseOcspStores(config, m, null, ocspDeps).stores });
  const runtime: Runtime = new Runtime(snapshot, {
    afterSwap: (next, previous) => {
      // The snapshot is in force from here on; what follows must not undo that by throwing.
      try {
        applySnapshotToServer(app.server, next, previous);
      } catch (err) {
        logger.error({ event: 'tls-context-not-applied', generation: next.generation, err }, 'the new TLS context could not be applied; new handshakes keep the previous one');
      }
      registry.rejudge(next, previous);
      stapler.reconsider();
    },
  });
  // Staples OCSP for the server certificate in force (tls.stapling); it reads the snapshot at each refresh.
  const stapler = new OcspStapler({
    source: () => {
      const cur = runtime.current;
      return { enabled: cur.config.tls.stapling.enabled, refreshMs: cur.config.tls.stapling.refresh, chain: cur.material.server.chain };
    },
    lookup: deps.ocspLookup ?? createOcspHttpLookup(),
    logger,
    now,
    metrics,
  });
  for (const store of snapshot.revocation.byDomain.values()) await store.loadInitial();
  await Promise.all([...snapshot.upstreams.values()].map((u) => u.start()));
  // tls.maxChainLength needs the number of certificates each client presented. Node 24.21 reads
  // them itself during the handshake and discards them (nodejs/node#65579); this keeps the count,
  // process-wide and idempotent, observing a call Node already makes (src/identity/presented-chain.ts).
  recordPresentedChainLengths();

  const handler = new Http1Handler(runtime, logger, metrics);
  const app = createListener({ config, logger, runtime, registry, handler, metrics, staple: (cert) => stapler.current(cert) });
  const upgrades = new WebSocketUpgrades(runtime, logger, metrics);
  app.server.on('upgrade', upgrades.onUpgrade);
  // A close without a drain cuts open tunnels at once; a drain leaves them to server.drainTimeout.
  app.addHook('preClose', (done) => {
    upgrades.stop(!handler.draining);
    done();
  });
  for (const store of snapshot.revocation.byDomain.values()) store.start();
  stapler.start();

  let draining = false;
  const reloader = new Reloader({
    runtime,
    logger,
    now,
    readFile: read,
    loadConfig: deps.loadConfig ?? (async () => config),
    ticketKeys,
    storeDeps,
    ocspDeps,
    fleet,
    onResult: (r) => {
      metrics.reload(r.result);
      if (r.result === 'success') expiry.check();
    },
  });
  const expiry = new CertificateExpiryTimer(() => certificatesOf(runtime.current), logger, now);
  const watch =
    deps.watchFile === undefined
      ? null
      : new ConfigFileWatch({
          logger,
          pollIntervalMs: 2_000,
          debounceMs: 200,
          onChange: async () => {
            await reloader.reload('file-change');
            await watch!.setFiles([deps.watchFile!, ...filesNamedBy(runtime.current.config)]);
          },
        });
  if (watch !== null) await watch.start([deps.watchFile!, ...filesNamedBy(config)]);

  const ready = () => readiness(runtime.current, { listening: app.server.listening, draining, now: now() });
  metrics.setSource({
    generation: () => runtime.current.generation,
    ready: () => ready().ready,
    connectionsOpen: () => registry.size,
    certificates: () => certificatesOf(runtime.current),
    crls: () => crlsOf(runtime.current),
    upstreamTargets: () => upstreamTargetsOf(runtime.current),
  });

  let closed: Promise<void> | null = null;
  const close = () =>
    (closed ??= (async () => {
      watch?.stop();
      expiry.stop();
      stapler.stop();
      // The listener stops accepting first and its connections finish (a drain); revocation keeps
      // being enforced on them meanwhile, so the stores stop only after it.
      await app.close();
      await Promise.all([...runtime.current.revocation.byDomain.values()].map((s) => s.stop()));
      const ocsp = runtime.current.ocsp;
      ocsp.clients?.stop();
      for (const s of ocsp.upstreams.values()) s.stop();
      await Promise.all([...runtime.current.upstreams.values()].map((u) => u.close()));
    })());

  return {
    app,
    runtime,
    metrics,
    get revocation() {
      return runtime.current.revocation.byDomain;
    },
    async listen() {
      // Fastify cannot tell that the server it was handed speaks TLS; its line would say http://.
      await app.listen({ host: config.listen.host, port: config.listen.port, listenTextResolver: (address) => `Server listening at ${address.replace(/^http:/, 'https:')}` });
      return app.server.address() as AddressInfo;
    },
    reload: (trigger) => reloader.reload(trigger),
    readiness: ready,
    status: () => statusOf(runtime.current, { lastReload: reloader.last, readiness: ready(), connectionsOpen: registry.size, stapling: stapler.state() }),
    async drain(signal: string) {
      if (draining) return close();
      draining = true;
      const { drainDelay, drainTimeout } = runtime.current.config.server;
      logger.info({ event: 'draining', signal, drainDelayMs: drainDelay, drainTimeoutMs: drainTimeout }, 'stopping: not ready; serving on for drainDelay, then draining in-flight requests');
      await drainListener({ server: app.server, registry, handler, logger, delayMs: drainDelay, timeoutMs: drainTimeout, close });
    },
    close,
  };
}
