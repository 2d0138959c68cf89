/**
 * The bound on a stop: after SIGTERM or SIGINT a gateway process is gone about
 * `server.drainDelay + server.drainTimeout + STOP_GRACE_MS` later at the latest, whatever holds
 * it. This module owns the timers that enforce it.
 *
 * The drain itself is bounded by server.drainTimeout (src/dataplane/drain.ts cuts what is left).
 * What it does not bound is the rest of the stop: a close that waits on something other than a
 * connection, or a handle that outlives the drain and keeps Node's event loop, and so the process,
 * alive. An orchestrator would SIGKILL such a process at the end of its grace period, and a process
 * supervisor without one (a shell, `docker stop` with a long timeout, the primary of `--workers`)
 * would wait for ever. So each process arms one timer when its stop begins:
 *  - the stop has not finished by the bound: `stop-timeout` (error), exit 1;
 *  - the stop finished, yet something still holds the process STOP_GRACE_MS later (or at the
 *    bound if that comes first, but at least half a second after the stop): `exit-held` (error),
 *    exit with the stop's own code: the drain was complete and nothing was lost, but it is a leak
 *    to fix.
 * Both records name what still held the event loop (`process.getActiveResourcesInfo()`), so the
 * next such hang names its own cause. The primary of `--workers` adds one more STOP_GRACE_MS before
 * it SIGKILLs a worker that is still there (a worker whose event loop is stuck cannot run its own
 * timer): see worker-supervisor.ts.
 *
 * The timer is unref'd: it never keeps a process alive, it only ends one that would not end.
 */
import type { Logger } from 'pino';
import { flushLogSync } from '../log/gateway-logger.js';

/** What a process gets beyond drainDelay + drainTimeout to close and exit. */
export const STOP_GRACE_MS = 3_000;

/** The longest a process's stop may take: drainDelay + drainTimeout + STOP_GRACE_MS. */
export function stopBoundMs(server: { readonly drainDelay: number; readonly drainTimeout: number }): number {
  return server.drainDelay + server.drainTimeout + STOP_GRACE_MS;
}

/** What keeps the event loop alive, by kind and count (`{ Timeout: 1, TCPSocketWrap: 2 }`). */
export function activeResources(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const kind of process.getActiveResourcesInfo()) counts[kind] = (counts[kind] ?? 0) + 1;
  return counts;
}

interface SocketAddressLike {
  address?: string;
  port?: number;
}

/** `address:port` from a libuv handle's getsockname/getpeername, `?` when it has none. */
function handleAddress(get: ((out: SocketAddressLike) => unknown) | undefined, self: unknown): string {
  if (typeof get !== 'function') return '?';
  const a: SocketAddressLike = {};
  get.call(self, a);
  return a.port === undefined ? '?' : `${a.address ?? ''}:${a.port}`;
}

/**
 * The sockets and servers among the handles that keep the event loop alive, as
 * `kind local->remote`, at most 20 (the details `resources` does not give: whose port it is).
 * From `process._getActiveHandles()`, which Node does not document: anything unexpected yields
 * an empty list rather than an error in the middle of a stop.
 */
export function heldSockets(): string[] {
  try {
    const handles = (process as unknown as { _getActiveHandles?: () => unknown[] })._getActiveHandles?.() ?? [];
    const out: string[] = [];
    for (const h of handles) {
      if (out.length >= 20) break;
      const name = (h as { constructor?: { name?: string } })?.constructor?.name ?? typeof h;
      const obj = h as { address?: () => unknown; remotePort?: number; remoteAddress?: string; localPort?: number; localAddress?: string; getsockname?: (o: SocketAddressLike) => unknown; getpeername?: (o: SocketAddressLike) => unknown; fd?: number };
      if (typeof obj.getsockname === 'function') {
        // A libuv handle no JavaScript object owns (a connection node:cluster's primary accepted).
        out.push(`${name} ${handleAddress(obj.getsockname, obj)}->${handleAddress(obj.getpeername, obj)}`);
      } else if (typeof obj.remotePort === 'number' || typeof obj.localPort === 'number') {
        out.push(`${name} ${obj.localAddress ?? ''}:${obj.localPort ?? '?'}->${obj.remoteAddress ?? ''}:${obj.remotePort ?? '?'}`);
      } else if (typeof obj.address === 'function') {
        const a = obj.address() as SocketAddressLike | string | null;
        // A pipe (stdio, node:cluster's channel) has no port: name its handle's kind instead.
        const kind = (h as { _handle?: { constructor?: { name?: string } } })._handle?.constructor?.name ?? 'unbound';
        out.push(`${name} ${a === null || (typeof a === 'object' && a.port === undefined) ? kind : typeof a === 'string' ? a : `${a.address ?? ''}:${a.port}`}`);
      } else {
        out.push(typeof obj.fd === 'number' ? `${name} fd ${obj.fd}` : name);
      }
    }
    return out;
  } catch {
    return [];
  }
}

export interface StopDeadline {
  /** The stop finished with this exit code: from now on, only a held event loop is reported. */
  finished(code: number): void;
}

/**
 * Arms the bound for a stop that starts now. `exit` is process.exit outside tests.
 */
export function armStopDeadline(opts: { boundMs: number; logger: Logger; exit?: (code: number) => void }): StopDeadline {
  const { logger, boundMs } = opts;
  const exit = opts.exit ?? ((code: number) => process.exit(code));
  const started = Date.now();
  let finishedWith: number | null = null;
  const fire = () => {
    const resources = activeResources();
    const sockets = heldSockets();
    if (finishedWith === null) {
      logger.error({ event: 'stop-timeout', afterMs: Date.now() - started, boundMs, resources, sockets }, 'the stop did not finish within drainDelay + drainTimeout + grace; exiting');
      flushLogSync(logger);
      exit(1);
      return;
    }
    logger.error({ event: 'exit-held', afterMs: Date.now() - started, boundMs, code: finishedWith, resources, sockets }, 'the stop finished but something still held the process; exiting');
    flushLogSync(logger);
    exit(finishedWith);
  };
  let timer = setTimeout(fire, boundMs);
  timer.unref();
  return {
    finished(code: number) {
      if (finishedWith !== null) return;
      finishedWith = code;
      // A process whose stop finished exits at once unless a handle holds it: report that within
      // the grace (or what is left of the bound, but not less than half a second).
      const left = boundMs - (Date.now() - started);
      clearTimeout(timer);
      timer = setTimeout(fire, Math.min(STOP_GRACE_MS, Math.max(left, 500)));
      timer.unref();
    },
  };
}
