/**
 * The drain (SIGTERM, SIGINT): the listener keeps serving for server.drainDelay while readiness
 * already says 503 (load balancers and Kubernetes endpoints stop sending), then stops accepting.
 * Idle keep-alive connections close at once; a connection busy with a request closes right after
 * its response (`Connection: close`); requests still arriving on an open connection are served the
 * same way. An HTTP/2 connection gets GOAWAY: no new streams, the ones in flight finish, then it
 * closes. As soon as no connection is left the drain is over; after server.drainTimeout whatever
 * is left is cut, connections still in their TLS handshake included. The delay and the timeout are
 * this module's timers.
 */
import type { ServerResponse } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Logger } from 'pino';
import type { ConnectionRegistry } from './connection-registry.js';
import type { Http1Handler } from './http1-handler.js';
import { closeSessionGracefully } from './http2-sessions.js';
import { leanExchangeOn } from './lean-exchange.js';

export interface DrainOptions {
  readonly server: HttpsServer;
  readonly registry: ConnectionRegistry;
  readonly handler: Http1Handler;
  readonly logger: Logger;
  readonly delayMs: number;
  readonly timeoutMs: number;
  /** Stops accepting and releases everything; resolves once every connection has closed. */
  readonly close: () => Promise<void>;
}

/** The response a socket is busy with, if any (Node keeps it as `_httpMessage`). */
function responseOn(socket: object): ServerResponse | null {
  return (socket as { _httpMessage?: ServerResponse | null })._httpMessage ?? null;
}

export async function drainListener(opts: DrainOptions): Promise<void> {
  const { server, registry, handler, logger } = opts;
  if (opts.delayMs > 0) await new Promise((r) => setTimeout(r, opts.delayMs));
  const started = Date.now();
  handler.startDraining();
  // Busy connections close after their response: before it started, by not keeping it alive;
  // once it is on the wire, when it finishes.
  let busy = 0;
  for (const socket of registry.sockets()) {
    const session = registry.sessionOf(socket);
    if (session !== undefined) {
      if (!session.destroyed && !session.closed) busy++;
      closeSessionGracefully(session);
      continue;
    }
    const res = responseOn(socket);
    if (res === null) {
      // A lean exchange (server.engine: lean) answers without node:http's response object.
      const lean = leanExchangeOn(socket);
      if (lean === undefined) continue;
      busy++;
      lean.closeAfter();
      continue;
    }
    busy++;
    if (!res.headersSent) res.shouldKeepAlive = false;
    else res.once('finish', () => socket.end());
  }
  logger.info({ event: 'drain-started', connections: registry.size, busy }, 'listener closed to new connections; in-flight requests finish');
  const force = setTimeout(() => {
    logger.warn({ event: 'drain-timeout', afterMs: opts.timeoutMs, connections: registry.size }, 'drain timed out; closing remaining connections');
    // node:http2's server has no closeAllConnections; the registry holds every connection.
    server.closeAllConnections?.();
    for (const socket of registry.sockets()) socket.destroy();
    // Connections still in their TLS handshake (a client that connected and sent nothing yet).
    for (const socket of registry.transports()) socket.destroy();
  }, opts.timeoutMs);
  force.unref();
  try {
    await opts.close();
  } finally {
    clearTimeout(force);
  }
  logger.info({ event: 'drained', durationMs: Date.now() - started }, 'drain complete');
}
