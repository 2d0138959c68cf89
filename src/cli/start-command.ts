/**
 * `mtls-gateway start`: loads the config, builds the gateway and runs it in the foreground until
 * SIGTERM or SIGINT, then drains in-flight requests (bounded) and exits. With --workers N > 1 the
 * primary forks N node:cluster workers that share the listening port and keeps them serving
 * (worker-supervisor.ts); each worker is an ordinary single-process gateway, and replicas stay
 * stateless.
 */
import cluster from 'node:cluster';
import { pino, type Logger } from 'pino';
import { ConfigError, loadConfig, resolveConfigPath } from '../config/load-config.js';
import type { GatewayConfig } from '../config/schema.js';
import { buildGateway } from '../http/build-gateway.js';
import { cachedIsoTime } from '../log/cached-iso-time.js';
import { superviseWorkers } from './worker-supervisor.js';

const DRAIN_TIMEOUT_MS = 25_000;

function makeLogger(log: GatewayConfig['log']): Logger {
  // An async destination keeps logging off the request's critical path. Lines are buffered up to
  // log.bufferBytes and written at least every log.flushInterval (like Envoy's access-log flush)
  // instead of one thread-pool write per line: at 4 KiB, strace counted about nine access records
  // per write. The buffer is flushed synchronously on exit.
  return pino(
    { level: log.level, base: { pid: process.pid }, timestamp: cachedIsoTime(), formatters: { level: (label) => ({ level: label }) } },
    pino.destination({ dest: 1, sync: false, minLength: log.bufferBytes, ...(log.bufferBytes > 0 ? { periodicFlush: log.flushInterval } : {}) }),
  );
}

export async function runStart(opts: { configFlag: string | undefined; workers: string | undefined }): Promise<number> {
  const file = resolveConfigPath(opts.configFlag, process.env, process.cwd());
  if (file === null) {
    process.stderr.write('mtls-gateway start: no config file (pass --config FILE or set MTLS_GATEWAY_CONFIG)\n');
    return 2;
  }
  const workers = opts.workers === undefined ? 1 : Number(opts.workers);
  if (!Number.isInteger(workers) || workers < 1 || workers > 64) {
    process.stderr.write(`mtls-gateway start: --workers must be a whole number from 1 to 64 (got "${opts.workers}")\n`);
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
  const logger = makeLogger(loaded.config.log);
  if (workers > 1 && cluster.isPrimary) return superviseWorkers({ workers, logger });
  return runWorker(loaded.config, file, logger);
}

async function runWorker(config: Awaited<ReturnType<typeof loadConfig>>['config'], file: string, logger: Logger): Promise<number> {
  let gateway;
  try {
    gateway = await buildGateway({ config, logger });
  } catch (err) {
    const e = err as { code?: string; message?: string; issues?: { path: string; message: string }[] };
    logger.fatal({ code: e.code, issues: e.issues }, `startup failed: ${e.message}`);
    logger.flush();
    process.stderr.write(`mtls-gateway: ${e.message}\n`);
    if (e.issues) for (const i of e.issues) process.stderr.write(`  ${i.path}: ${i.message}\n`);
    // The primary counts startup failures by exit code, and a cluster worker's IPC channel would
    // keep it alive (disconnecting would exit 0). pino flushes its buffer on exit.
    if (cluster.isWorker) process.exit(1);
    return 1;
  }
  const address = await gateway.listen();
  logger.info({ event: 'listening', address: address.address, port: address.port, config: file, routes: config.routes.length, upstreams: Object.keys(config.upstreams) }, 'gateway listening');
  // Startup lines go out at once rather than with the first buffer.
  logger.flush();

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      logger.info({ event: 'draining', signal }, 'stopping: refusing new connections, draining in-flight requests');
      const force = setTimeout(() => {
        logger.warn({ event: 'drain-timeout', afterMs: DRAIN_TIMEOUT_MS }, 'drain timed out; closing remaining connections');
        gateway.app.server.closeAllConnections();
      }, DRAIN_TIMEOUT_MS);
      force.unref();
      gateway.close().then(
        () => {
          clearTimeout(force);
          logger.info({ event: 'stopped' }, 'gateway stopped');
          logger.flush();
          // A cluster worker's IPC channel would keep it alive after the server closed.
          if (cluster.isWorker) process.disconnect();
          resolve(0);
        },
        (err: unknown) => {
          logger.error({ err }, 'error while stopping');
          logger.flush();
          resolve(1);
        },
      );
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', () => {
      // CRLs reload now; certificates, CAs and policy still need a restart.
      logger.info({ event: 'reload', signal: 'SIGHUP' }, 'SIGHUP: re-reading every CRL source (certificates, CAs and policy need a restart)');
      gateway.reload('SIGHUP').catch((err: unknown) => logger.error({ err }, 'reload failed; the last good state stays in force'));
    });
  });
}
