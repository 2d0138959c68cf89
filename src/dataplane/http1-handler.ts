/**
 * The HTTP/1 data plane: every request on the listener starts here. It reads the runtime snapshot
 * once and keeps it to the end of the request, asks admit() for the decision, and then either
 * streams the request upstream (proxy-http.ts) or writes the gateway's own answer
 * (respond-error.ts) with its log record. Also the answers to CONNECT and to requests Node's
 * parser refused. Nothing thrown here may reach the event loop: a bug costs the one request (500,
 * logged, connection closed), never the process.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { Http2ServerResponse } from 'node:http2';
import type { Logger } from 'pino';
import { ERRORS, type ErrorCode } from '../errors/registry.js';
import { requestIdFor } from '../request/request-id.js';
import type { Runtime } from '../runtime/runtime.js';
import type { GatewayMetrics } from '../telemetry/metrics.js';
import { admit, type Admission } from './admit.js';
import { clientSocketOf } from './client-socket.js';
import { connectionFacts, MAX_REVOCATION_WAITS, revocationPending, type ConnectionFacts } from './connection-context.js';
import { hasBody, requestHead } from './http1-request.js';
import { leanExchangeOn, LeanExchanges } from './lean-exchange.js';
import { elapsedMs, revocationLog, refusalDecision } from './log-records.js';
import { refuseMidRequest } from './mid-request-refusal.js';
import { proxiedRequestId, proxyHttp } from './proxy-http.js';
import { respondError, respondErrorOnSocket } from './respond-error.js';

export class Http1Handler {
  readonly #runtime: Runtime;
  readonly #logger: Logger;
  readonly #metrics: GatewayMetrics;
  #closing = false;
  #draining = false;
  /**
   * The lean listener's way for bodiless GET and HEAD requests (lean-exchange.ts): the same
   * decision and proxy as onRequest, without node:http's objects; whatever it does not take comes
   * here as node:http's objects.
   */
  readonly lean: LeanExchanges;

  constructor(runtime: Runtime, logger: Logger, metrics: GatewayMetrics) {
    this.#runtime = runtime;
    this.#logger = logger;
    this.#metrics = metrics;
    this.lean = new LeanExchanges(runtime, logger, metrics, this, this.#proxyFailed);
  }

  get closing(): boolean {
    return this.#closing;
  }

  /**
   * From now on every request gets 503 GW_ERR_SHUTTING_DOWN and its connection is closed. A drain
   * (startDraining) serves them instead; only a close without a drain refuses.
   */
  startClosing(): void {
    if (!this.#draining) this.#closing = true;
  }

  /**
   * The drain: requests still arriving on open connections (a head that was on its way) are served,
   * each answer with `Connection: close`, so every connection ends after its response.
   */
  startDraining(): void {
    this.#draining = true;
  }

  get draining(): boolean {
    return this.#draining;
  }

  /** The server's request listener (and `checkExpectation`'s). */
  readonly onRequest = (req: IncomingMessage, res: ServerResponse, expectsContinue = false, waits = 0): void => {
    // An HTTP/1.1 request pipelined behind one still being answered (node:http hands every request
    // it parsed over at once; its response waits in node:http's queue, without a socket): taken up
    // when its response takes the socket, one at a time, as the lean engine does. Taken up at once,
    // it went upstream even when the answer ahead then closed the connection (its own answer lost),
    // its 100 Continue could land inside that answer, and one connection could hold several of an
    // upstream's slots (test/security/a-100-continue-never-lands-inside-an-answer,
    // fuzz-lean-engine-serves-what-node-http-serves). A connection that closes first drops it unread.
    if (res.socket === null) {
      res.once('socket', () => this.onRequest(req, res, expectsContinue, waits));
      return;
    }
    let requestId = '';
    try {
      requestId = requestIdFor(req.headers['x-request-id']);
      if (this.#closing) {
        this.#logger.info({ reqId: requestId, method: req.method, status: 503, code: 'GW_ERR_SHUTTING_DOWN' }, 'request refused');
        respondError(res, 'GW_ERR_SHUTTING_DOWN', requestId, { close: true });
        this.#metrics.request('', 'refused', 503, 0);
        return;
      }
      if (this.#draining) res.shouldKeepAlive = false;
      const snapshot = this.#runtime.current;
      const started = process.hrtime.bigint();
      const connection = connectionFacts(snapshot, clientSocketOf(req), this.#logger);
      const pending = waits < MAX_REVOCATION_WAITS ? revocationPending(connection) : null;
      if (pending !== null) return this.#afterRevocationLookup(pending, req, res, expectsContinue, waits);
      const a = admit(snapshot, connection, requestHead(req));
      if (a.kind !== 'forward') return this.#refuse(req, res, a, connection, requestId, started);
      // Only now, with the request admitted, is the client told to send its body.
      if (expectsContinue) res.writeContinue();
      proxyHttp(snapshot, req, res, a, requestId, started, this.#metrics, this.#proxyFailed);
    } catch (err) {
      this.#internalFailure(res, requestId || randomUUID(), err);
    }
  };

  /**
   * The request is judged again once the OCSP lookup of its connection's certificate settles (the
   * lookup has its own deadline, tls.ocsp.timeout). The body, if any, waits in the socket.
   */
  #afterRevocationLookup(pending: Promise<void>, req: IncomingMessage, res: ServerResponse, expectsContinue: boolean, waits: number): void {
    const again = () => {
      if (res.destroyed || res.writableEnded || req.socket?.destroyed === true) return;
      this.onRequest(req, res, expectsContinue, waits + 1);
    };
    pending.then(again, again);
  }

  /** `checkContinue`: the client waits for 100 Continue, which only an admitted request gets. */
  readonly onCheckContinue = (req: IncomingMessage, res: ServerResponse): void => this.onRequest(req, res, true);

  /**
   * CONNECT: the gateway is not a forward proxy. Nothing about the request is forwarded. HTTP/1.1
   * hands over the socket; HTTP/2 a response on the CONNECT stream (the extended CONNECT of RFC
   * 8441, WebSocket over HTTP/2, is not offered, so nghttp2 lets only plain CONNECT through).
   */
  readonly onConnect = (req: IncomingMessage, socketOrResponse: Socket | ServerResponse): void => {
    if ((socketOrResponse as unknown) instanceof Http2ServerResponse) return this.#refuseHttp2Connect(req, socketOrResponse as ServerResponse);
    const socket = socketOrResponse as Socket;
    this.guarded(socket, () => {
      const requestId = randomUUID();
      this.#logger.info({ reqId: requestId, method: req.method, status: 501, code: 'GW_ERR_METHOD_NOT_SUPPORTED', peer: { address: socket.remoteAddress } }, 'request refused');
      respondErrorOnSocket(socket, 'GW_ERR_METHOD_NOT_SUPPORTED', requestId);
      this.#metrics.request('', 'refused', 501, 0);
    });
  };

  #refuseHttp2Connect(req: IncomingMessage, res: ServerResponse): void {
    const requestId = randomUUID();
    try {
      this.#logger.info({ reqId: requestId, method: req.method, status: 501, code: 'GW_ERR_METHOD_NOT_SUPPORTED', peer: { address: req.socket?.remoteAddress } }, 'request refused');
      respondError(res, 'GW_ERR_METHOD_NOT_SUPPORTED', requestId);
      this.#metrics.request('', 'refused', 501, 0);
    } catch (err) {
      this.#internalFailure(res, requestId, err);
    }
  }

  /** Runs a socket-level handler; a throw costs that connection (logged), never the process. */
  guarded(socket: Socket, handler: () => void): void {
    try {
      handler();
    } catch (err) {
      this.#logger.error({ event: 'connection-failed', code: 'GW_ERR_INTERNAL', err, peer: { address: socket.remoteAddress } }, 'connection handler failed');
      socket.destroy();
    }
  }

  /** A request Node's HTTP parser refused: framing errors, oversized heads, header timeouts. */
  readonly onClientError = (err: NodeJS.ErrnoException, socket: Socket): void => {
    this.guarded(socket, () => this.#answerClientError(err, socket));
  };

  #answerClientError(err: NodeJS.ErrnoException, socket: Socket): void {
    const code: ErrorCode =
      err.code === 'HPE_HEADER_OVERFLOW' ? 'GW_ERR_HEADERS_TOO_LARGE' : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 'GW_ERR_REQUEST_TIMEOUT' : 'GW_ERR_REQUEST_INVALID';
    // Once part of a response is on the wire (a pipelined request after one being answered), no
    // second status line can follow it: close, as Node does.
    const inProgress = (socket as Socket & { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
    // A client that left mid-request (reset, or end of stream inside a request) is not refusing
    // anything; there is no one to answer.
    if (err.code === 'ECONNRESET' || err.code === 'HPE_INVALID_EOF_STATE' || !socket.writable || inProgress?.headersSent === true) {
      this.#logger.debug({ event: 'client-left', reason: err.code ?? err.message, peer: { address: socket.remoteAddress } }, 'client left mid-request');
      socket.destroy();
      return;
    }
    const reason = err.code ?? err.message;
    // A request admitted and sent on, whose own bytes the parser refused (its body's framing, its
    // trailers, the request timeout inside its body): answered under its id, and its own record,
    // written as it ends with the connection, is the refusal (mid-request-refusal.ts).
    const current = leanExchangeOn(socket)?.requestId ?? (inProgress ? proxiedRequestId(inProgress) : undefined);
    if (current !== undefined) {
      refuseMidRequest(socket, { status: ERRORS[code].status, code, reason });
      respondErrorOnSocket(socket, code, current);
      return;
    }
    const requestId = randomUUID();
    this.#logger.info({ reqId: requestId, status: ERRORS[code].status, code, reason, peer: { address: socket.remoteAddress } }, 'request refused');
    const status = respondErrorOnSocket(socket, code, requestId);
    this.#metrics.request('', 'refused', status, 0);
  }

  /** Answers a refused request with the gateway's own error and logs it. */
  #refuse(raw: IncomingMessage, res: ServerResponse, a: Exclude<Admission, { kind: 'forward' }>, connection: ConnectionFacts, requestId: string, started: bigint): void {
    // A refused request's body is never read: after the answer the connection closes instead of
    // draining what could be gigabytes.
    const unreadBody = hasBody(raw) && !raw.complete;
    if (a.kind === 'refuse-connection') {
      const v = a.verdict;
      this.#logger.info(
        { reqId: requestId, method: raw.method, status: 401, code: v.code, reason: v.reason, peer: { address: raw.socket?.remoteAddress, subject: v.peerSubject, serial: v.peerSerial } },
        'request refused',
      );
      respondError(res, v.code, requestId, { close: true });
      this.#metrics.request('', 'refused', 401, elapsedMs(started) / 1000);
      return;
    }
    const log = a.context.log;
    if (a.revocation !== undefined) {
      const resumed = connection.ok ? connection.verdict.resumed : undefined;
      log.warn({ event: 'client-revoked', code: a.code, when: 'request', reqId: requestId, resumed, peer: { address: raw.socket?.remoteAddress }, ...revocationLog(a.revocation) }, 'request refused by revocation');
    }
    const status = respondError(res, a.code, requestId, { close: a.close || unreadBody });
    this.#metrics.request(typeof a.fields['route'] === 'string' ? a.fields['route'] : '', refusalDecision(a.code), status, elapsedMs(started) / 1000);
    log.info({ reqId: requestId, httpVersion: raw.httpVersion, method: raw.method, status, code: a.code, durationMs: elapsedMs(started), ...a.fields }, 'request refused');
  }

  readonly #proxyFailed = (res: ServerResponse, requestId: string, err: unknown): void => this.#internalFailure(res, requestId, err);

  #internalFailure(res: ServerResponse, requestId: string, err: unknown): void {
    this.#logger.error({ reqId: requestId, code: 'GW_ERR_INTERNAL', err }, 'request failed');
    this.#metrics.request('', 'refused', 500, 0);
    try {
      respondError(res, 'GW_ERR_INTERNAL', requestId, { close: true });
    } catch {
      res.destroy();
    }
  }
}
