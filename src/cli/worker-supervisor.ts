/**
 * The node:cluster primary of `start --workers N`: keeps N workers serving until SIGTERM or SIGINT.
 *
 * A worker that dies after it was serving is replaced, for as long as the primary runs, with a
 * back-off per worker slot. Giving up on serving workers would hand anyone who can crash a worker
 * with a request a way to close the port for good (a remote denial of service), so the only reason
 * to give up is a worker that exits with an error before it listens: that is a broken config or
 * file, and when as many workers as there are slots fail that way in a row with no worker serving,
 * the primary logs `workers-failing` and exits 1 instead of looping.
 */
import cluster, { type Worker } from 'node:cluster';
import type { Logger } from 'pino';

/**
 * Replacement delay: RESTART_BASE_MS after the first crash in a slot, doubling with each further
 * crash of a short-lived worker in that slot up to RESTART_MAX_MS. The first replacement is almost
 * immediate (an isolated crash costs one startup); the cap bounds the fork-and-load work a crash
 * loop can cost the host (one startup per slot every 10 s) while keeping the port's worst-case gap
 * after the cause goes away to about ten seconds.
 */
export const RESTART_BASE_MS = 100;
export const RESTART_MAX_MS = 10_000;
/** A worker that was serving at least this long resets its slot's back-off. */
export const RESTART_RESET_AFTER_MS = 30_000;

export function restartDelayMs(attempt: number): number {
  return Math.min(RESTART_MAX_MS, RESTART_BASE_MS * 2 ** attempt);
}

interface Slot {
  readonly index: number;
  /** Crashes of short-lived workers in a row: the exponent of the next delay. */
  attempt: number;
  worker: Worker | null;
  /** When the current worker reported listening; null while it starts. */
  servingSince: number | null;
  restartTimer: NodeJS.Timeout | null;
}

export interface SuperviseOptions {
  workers: number;
  logger: Logger;
  /** Defaults to cluster.fork. */
  fork?: () => Worker;
  now?: () => number;
  /** Each new worker, right after it was forked (the primary hands it the shared ticket keys). */
  onFork?: (worker: Worker) => void;
  /** SIGHUP: by default forwarded to every serving worker. */
  onSighup?: () => void;
  /** SIGTERM or SIGINT arrived; the workers are being stopped. */
  onStopping?: (signal: NodeJS.Signals) => void;
  /**
   * How long the workers may take to stop once they were sent SIGTERM; then those still there are
   * SIGKILLed (`worker-stop-timeout`) and the primary exits 1. Read when the stop begins (a reload
   * may have changed the drain settings). Without it, the primary waits as long as they take.
   */
  stopTimeoutMs?: () => number;
  /** Receives the supervisor's view of its workers once they are being started. */
  expose?: (view: SupervisorView) => void;
}

export interface SupervisorView {
  /** Workers that reported listening and have not exited. */
  serving(): Worker[];
  readonly slots: number;
}

/** Forks the workers and resolves with the process exit code once the last one is gone. */
export function superviseWorkers(opts: SuperviseOptions): Promise<number> {
  const { workers, logger } = opts;
  const fork = opts.fork ?? (() => cluster.fork());
  const now = opts.now ?? Date.now;
  const slots: Slot[] = Array.from({ length: workers }, (_, index) => ({ index, attempt: 0, worker: null, servingSince: null, restartTimer: null }));
  const live = new Set<Worker>();
  // Workers that exited with an error before listening, in a row; any worker that listens resets it.
  let startupFailures = 0;
  let stopping = false;
  let exitCode = 0;
  let stopTimer: NodeJS.Timeout | null = null;

  return new Promise<number>((resolve) => {
    const finishIfEmpty = () => {
      if (live.size > 0) return;
      if (stopTimer) clearTimeout(stopTimer);
      logger.flush();
      resolve(exitCode);
    };

    const stopAll = () => {
      stopping = true;
      for (const slot of slots) {
        if (slot.restartTimer) clearTimeout(slot.restartTimer);
        slot.restartTimer = null;
      }
      for (const w of live) w.process.kill('SIGTERM');
      const boundMs = opts.stopTimeoutMs?.();
      if (boundMs !== undefined && live.size > 0) {
        // Unref'd: the workers' exits keep the primary alive until then, and only they matter.
        stopTimer = setTimeout(() => {
          for (const w of live) {
            const slot = slots.find((s) => s.worker === w);
            logger.error({ event: 'worker-stop-timeout', worker: w.process.pid, slot: slot?.index ?? null, afterMs: boundMs }, 'worker did not exit after SIGTERM within the stop bound; killing it');
            w.process.kill('SIGKILL');
          }
          exitCode = 1;
          logger.flush();
        }, boundMs);
        stopTimer.unref();
      }
      finishIfEmpty();
    };

    const start = (slot: Slot) => {
      slot.restartTimer = null;
      const worker = fork();
      opts.onFork?.(worker);
      slot.worker = worker;
      slot.servingSince = null;
      live.add(worker);
      // cluster reports every server a worker starts listening on: the gateway has one listener,
      // and it listens only after its config, certificates and CRLs loaded.
      worker.once('listening', () => {
        slot.servingSince = now();
        startupFailures = 0;
      });
      worker.once('exit', (code: number | null, signal: NodeJS.Signals | null) => onExit(slot, worker, code, signal));
      // node:cluster emits a failed send or kill on the Worker; unhandled, it would end the primary
      // and every worker with it. The worker's own exit, if it is going, is reported by onExit.
      worker.on('error', (err: Error) => {
        logger.warn({ event: 'worker-channel-error', worker: worker.process.pid, slot: slot.index, reason: err.message }, 'a message to or a signal for a worker failed');
      });
    };

    const onExit = (slot: Slot, worker: Worker, code: number | null, signal: NodeJS.Signals | null) => {
      live.delete(worker);
      if (slot.worker === worker) slot.worker = null;
      const pid = worker.process.pid;
      if (stopping) {
        logger.info({ event: 'worker-exited', worker: pid, slot: slot.index, code, signal }, 'worker exited');
        finishIfEmpty();
        return;
      }
      const serving = slot.servingSince !== null;
      const servedMs = slot.servingSince === null ? 0 : now() - slot.servingSince;
      slot.servingSince = null;
      logger.error({ event: 'worker-exited', worker: pid, slot: slot.index, code, signal, serving, servedMs }, serving ? 'worker exited while serving' : 'worker exited during startup');
      if (serving) {
        if (servedMs >= RESTART_RESET_AFTER_MS) slot.attempt = 0;
      } else if (code !== null && code !== 0) {
        // A worker that could not start (exit 1: config, certificate, key or CRL refused). A signal
        // during startup (an operator, the OOM killer) says nothing about the config: it is only
        // replaced, with the back-off.
        startupFailures++;
        const anyServing = slots.some((s) => s.worker !== null && s.servingSince !== null);
        if (startupFailures >= workers && !anyServing) {
          // As many startup failures in a row as there are slots, and nothing serves: the config or
          // its files are broken, and a restart would fail the same way.
          logger.fatal({ event: 'workers-failing', startupFailures }, 'workers keep failing at startup; stopping');
          exitCode = 1;
          stopAll();
          return;
        }
      }
      const delayMs = restartDelayMs(slot.attempt);
      slot.attempt++;
      logger.warn({ event: 'worker-restart', slot: slot.index, delayMs, attempt: slot.attempt }, `replacing worker in ${delayMs} ms`);
      logger.flush();
      // Not unref'd: while every worker is down, this timer is what keeps the primary alive.
      slot.restartTimer = setTimeout(() => start(slot), delayMs);
    };

    const stop = (signal: NodeJS.Signals) => {
      if (stopping) {
        logger.info({ event: 'signal-while-stopping', signal }, 'already stopping workers');
        return;
      }
      logger.info({ event: 'draining', signal }, 'stopping workers');
      opts.onStopping?.(signal);
      stopAll();
    };
    // Only serving workers have a SIGHUP handler; a starting one would die of the signal (and it
    // reads every CRL as it starts anyway).
    const forwardSighup = () => {
      for (const slot of slots) if (slot.worker && slot.servingSince !== null) slot.worker.process.kill('SIGHUP');
    };
    const onSighup = opts.onSighup ?? forwardSighup;
    opts.expose?.({
      serving: () => slots.filter((s) => s.worker !== null && s.servingSince !== null && !stopping).map((s) => s.worker!),
      slots: workers,
    });
    // Kept for the whole stop (see start-command.ts): a repeated signal must not kill the primary
    // while its workers drain.
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', onSighup);

    for (const slot of slots) start(slot);
    logger.info({ event: 'primary-started', workers }, 'started workers');
    logger.flush();
  });
}
