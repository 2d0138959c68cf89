/**
 * The admin listener: plain HTTP, on loopback by default (admin.listen), for probes, Prometheus
 * and operators. Five endpoints and nothing else:
 *
 *   GET  /healthz  200 while the process and its event loop are alive
 *   GET  /readyz   200 when ready to take traffic, else 503 with the reasons
 *   GET  /metrics  Prometheus text exposition
 *   GET  /status   JSON of what is in force
 *   POST /reload   validate-then-swap reload; 200 on success, 422 on failure
 *
 * It is a separate node:http server, not a route on the data plane: its answers never depend on a
 * client certificate, and nothing on the data-plane port can reach it. Requests are small and
 * bounded (head size, time, no body beyond a few bytes); any other method or path gets 405 or 404.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';

export interface AdminReadiness {
  readonly ready: boolean;
  readonly reasons: readonly string[];
}

export interface AdminReloadResult {
  readonly result: 'success' | 'failure';
  readonly generation: number;
  readonly error?: { readonly code: string; readonly message: string; readonly key?: string | null };
}

/** What the admin endpoints read and do: one gateway, or the primary speaking for its workers. */
export interface AdminBackend {
  readiness(): AdminReadiness | Promise<AdminReadiness>;
  status(): unknown;
  metrics(): Promise<{ readonly contentType: string; readonly body: string }>;
  reload(trigger: string): Promise<AdminReloadResult>;
}

/** admin.tls: HTTPS, and who may use the endpoints that are not probes (src/admin/admin-tls.ts). */
export interface AdminTls {
  readonly cert: string;
  readonly key: string;
  readonly ca: readonly string[];
  authorize(socket: TLSSocket): { readonly ok: true } | { readonly ok: false; readonly status: 401 | 403; readonly reason: string };
}

export interface AdminServerOptions {
  readonly host: string;
  readonly port: number;
  readonly backend: AdminBackend;
  readonly logger: Logger;
  /** Serve over HTTPS; /metrics, /status and POST /reload then need an admitted client certificate. */
  readonly tls?: AdminTls | null;
}

/** Open to anyone who reaches the listener, also with admin.tls: probes carry no certificate. */
const PROBES = new Set(['/healthz', '/readyz']);

/** A POST /reload may carry at most this much body (it is ignored). */
const MAX_BODY_BYTES = 1024;

const ROUTES: Readonly<Record<string, readonly string[]>> = {
  '/healthz': ['GET', 'HEAD'],
  '/readyz': ['GET', 'HEAD'],
  '/metrics': ['GET', 'HEAD'],
  '/status': ['GET', 'HEAD'],
  '/reload': ['POST'],
};

function send(res: ServerResponse, status: number, body: string, contentType: string, extra: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, {
    'content-type': contentType,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    ...extra,
  });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

function json(res: ServerResponse, status: number, value: unknown, extra?: Record<string, string>): void {
  send(res, status, JSON.stringify(value) + '\n', 'application/json; charset=utf-8', extra);
}

/** Reads (and discards) a small request body; false when it is too large. */
function drainSmallBody(req: IncomingMessage): Promise<boolean> {
  return new Promise((resolve) => {
    let size = 0;
    let done = false;
    const finish = (ok: boolean) => {
      if (done) return;
      done = true;
      resolve(ok);
    };
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        req.pause();
        finish(false);
      }
    });
    req.once('end', () => finish(true));
    req.once('error', () => finish(false));
    req.once('close', () => finish(size <= MAX_BODY_BYTES));
  });
}

export class AdminServer {
  readonly server: Server;
  readonly #opts: AdminServerOptions;

  constructor(opts: AdminServerOptions) {
    this.#opts = opts;
    const limits = { maxHeaderSize: 8192, requestTimeout: 10_000, headersTimeout: 5_000, keepAliveTimeout: 5_000 };
    const listener = (req: IncomingMessage, res: ServerResponse) => {
      this.#handle(req, res).catch((err: unknown) => {
        opts.logger.error({ event: 'admin-request-failed', err, path: req.url }, 'admin request failed');
        json(res, 500, { error: { code: 'GW_ERR_INTERNAL', message: 'The admin request failed.' } });
      });
    };
    const tls = opts.tls ?? null;
    // With TLS, a client certificate is requested but the handshake never fails for lack of one,
    // so probes get their answer; every other endpoint checks it per request.
    this.server = tls
      ? createHttpsServer({ ...limits, cert: tls.cert, key: tls.key, ca: [...tls.ca], requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2', handshakeTimeout: 5_000 }, listener)
      : createServer(limits, listener);
    this.server.maxHeadersCount = 50;
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
      // A request still being answered on this connection (pipelined garbage after it) gets its
      // own answer or nothing: a 400 written first would claim it failed.
      const pending = (socket as { _httpMessage?: unknown })._httpMessage;
      if (!socket.writable || pending) {
        socket.destroy();
        return;
      }
      const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request';
      socket.end(`HTTP/1.1 ${status}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
    });
  }

  listen(): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.#opts.port, this.#opts.host, () => {
        this.server.off('error', reject);
        resolve(this.server.address() as AddressInfo);
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { backend, logger } = this.#opts;
    // Only the path counts; a query string is ignored. Anything but an origin-form target is 404.
    const target = req.url ?? '';
    const path = target.startsWith('/') ? target.split('?', 1)[0]! : '';
    const methods = Object.hasOwn(ROUTES, path) ? ROUTES[path]! : null;
    if (methods === null) return json(res, 404, { error: { code: 'not-found', message: 'Unknown admin endpoint. Try /healthz, /readyz, /metrics, /status or POST /reload.' } });
    if (!methods.includes(req.method ?? '')) {
      return json(res, 405, { error: { code: 'method-not-allowed', message: `Use ${methods.join(' or ')}.` } }, { allow: methods.join(', ') });
    }
    const tls = this.#opts.tls ?? null;
    if (tls !== null && !PROBES.has(path)) {
      const verdict = tls.authorize(req.socket as TLSSocket);
      if (!verdict.ok) {
        logger.warn({ event: 'admin-refused', path, status: verdict.status, reason: verdict.reason, peer: req.socket.remoteAddress }, 'admin request refused');
        return json(res, verdict.status, { error: { code: verdict.status === 401 ? 'client-certificate-required' : 'forbidden', message: verdict.status === 401 ? 'A client certificate admitted by admin.allow is required.' : 'This identity may not use the admin endpoints.' } }, { connection: 'close' });
      }
    }
    switch (path) {
      case '/healthz':
        return json(res, 200, { status: 'ok' });
      case '/readyz': {
        const r = await backend.readiness();
        return json(res, r.ready ? 200 : 503, { ready: r.ready, reasons: r.reasons });
      }
      case '/metrics': {
        const m = await backend.metrics();
        return send(res, 200, m.body, m.contentType);
      }
      case '/status':
        return json(res, 200, await backend.status());
      case '/reload': {
        if (!(await drainSmallBody(req))) {
          json(res, 413, { error: { code: 'body-too-large', message: `POST /reload takes no body (at most ${MAX_BODY_BYTES} bytes are read).` } }, { connection: 'close' });
          return;
        }
        logger.info({ event: 'reload-requested', via: 'admin', peer: req.socket.remoteAddress }, 'reload requested on the admin listener');
        const r = await backend.reload('admin');
        return json(res, r.result === 'success' ? 200 : 422, r);
      }
    }
  }
}
