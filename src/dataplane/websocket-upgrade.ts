/**
 * WebSocket upgrades: the server's 'upgrade' listener. An upgrade request is judged exactly like
 * any other request (the same admit(): certificate, validity, revocation, framing, path, Host,
 * policy) before a byte goes upstream; a refusal gets the gateway's usual JSON answer and the
 * connection closes. Then the handshake's own shape (one `Upgrade: websocket`, GET, HTTP/1.1, no
 * body, a valid Sec-WebSocket-Key), the route's rate limit and the upstream's limits; only then
 * does src/proxy/upstream-tunnel.ts open the gateway's own mTLS connection to one target and
 * relay the upstream's answer. One access record per upgrade, when its tunnel closes. Open
 * tunnels end with their client connection, so the connection registry's closing of a revoked
 * client, or of one whose CA left the bundle, closes the tunnel too. docs/websocket.md.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import type { ErrorCode } from '../errors/registry.js';
import { buildUpstreamRequestHeaders } from '../proxy/forward-headers.js';
import { rateLimitKeyOf } from '../proxy/route-forwarding.js';
import { translateUpstreamError } from '../proxy/upstream-errors.js';
import type { Upstream } from '../proxy/upstream-pool.js';
import type { UpstreamTarget } from '../proxy/upstream-target.js';
import { openTunnel, type Tunnel } from '../proxy/upstream-tunnel.js';
import { requestIdFor } from '../request/request-id.js';
import type { Runtime } from '../runtime/runtime.js';
import type { RuntimeSnapshot } from '../runtime/snapshot.js';
import type { GatewayMetrics } from '../telemetry/metrics.js';
import { admit, type Admission, type Forward } from './admit.js';
import { connectionFacts, MAX_REVOCATION_WAITS, revocationPending, type ConnectionFacts } from './connection-context.js';
import { requestHead } from './http1-request.js';
import { elapsedMs, revocationLog, refusalDecision } from './log-records.js';
import { respondErrorOnSocket } from './respond-error.js';

/** What is wrong with an admitted upgrade request as a WebSocket opening handshake (RFC 6455 4.1). */
export interface HandshakeProblem {
  readonly code: Extract<ErrorCode, 'GW_ERR_UPGRADE_INVALID' | 'GW_ERR_UPGRADE_NOT_SUPPORTED'>;
  readonly reason: string;
}

/** A Sec-WebSocket-Key is 16 random bytes in base64 (RFC 6455 4.1, item 7). */
const WEBSOCKET_KEY = /^[A-Za-z0-9+/]{21}[AQgw]==$/;

/** All values of one header (lower-case name) in a request's raw header list. */
function headerValues(rawHeaders: readonly string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i]!.length === name.length && rawHeaders[i]!.toLowerCase() === name) out.push(rawHeaders[i + 1]!);
  return out;
}

/**
 * Pure: whether the request is a WebSocket opening handshake the gateway tunnels. Any other
 * Upgrade token (h2c, TLS/1.0, ...) is not supported; an ambiguous or malformed one is invalid.
 * Sec-WebSocket-Version, -Protocol and -Extensions are the upstream's to judge (it answers 426
 * to a version it does not speak) and pass unchanged.
 */
export function handshakeProblem(req: Pick<IncomingMessage, 'method' | 'httpVersionMajor' | 'httpVersionMinor' | 'rawHeaders'>): HandshakeProblem | null {
  const raw = req.rawHeaders;
  const tokens = headerValues(raw, 'upgrade').flatMap((v) => v.split(',')).map((t) => t.trim().toLowerCase()).filter((t) => t !== '');
  if (tokens.length !== 1 || headerValues(raw, 'upgrade').length !== 1) return { code: 'GW_ERR_UPGRADE_INVALID', reason: 'upgrade-ambiguous' };
  if (tokens[0] !== 'websocket') return { code: 'GW_ERR_UPGRADE_NOT_SUPPORTED', reason: 'upgrade-protocol' };
  if (req.httpVersionMajor !== 1 || req.httpVersionMinor !== 1) return { code: 'GW_ERR_UPGRADE_INVALID', reason: 'http-version' };
  if (req.method !== 'GET') return { code: 'GW_ERR_UPGRADE_INVALID', reason: 'method' };
  // A body would be bytes the upstream reads as the start of the WebSocket stream.
  const length = headerValues(raw, 'content-length');
  if (headerValues(raw, 'transfer-encoding').length > 0 || length.length > 1 || (length.length === 1 && length[0]!.trim() !== '0')) return { code: 'GW_ERR_UPGRADE_INVALID', reason: 'body' };
  const key = headerValues(raw, 'sec-websocket-key');
  if (key.length !== 1 || !WEBSOCKET_KEY.test(key[0]!.trim())) return { code: 'GW_ERR_UPGRADE_INVALID', reason: 'sec-websocket-key' };
  return null;
}

function noop(): void {}

/**
 * The gateway's answer on an upgraded socket, which the HTTP server no longer manages: after the
 * answer is flushed the socket is destroyed, so a client that never closes its side (the server's
 * sockets allow half-open) cannot keep it.
 */
function answerAndClose(client: Socket, code: ErrorCode, requestId: string): number {
  const status = respondErrorOnSocket(client, code, requestId);
  client.destroySoon();
  return status;
}

export class WebSocketUpgrades {
  readonly #runtime: Runtime;
  readonly #logger: Logger;
  readonly #metrics: GatewayMetrics;
  readonly #open = new Set<Tunnel>();
  /** Open tunnels per upstream fleet: they count against its limits.maxRequests. */
  readonly #perUpstream = new WeakMap<Upstream, number>();
  #accepting = true;

  constructor(runtime: Runtime, logger: Logger, metrics: GatewayMetrics) {
    this.#runtime = runtime;
    this.#logger = logger;
    this.#metrics = metrics;
  }

  /**
   * The listener is closing: later upgrades get 503 GW_ERR_SHUTTING_DOWN. `cut`: also close the
   * open tunnels now (a close without a drain); a drain leaves them to the drain's deadline.
   */
  stop(cut: boolean): void {
    this.#accepting = false;
    if (cut) for (const tunnel of this.#open) tunnel.cut('shutdown');
  }

  /** The server's 'upgrade' listener. Nothing thrown here may reach the event loop. */
  readonly onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer, waits = 0): void => {
    const client = socket as TLSSocket;
    // Node hands the socket over without listeners: an error with none would end the process.
    if (waits === 0) client.on('error', noop);
    let requestId = '';
    try {
      requestId = requestIdFor(req.headers['x-request-id']);
      if (!this.#accepting) {
        this.#logger.info({ reqId: requestId, method: req.method, websocket: true, status: 503, code: 'GW_ERR_SHUTTING_DOWN' }, 'request refused');
        answerAndClose(client, 'GW_ERR_SHUTTING_DOWN', requestId);
        this.#metrics.request('', 'refused', 503, 0);
        return;
      }
      const snapshot = this.#runtime.current;
      const started = process.hrtime.bigint();
      const connection = connectionFacts(snapshot, client, this.#logger);
      // As for any request: judged again once the certificate's OCSP lookup settles.
      const pending = waits < MAX_REVOCATION_WAITS ? revocationPending(connection) : null;
      if (pending !== null) {
        const again = () => {
          if (!client.destroyed) this.onUpgrade(req, socket, head, waits + 1);
        };
        pending.then(again, again);
        return;
      }
      const a = admit(snapshot, connection, requestHead(req));
      if (a.kind !== 'forward') return this.#refuse(req, client, a, connection, requestId, started);
      const problem = handshakeProblem(req);
      if (problem !== null) {
        const status = answerAndClose(client, problem.code, requestId);
        a.context.log.info({ reqId: requestId, method: req.method, websocket: true, status, code: problem.code, reason: problem.reason, route: a.route, durationMs: elapsedMs(started) }, 'request refused');
        this.#metrics.request(a.route, 'refused', status, elapsedMs(started) / 1000);
        return;
      }
      this.#tunnel(snapshot, req, client, head, a, requestId, started).catch((err: unknown) => this.#internalFailure(client, requestId, err));
    } catch (err) {
      this.#internalFailure(client, requestId || randomUUID(), err);
    }
  };

  /** The refusal record and answer of admit(), as for any request; the connection closes. */
  #refuse(req: IncomingMessage, client: Socket, a: Exclude<Admission, { kind: 'forward' }>, connection: ConnectionFacts, requestId: string, started: bigint): void {
    if (a.kind === 'refuse-connection') {
      const v = a.verdict;
      this.#logger.info(
        { reqId: requestId, method: req.method, websocket: true, status: 401, code: v.code, reason: v.reason, peer: { address: client.remoteAddress, subject: v.peerSubject, serial: v.peerSerial } },
        'request refused',
      );
      answerAndClose(client, v.code, requestId);
      this.#metrics.request('', 'refused', 401, elapsedMs(started) / 1000);
      return;
    }
    const log = a.context.log;
    if (a.revocation !== undefined) {
      const resumed = connection.ok ? connection.verdict.resumed : undefined;
      log.warn({ event: 'client-revoked', code: a.code, when: 'request', reqId: requestId, resumed, peer: { address: client.remoteAddress }, ...revocationLog(a.revocation) }, 'request refused by revocation');
    }
    const status = answerAndClose(client, a.code, requestId);
    this.#metrics.request(typeof a.fields['route'] === 'string' ? a.fields['route'] : '', refusalDecision(a.code), status, elapsedMs(started) / 1000);
    log.info({ reqId: requestId, method: req.method, websocket: true, status, code: a.code, durationMs: elapsedMs(started), ...a.fields }, 'request refused');
  }

  async #tunnel(snapshot: RuntimeSnapshot, req: IncomingMessage, client: TLSSocket, head: Buffer, a: Forward, requestId: string, started: bigint): Promise<void> {
    const { upstream, forwarding } = a;
    const log = a.context.log;
    const metrics = this.#metrics;
    const upstreamPath = forwarding.rewrite === null ? a.path : forwarding.rewrite(a.path);
    const access = {
      reqId: requestId,
      method: a.method,
      path: a.path,
      ...(upstreamPath !== a.path ? { upstreamPath } : {}),
      websocket: true,
      route: a.route,
      rule: a.rule,
      upstream: upstream.name,
      decision: a.decision,
      ...(a.audit !== null ? { audit: a.audit } : {}),
    };
    const refuse = (code: ErrorCode, fields: Record<string, unknown>) => {
      log.warn({ ...access, code, durationMs: elapsedMs(started), ...fields }, code === 'GW_ERR_RATE_LIMITED' ? 'request refused' : 'upstream failed');
      const status = client.destroyed ? 499 : answerAndClose(client, code, requestId);
      if (code !== 'GW_ERR_RATE_LIMITED') metrics.upstreamError(upstream.name, code);
      metrics.request(a.route, a.decision, status, elapsedMs(started) / 1000);
    };
    const rate = forwarding.rateLimit;
    if (rate !== null && rate.limiter.take(rateLimitKeyOf(a.context.identity, rate.key), Date.now()) > 0) {
      metrics.rateLimited(a.route);
      return refuse('GW_ERR_RATE_LIMITED', { key: rate.key });
    }
    // Tunnels take no slot of the gate (they never use a pooled connection) but count as
    // outstanding requests, Envoy's max_requests: a burst of upgrades cannot open without bound.
    const gate = upstream.gate;
    const tunnels = this.#perUpstream.get(upstream) ?? 0;
    if (tunnels + gate.active + gate.waiting >= upstream.limits.maxRequests) {
      metrics.upstreamRejected(upstream.name, 'max-requests');
      return refuse('GW_ERR_UPSTREAM_OVERLOADED', { reason: 'max-requests', tunnels, active: gate.active, waiting: gate.waiting });
    }
    this.#perUpstream.set(upstream, tunnels + 1);
    // The fleet stays open for the tunnel's life even if a reload retires it meanwhile.
    const unhold = upstream.hold();
    try {
      const send = forwarding.identityHeaders;
      const headers = buildUpstreamRequestHeaders(req.rawHeaders, {
        filter: snapshot.requests.headerFilter,
        clientAddress: client.remoteAddress ?? '',
        originalHost: req.headers.host ?? null,
        requestId,
        xfcc: send.xfcc ? a.context.xfcc : null,
        clientCert: send.clientCert ? a.context.rfc9440.clientCert : null,
        clientCertChain: send.clientCertChain ? a.context.rfc9440.clientCertChain : null,
      });
      headers.push('connection', 'Upgrade', 'upgrade', 'websocket');
      const fixedHost = forwarding.host === 'servername' ? upstream.servername : forwarding.host === 'preserve' ? (req.headers.host ?? null) : null;
      const responseTimeout = forwarding.responseTimeout;
      let handshakeMs = 0;
      let tried: Set<UpstreamTarget> | null = null;
      let last: { error: unknown; target: UpstreamTarget } | null = null;
      for (;;) {
        const target = upstream.pick(tried);
        if (target === undefined) {
          if (last === null) {
            const reason = upstream.size === 0 ? 'no-targets' : 'all-down';
            metrics.upstreamRejected(upstream.name, reason);
            return refuse('GW_ERR_UPSTREAM_UNAVAILABLE', { reason, targets: upstream.size });
          }
          return this.#failWith(refuse, upstream, last.error, last.target);
        }
        target.active++;
        let tunnel: Tunnel | null = null;
        try {
          tunnel = openTunnel(
            client,
            target,
            {
              path: upstreamPath + a.query,
              headers: [...headers, 'host', fixedHost ?? target.authority],
              requestId,
              responseTimeout: responseTimeout ?? target.settings.responseTimeout,
              idleTimeout: forwarding.tunnelIdleTimeout,
              clientHead: head,
              notAfter: a.context.identity.notAfter.getTime(),
            },
            () => {
              upstream.succeeded(target);
              handshakeMs = elapsedMs(started);
              // Counted when the 101 goes out, with the handshake's duration: a tunnel's life is
              // not a request latency and would swamp the route's duration histogram.
              metrics.request(a.route, a.decision, 101, handshakeMs / 1000);
              log.debug({ ...access, event: 'websocket-opened', target: target.origin, handshakeMs }, 'websocket tunnel opened');
            },
          );
          this.#open.add(tunnel);
          const o = await tunnel.result;
          if (o.kind === 'client-left' || (o.kind === 'failed' && client.destroyed)) {
            log.info({ ...access, target: target.origin, status: 499, clientAborted: true, durationMs: elapsedMs(started) }, 'request');
            metrics.request(a.route, a.decision, 499, elapsedMs(started) / 1000);
            return;
          }
          if (o.kind === 'failed') {
            upstream.failed(target);
            last = { error: o.error, target };
            // A connection that was never made cost the target nothing: try the next one, as
            // plain requests do for connect failures.
            if (!o.sent && upstream.retries.on.has('connect-failure')) {
              (tried ??= new Set()).add(target);
              metrics.upstreamRetry(upstream.name, 'connect-failure');
              continue;
            }
            return this.#failWith(refuse, upstream, o.error, target);
          }
          if (o.kind === 'answered') {
            if (o.status >= 500) upstream.failed(target);
            else upstream.succeeded(target);
            log.info({ ...access, target: target.origin, status: o.status, bytesOut: o.bytesOut, durationMs: elapsedMs(started), ...(o.cut !== null ? { cut: o.cut } : {}) }, 'request');
            metrics.request(a.route, a.decision, o.status, elapsedMs(started) / 1000);
            return;
          }
          log.info(
            { ...access, target: target.origin, status: 101, bytesIn: o.bytesIn, bytesOut: o.bytesOut, closedBy: o.closedBy, reason: o.reason, handshakeMs, durationMs: elapsedMs(started) },
            'request',
          );
          return;
        } finally {
          target.active--;
          if (tunnel !== null) this.#open.delete(tunnel);
        }
      }
    } finally {
      unhold();
      const n = (this.#perUpstream.get(upstream) ?? 1) - 1;
      this.#perUpstream.set(upstream, n);
    }
  }

  #failWith(refuse: (code: ErrorCode, fields: Record<string, unknown>) => void, upstream: Upstream, err: unknown, target: UpstreamTarget): void {
    const gwErr = translateUpstreamError(err, upstream.name);
    const cause = gwErr.cause as { code?: unknown; message?: unknown } | undefined;
    refuse(gwErr.code, { target: target.origin, upstreamError: cause?.code, upstreamMessage: cause?.message });
  }

  #internalFailure(client: Socket, requestId: string, err: unknown): void {
    this.#logger.error({ reqId: requestId, websocket: true, code: 'GW_ERR_INTERNAL', err }, 'request failed');
    this.#metrics.request('', 'refused', 500, 0);
    try {
      if (!client.destroyed) answerAndClose(client, 'GW_ERR_INTERNAL', requestId);
    } catch {
      client.destroy();
    }
  }
}
