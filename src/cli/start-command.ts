/**
 * `mtls-gateway start`: loads the config, builds the gateway and runs it in the foreground.
 *
 * One process: the gateway, its admin listener (admin.listen) and the reload triggers (SIGHUP,
 * POST /reload, changes of the config file or a file it names). SIGTERM/SIGINT drain it
 * (server.drainDelay, then server.drainTimeout) and exit 0.
 *
 * With --workers N > 1 the primary forks N node:cluster workers that share the listening port and
 * keeps them serving (worker-supervisor.ts). The primary owns what must exist once: the admin
 * listener (readiness and metrics aggregated over the workers), the file watch and the reload
 * decision. A reload is validated once, in the primary (the `config check` code), and only a
 * configuration that passes is handed to the workers, each of which then reloads itself. The
 * primary also hands every worker one session ticket key, so a client resumes its TLS session on
 * whichever worker it lands. Replicas stay stateless: everything comes from files.
 */
import cluster, { type Worker } from 'node:cluster';
import { randomBytes } from 'node:crypto';
import { AggregatorRegistry, type Registry } from 'prom-client';
import type { Logger } from 'pino';
import { AdminServer, type AdminBackend, type AdminReloadResult } from '../admin/admin-server.js';
import { loadAdminTls } from '../admin/admin-tls.js';
import { gatewayAdminBackend } from '../admin/gateway-backend.js';
import { ConfigError, loadConfig, resolveConfigPath } from '../config/load-config.js';
import type { GatewayConfig } from '../config/schema.js';
import { isGatewayError } from '../errors/registry.js';
import { buildGateway, type Gateway } from '../http/build-gateway.js';
import { createGatewayLogger, flushLogSync } from '../log/gateway-logger.js';
import { TICKET_KEY_BYTES } from '../pki/gateway-material.js';
import { ConfigFileWatch, filesNamedBy } from '../runtime/config-file-watch.js';
import { describeReloadError, RestartNeeded, restartNeededFor } from '../runtime/reloader.js';
import type { LastReload } from '../runtime/state-view.js';
import { GatewayMetrics } from '../telemetry/metrics.js';
import { checkConfigFiles } from './check-files.js';
import { armStopDeadline, STOP_GRACE_MS, stopBoundMs, type StopDeadline } from './stop-deadline-timer.js';
import { answerPrimary, askWorker, awaitInit, serveInit } from './worker-channel.js';
import { superviseWorkers, type SupervisorView } from './worker-supervisor.js';
import { setMarkingTriggers, triggersOnCommandLine } from './v8-marking-trigger.js';

/** How long the primary waits for a worker's answer (a reload loads CRLs, so it gets longer). */
const ASK_TIMEOUT_MS = 5_000;
const RELOAD_TIMEOUT_MS = 60_000;

type MetricsJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;

export async function runStart(opts: { configFlag: string | undefined; workers: string | undefined }): Promise<number> {
  // First, before the load this is about: every process of the gateway (primary and workers).
  setMarkingTriggers();
  const file = resolveConfigPath(opts.configFlag, process.env, process.cwd());
  if (file === null) {
    process.stderr.write('mtls-gateway start: no config file (pass --config FILE or set MTLS_GATEWAY_CONFIG)\n');
    return 2;
  }
  const workers = parseWorkers(opts.workers);
  if (workers === null) {
    process.stderr.write(`mtls-gateway start: --workers must be a whole number from 1 to 64, or "auto" (got "${opts.workers}")\n`);
    return 2;
  }
  let loaded;
  try {
    loaded = await loadConfig(file);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.file}: invalid configuration\n`);
      for (const i of err.issues) process.stderr.write(`  ${i.path || '(document)'}: ${i.message}\n`);
      return 1;
    }
    throw err;
  }
  const logger = createGatewayLogger(loaded.config.log);
  if (workers > 1 && cluster.isPrimary) return runPrimary({ workers, file, config: loaded.config, logger });
  return runWorker(loaded.config, file, logger);
}

/** `auto` is one worker per core the process may use. */
function parseWorkers(flag: string | undefined): number | null {
  if (flag === undefined) return 1;
  if (flag === 'auto') return Math.max(1, Math.min(64, (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator?.hardwareConcurrency ?? 1));
  const n = Number(flag);
  return Number.isInteger(n) && n >= 1 && n <= 64 ? n : null;
}

function startupFailed(logger: Logger, err: unknown): number {
  const e = err as { code?: string; message?: string; issues?: { path: string; message: string }[] };
  logger.fatal({ code: e.code, issues: e.issues }, `startup failed: ${e.message}`);
  // Synchronously: a cluster worker exits below, and process.exit() runs no pending write.
  flushLogSync(logger);
  process.stderr.write(`mtls-gateway: ${e.message}\n`);
  if (e.issues) for (const i of e.issues) process.stderr.write(`  ${i.path}: ${i.message}\n`);
  // The primary counts startup failures by exit code, and a cluster worker's IPC channel would
  // keep it alive (disconnecting would exit 0).
  if (cluster.isWorker) process.exit(1);
  return 1;
}

async function startAdmin(config: GatewayConfig, backend: AdminBackend, logger: Logger): Promise<AdminServer | null> {
  if (!config.admin.enabled) return null;
  const tls = await loadAdminTls(config);
  const admin = new AdminServer({ host: config.admin.listen.host, port: config.admin.listen.port, backend, logger, tls });
  const address = await admin.listen();
  const scheme = tls ? 'https' : 'http';
  logger.info({ event: 'admin-listening', address: address.address, port: address.port, tls: tls !== null }, `admin listener at ${scheme}://${address.address}:${address.port}`);
  return admin;
}

async function runWorker(config: GatewayConfig, file: string, logger: Logger): Promise<number> {
  // A worker runs with the primary's ticket keys (resumption works on any worker).
  const initStarted = Date.now();
  const ticketKeys = cluster.isWorker ? await awaitInit(10_000) : null;
  if (cluster.isWorker) {
    // Without the primary's key a client's session resumes only on the worker that issued it.
    const record = { event: 'worker-init', ticketKeys: ticketKeys !== null ? 'shared' : 'own', waitedMs: Date.now() - initStarted };
    if (ticketKeys !== null) logger.info(record, "worker has the primary's session ticket key");
    else logger.warn(record, 'no answer from the primary; this worker uses a session ticket key of its own');
  }
  const metrics = new GatewayMetrics({ defaultMetrics: true });
  let gateway: Gateway;
  let admin: AdminServer | null = null;
  try {
    gateway = await buildGateway({
      config,
      logger,
      metrics,
      loadConfig: async () => (await loadConfig(file)).config,
      // In a worker the primary watches the files and decides reloads.
      ...(cluster.isWorker ? {} : { watchFile: file }),
      ...(ticketKeys !== null ? { ticketKeys } : {}),
    });
  } catch (err) {
    return startupFailed(logger, err);
  }
  const address = await gateway.listen();
  if (!cluster.isWorker) {
    try {
      admin = await startAdmin(config, gatewayAdminBackend(gateway), logger);
    } catch (err) {
      await gateway.close();
      // A material error names its own key (admin.tls.cert, ...); a bind error gets admin.listen.
      return startupFailed(logger, isGatewayError(err) ? err : new Error(`admin.listen ${config.admin.listen.host}:${config.admin.listen.port}: ${(err as Error).message}`));
    }
  } else {
    answerPrimary(async (question, trigger) => {
      switch (question) {
        case 'readiness':
          return gateway.readiness();
        case 'status':
          return gateway.status();
        case 'metrics':
          return gateway.metrics.registry.getMetricsAsJSON();
        case 'reload':
          return gateway.reload(trigger ?? 'primary');
      }
    });
  }
  logger.info({ event: 'listening', address: address.address, port: address.port, config: file, routes: config.routes.length, upstreams: Object.keys(config.upstreams), v8MarkingTriggers: triggersOnCommandLine() ? 'command line' : 'gateway' }, 'gateway listening');
  // Startup lines go out at once rather than with the first buffer.
  logger.flush();

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) {
        logger.info({ event: 'signal-while-stopping', signal }, 'already stopping; the drain goes on');
        return;
      }
      stopping = true;
      // Read now: a reload may have changed drainDelay or drainTimeout since the start.
      const deadline = armStopDeadline({ boundMs: stopBoundMs(gateway.runtime.current.config.server), logger });
      const done = (code: number) => {
        deadline.finished(code);
        resolve(code);
      };
      gateway.drain(signal).then(
        async () => {
          await admin?.close();
          logger.info({ event: 'stopped' }, 'gateway stopped');
          logger.flush();
          // A cluster worker's IPC channel would keep it alive after the server closed.
          if (cluster.isWorker) process.disconnect();
          done(0);
        },
        (err: unknown) => {
          logger.error({ err }, 'error while stopping');
          logger.flush();
          done(1);
        },
      );
    };
    // Kept for the whole stop, not once: a second signal would otherwise kill the process by
    // default and cut its drain. systemd (KillMode=control-group) and `pkill` signal a worker
    // directly as well as through its primary; the stop's own bound ends a stop that hangs.
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', () => {
      logger.info({ event: 'reload-requested', via: 'SIGHUP' }, 'SIGHUP: reloading the configuration and every file it names');
      void gateway.reload('SIGHUP');
    });
  });
}

interface PrimaryOptions {
  readonly workers: number;
  readonly file: string;
  readonly config: GatewayConfig;
  readonly logger: Logger;
}

/**
 * The primary of `--workers N`: supervises the workers and speaks for all of them on the admin
 * listener; validates every reload once before any worker sees it.
 */
async function runPrimary(opts: PrimaryOptions): Promise<number> {
  const { file, logger } = opts;
  let config = opts.config;
  const ticketKeys = randomBytes(TICKET_KEY_BYTES);
  let view: SupervisorView | null = null;
  let draining = false;
  let last: LastReload | null = null;
  // The primary's own counters: reload results are decided here, once, not per worker.
  const primaryMetrics = new GatewayMetrics();
  let reloading: Promise<AdminReloadResult> | null = null;

  const serving = (): Worker[] => view?.serving() ?? [];

  const reload = (trigger: string): Promise<AdminReloadResult> => {
    // Coalesced: a trigger during a reload joins it.
    reloading ??= runReload(trigger).finally(() => (reloading = null));
    return reloading;
  };

  const runReload = async (trigger: string): Promise<AdminReloadResult> => {
    const started = Date.now();
    const record = (r: AdminReloadResult): AdminReloadResult => {
      primaryMetrics.reload(r.result);
      last = { at: new Date().toISOString(), result: r.result, trigger, generation: r.generation, durationMs: Date.now() - started, error: r.error ? { code: r.error.code, message: r.error.message, key: r.error.key ?? null } : null };
      return r;
    };
    const workers = serving();
    // The generation in force: the lowest any serving worker reports (0 when none answers).
    const lowest = (gens: readonly number[]) => {
      const known = gens.filter((g) => g > 0);
      return known.length === 0 ? 0 : Math.min(...known);
    };
    const generation = async () => lowest(await Promise.all(workers.map((w) => askWorker(w, 'status', ASK_TIMEOUT_MS).then((s) => (s as { generation: number }).generation, () => 0))));
    let next: GatewayConfig;
    try {
      next = (await loadConfig(file)).config;
      const fixed = restartNeededFor(config, next);
      if (fixed !== null) {
        throw new RestartNeeded(fixed);
      }
      // The same checks as `config check` and startup: every file, key pair, CA and CRL.
      await checkConfigFiles(next);
    } catch (err) {
      const { code, message, key } = describeReloadError(err);
      logger.error({ event: 'reload-refused', trigger, code, key, reason: message, where: 'primary' }, 'reload refused before any worker saw it; the running configuration stays in force');
      return record({ result: 'failure', generation: await generation(), error: { code, message, key } });
    }
    config = next;
    const results = await Promise.all(
      workers.map((w) => askWorker(w, 'reload', RELOAD_TIMEOUT_MS, trigger).then((r) => r as AdminReloadResult, (err: unknown) => ({ result: 'failure' as const, generation: 0, error: { code: 'GW_ERR_INTERNAL', message: (err as Error).message, key: null } }))),
    );
    const failed = results.find((r) => r.result === 'failure');
    const gen = lowest(results.map((r) => r.generation));
    logger.info({ event: failed ? 'reload-partial' : 'reload', trigger, workers: results.length, generation: gen }, failed ? 'a worker refused the reload' : 'workers reloaded');
    return record(failed ? { result: 'failure', generation: gen, error: failed.error! } : { result: 'success', generation: gen });
  };

  const backend: AdminBackend = {
    async readiness() {
      const reasons: string[] = [];
      if (draining) reasons.push('draining: the gateway is shutting down');
      const workers = serving();
      if (workers.length === 0) reasons.push('workers: none is serving');
      const answers = await Promise.all(workers.map((w) => askWorker(w, 'readiness', ASK_TIMEOUT_MS).then((r) => ({ w, r: r as { ready: boolean; reasons: string[] } }), (err: unknown) => ({ w, r: { ready: false, reasons: [(err as Error).message] } }))));
      for (const { w, r } of answers) for (const reason of r.reasons) reasons.push(`worker ${w.process.pid}: ${reason}`);
      return { ready: reasons.length === 0, reasons };
    },
    async status() {
      const workers = serving();
      const first = workers[0] ? ((await askWorker(workers[0], 'status', ASK_TIMEOUT_MS).catch(() => null)) as Record<string, unknown> | null) : null;
      return { ...(first ?? {}), lastReload: last, workers: { configured: opts.workers, serving: workers.map((w) => w.process.pid) } };
    },
    async metrics() {
      const perWorker = await Promise.all(serving().map((w) => askWorker(w, 'metrics', ASK_TIMEOUT_MS).then((m) => m as MetricsJson, () => null)));
      // Reload results are counted here, in the primary, once; workers' own counts are dropped.
      const RELOADS = 'mtls_gateway_config_reloads_total';
      const workerMetrics = perWorker.filter((m): m is MetricsJson => m !== null).map((list) => list.filter((m) => m.name !== RELOADS));
      const own = (await primaryMetrics.registry.getMetricsAsJSON()).filter((m) => m.name === RELOADS);
      const registry = AggregatorRegistry.aggregate([...workerMetrics, own]);
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
    reload,
  };

  let admin: AdminServer | null;
  try {
    admin = await startAdmin(config, backend, logger);
  } catch (err) {
    const message = isGatewayError(err) ? err.message : `admin.listen ${config.admin.listen.host}:${config.admin.listen.port}: ${(err as Error).message}`;
    logger.fatal({ event: 'admin-listen-failed', reason: message }, message);
    logger.flush();
    process.stderr.write(`mtls-gateway: ${message}\n`);
    return 1;
  }
  const watch = new ConfigFileWatch({
    logger,
    pollIntervalMs: 2_000,
    debounceMs: 200,
    onChange: async () => {
      await reload('file-change');
      await watch.setFiles([file, ...filesNamedBy(config)]);
    },
  });
  await watch.start([file, ...filesNamedBy(config)]);

  // The primary's own bound, armed by the stop: one grace after it kills the workers still there.
  let deadline: StopDeadline | null = null;
  const code = await superviseWorkers({
    workers: opts.workers,
    logger,
    onFork: (worker) => serveInit(worker, ticketKeys),
    onSighup: () => {
      logger.info({ event: 'reload-requested', via: 'SIGHUP' }, 'SIGHUP: validating, then reloading every worker');
      void reload('SIGHUP');
    },
    onStopping: () => {
      draining = true;
      deadline = armStopDeadline({ boundMs: stopBoundMs(config.server) + 2 * STOP_GRACE_MS, logger });
    },
    // A worker ends its own stop by stopBoundMs (stop-deadline-timer.ts); one whose event loop is
    // stuck cannot, and is killed STOP_GRACE_MS after that.
    stopTimeoutMs: () => stopBoundMs(config.server) + STOP_GRACE_MS,
    expose: (v) => (view = v),
  });
  watch.stop();
  await admin?.close();
  // Assigned by onStopping, which TypeScript cannot see from here.
  (deadline as StopDeadline | null)?.finished(code);
  return code;
}
