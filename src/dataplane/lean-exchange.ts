/**
 * The lean exchange (`server.engine: lean`): a request that admit() forwards to an HTTP/1
 * upstream is served from the parser's head (and body) to the upstream client and back onto the
 * client's socket, without node:http's IncomingMessage and ServerResponse, the proxy's promise per
 * request or its dispatch handler. The decision, the header lists, the upstream slot and budget,
 * the outlier bookkeeping, the access record and the metrics are the proxy's own (admit.ts,
 * proxy-http.ts); only the request's objects and the answer's writing are this module's.
 *
 * Why: together those layers are about a sixth of the gateway's CPU per keep-alive request
 * (bench/README.md, "Which layers the distance is in"), and none of them does anything for a
 * request relayed as it came; with a body they are more (a Readable and its ticks per request).
 * Request bodies follow the proxy's rules (LeanExchange says which).
 *
 * What it takes, decided before anything is done (else it returns null and node:http's objects
 * serve the request, as they serve every other): HTTP/1.1 or 1.0 (not naming TE), any method but
 * CONNECT, no body or one with a single Content-Length or (HTTP/1.1) `Transfer-Encoding: chunked`,
 * no Expect but one `100-continue` on HTTP/1.1 (`100 Continue` is written once it is taken), no gRPC; the gateway neither closing nor waiting on an OCSP answer for the
 * connection; admitted to a route whose upstream speaks HTTP/1 (or HTTP/2, for a request without a
 * body or TE); a token of
 * the route's rate limit (if it has one); an upstream slot free and a target, at once for a
 * bodiless request, at the body's first bytes for one with a body (else the proxy has it then).
 *
 * What it hands over: an attempt that fails before a byte of the answer was written (connect
 * failure, reset, timeout, a client that left, or a status the upstream's retry policy retries,
 * granted as the proxy grants it and its body dropped) becomes node:http's objects for the request and
 * goes on in the proxy (continueProxyHttp), which judges that failure as its own: retried on
 * another target, or answered with the gateway's error. So every refusal and retry is written by
 * the one proxy.
 *
 * What it writes is what node:http's ServerResponse writes for the same relayed answer
 * (lib/_http_outgoing.js _storeHeader, as forward-request.ts drives it): the status line with
 * Node's reason phrase; the relayed headers in the upstream's order (grouped by name, as
 * setHeader groups them, when the answer completed before its head was written); `Date` unless
 * relayed; `Connection: keep-alive` with `Keep-Alive: timeout=N`, or `Connection: close` and the
 * connection closed after it; a relayed Content-Length as it is, else `Content-Length: 0` for an
 * answer that completed empty before its head was written, else chunked framing with the
 * upstream's relayable trailers (for HTTP/1.0: no framing, the answer ends with the connection);
 * no body after HEAD, 204 or 304. Header names and values are
 * checked as node:http checks them; an answer that fails the check is cut, as it is there.
 */
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { Dispatcher } from 'undici';
import type { Logger } from 'pino';
import type { RetryReason } from '../config/schema.js';
import { buildClientResponseHeaders, canonicalHeaderName, unreadableContentLength } from '../proxy/forward-headers.js';
import { Http1UpstreamClient } from '../proxy/http1-upstream-client.js';
import { ForwardError, MAX_DISCARD, RetryableStatus, relayableTrailers, type UpstreamTrailers } from '../proxy/forward-request.js';
import { headWithBody, ONE_WRITE_BYTES, RELAY_BUFFER_BYTES } from '../proxy/relay-buffer.js';
import { rateLimitKeyOf } from '../proxy/route-forwarding.js';
import type { Release } from '../proxy/upstream-gate.js';
import type { UpstreamTarget } from '../proxy/upstream-target.js';
import type { ParsedRequestHead } from '../request/llhttp-request-parser.js';
import { requestIdFor } from '../request/request-id.js';
import type { Runtime } from '../runtime/runtime.js';
import type { RuntimeSnapshot } from '../runtime/snapshot.js';
import type { GatewayMetrics } from '../telemetry/metrics.js';
import { admit, type Forward, type RequestHead } from './admit.js';
import { connectionFacts, revocationPending } from './connection-context.js';
import type { LeanExchangeConnection, LeanExchangeInProgress, LeanExchangeServer } from './lean-http1-connection.js';
import { continueProxyHttp, endUnsentRequest, grantRetry, proxyHttp, recordServed, replayableRequest, upstreamRequestHeaders, type ProxyFailureHandler } from './proxy-http.js';
import { BodyStalledError } from './request-body-watch.js';

/** What the exchange needs to know of the HTTP/1 handler's state. */
export interface LeanExchangeGate {
  /** The gateway refuses every request now (closing without a drain). */
  readonly closing: boolean;
  /** Draining: every answer asks the client to close. */
  readonly draining: boolean;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** node:http's checkInvalidHeaderChar. */
const INVALID_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
const CHUNKED_END = '0\r\n\r\n';

/** RFC 9110's IMF-fixdate for `Date`, made once per second as node:http's utcDate() does. */
let dateSecond = -1;
let dateValue = '';
function httpDate(): string {
  const now = Date.now();
  const second = Math.floor(now / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateValue = new Date(second * 1000).toUTCString();
  }
  return dateValue;
}

/** What the lean exchange reads of a request head (names compared lower-cased, by length first). */
interface LeanHeadFacts {
  readonly host: string | undefined;
  readonly hostCount: number;
  readonly requestId: string | undefined;
  readonly te: boolean;
  /** One `Expect: 100-continue` line (any other expectation, or more lines, keeps the request off). */
  readonly expectContinue: boolean;
  /** The body's length from its one Content-Length line; CHUNKED for `Transfer-Encoding: chunked`; 0: no body. */
  readonly bodyLength: number;
}

/** LeanPlan.bodyLength of a chunked request body. */
const CHUNKED = -1;

/** The head's facts, or null when a line keeps the request off the lean exchange. */
function leanHeadFacts(headers: readonly string[]): LeanHeadFacts | null {
  let host: string | undefined;
  let hostCount = 0;
  let requestId: string | undefined;
  let te = false;
  let contentLength: string | undefined;
  let transferEncoding: string | undefined;
  let expectContinue = false;
  for (let i = 0; i + 1 < headers.length; i += 2) {
    const name = headers[i]!;
    switch (name.length) {
      case 2:
        if (name.toLowerCase() === 'te') te = true;
        break;
      case 4:
        if (name.toLowerCase() === 'host') {
          hostCount++;
          // node:http keeps the first Host of several (admit() refuses them all the same).
          host ??= headers[i + 1]!;
        }
        break;
      case 6:
        if (name.toLowerCase() === 'expect') {
          if (expectContinue || headers[i + 1]!.toLowerCase() !== '100-continue') return null;
          expectContinue = true;
        }
        break;
      case 12:
        if (name.toLowerCase() === 'x-request-id') {
          // Several are joined as node:http joins them; requestIdFor() then makes a fresh one.
          requestId = requestId === undefined ? headers[i + 1]! : `${requestId}, ${headers[i + 1]!}`;
        } else if (name.toLowerCase() === 'content-type' && /^application\/grpc/i.test(headers[i + 1]!)) return null;
        break;
      case 14:
        if (name.toLowerCase() === 'content-length') {
          // The parser refuses differing values; even equal repeated ones are left to node:http's objects.
          if (contentLength !== undefined) return null;
          contentLength = headers[i + 1]!;
        }
        break;
      case 17:
        if (name.toLowerCase() === 'transfer-encoding') {
          if (transferEncoding !== undefined) return null;
          transferEncoding = headers[i + 1]!;
        }
        break;
    }
  }
  let bodyLength = 0;
  if (transferEncoding !== undefined) {
    // `chunked` alone, on one line: any other coding, list or a Content-Length beside it is left to
    // node:http's objects (and mostly refused by the parser before it gets here).
    if (contentLength !== undefined || transferEncoding.trim().toLowerCase() !== 'chunked') return null;
    bodyLength = CHUNKED;
  } else if (contentLength !== undefined) {
    // The parser has checked the value (digits, no overflow); anything else is not this module's.
    if (!/^\d{1,15}$/.test(contentLength)) return null;
    bodyLength = Number(contentLength);
  }
  return { host, hostCount, requestId, te, bodyLength, expectContinue };
}

/** The lean exchange each client connection is busy with, for the drain. */
const inProgress = new WeakMap<object, LeanExchange>();

/**
 * The view of a connection's lean exchange, if it has one in progress: for the drain,
 * `closeAfter()` makes the connection close after its answer (`Connection: close` when the head is
 * still to be written), as the drain does with node:http's response; for the 'clientError'
 * handler, the id of the request it answers (mid-request-refusal.ts).
 */
export function leanExchangeOn(socket: object): { closeAfter(): void; readonly requestId: string } | undefined {
  return inProgress.get(socket);
}

/** The lean exchanges of one HTTP/1 data plane. */
export class LeanExchanges implements LeanExchangeServer {
  readonly #runtime: Runtime;
  readonly logger: Logger;
  readonly metrics: GatewayMetrics;
  readonly #gate: LeanExchangeGate;
  /** Answers a request whose proxying threw (a bug), as the HTTP/1 handler answers it. */
  readonly onFailure: ProxyFailureHandler;

  constructor(runtime: Runtime, logger: Logger, metrics: GatewayMetrics, gate: LeanExchangeGate, onFailure: ProxyFailureHandler) {
    this.#runtime = runtime;
    this.logger = logger;
    this.metrics = metrics;
    this.#gate = gate;
    this.onFailure = onFailure;
  }

  /**
   * Never throws. A throw while deciding (a certificate whose identity cannot be put in a header,
   * say) leaves the request to node:http's objects, whose handler answers it as it answers that
   * throw; a throw once the request was taken costs that request (logged, the connection closed),
   * never the process.
   */
  serve(conn: LeanExchangeConnection, head: ParsedRequestHead): LeanExchangeInProgress | null {
    let plan: LeanPlan | null;
    try {
      plan = this.#decide(conn, head);
    } catch {
      return null;
    }
    if (plan === null) return null;
    try {
      return this.#begin(conn, plan);
    } catch (err) {
      this.logger.error({ reqId: plan.requestId, code: 'GW_ERR_INTERNAL', err, peer: { address: conn.socket.remoteAddress } }, 'request failed');
      this.metrics.request('', 'refused', 500, 0);
      conn.socket.destroy();
      return GONE;
    }
  }

  /** Whether the lean exchange takes the request, and what it sends; nothing is taken or changed yet. */
  #decide(conn: LeanExchangeConnection, head: ParsedRequestHead): LeanPlan | null {
    if (head.versionMajor !== 1 || head.versionMinor > 1 || head.method === 'CONNECT') return null;
    if (this.#gate.closing) return null;
    const facts = leanHeadFacts(head.headers);
    // An HTTP/1.0 client that names TE may read a chunked answer (node:http then sends one).
    // (A chunked body or an expectation on HTTP/1.0 is left to node:http's objects too.)
    if (facts === null || (head.versionMinor === 0 && (facts.te || facts.bodyLength === CHUNKED || facts.expectContinue))) return null;
    const snapshot = this.#runtime.current;
    const started = process.hrtime.bigint();
    const socket = conn.socket;
    const connection = connectionFacts(snapshot, socket, this.logger);
    if (revocationPending(connection) !== null) return null;
    const requestHead: RequestHead = {
      protocol: 'http/1.1',
      method: head.method,
      target: head.url,
      httpVersionMajor: 1,
      httpVersionMinor: head.versionMinor,
      host: facts.host,
      hostCount: facts.hostCount,
      expect: facts.expectContinue ? '100-continue' : undefined,
      headerLines: head.headers.length >> 1,
    };
    const a = admit(snapshot, connection, requestHead);
    if (a.kind !== 'forward') return null;
    const upstream = a.upstream;
    // An HTTP/2 upstream (node:http2 through http2-upstream-client.ts, the same dispatch handler
    // interface) takes bodiless requests only: a body is streamed to the HTTP/1 client's LeanBody.
    // A client naming TE is left to the proxy, which asks an HTTP/2 upstream for trailers then.
    if (upstream.protocol !== 'http1' && (upstream.protocol !== 'http2' || facts.bodyLength !== 0 || facts.te)) return null;
    const requestId = requestIdFor(facts.requestId);
    const upstreamPath = a.forwarding.rewrite === null ? a.path : a.forwarding.rewrite(a.path);
    const headers = upstreamRequestHeaders(snapshot, a, head.headers, socket.remoteAddress ?? '', facts.host ?? null, requestId);
    // As the proxy's RetryState: only a request that may be sent again as it is has a status retried.
    const statusRetry = upstream.retries.onStatus && upstream.retries.attempts > 0 && replayableRequest(head.method, facts.bodyLength === 0);
    return { snapshot, a, started, requestId, upstreamPath, headers, http10: head.versionMinor === 0, bodyLength: facts.bodyLength, expectContinue: facts.expectContinue, statusRetry };
  }

  /**
   * Starts the exchange with an upstream slot and a target; null when there is none now. A request
   * with a body takes nothing upstream until its first bytes arrive, as in the proxy (a client that
   * announces a body and sends none holds no upstream connection): the exchange waits for them.
   */
  #begin(conn: LeanExchangeConnection, plan: LeanPlan): LeanExchangeInProgress | null {
    const keepAlive = conn.keepAlive && !this.#gate.draining;
    const keepAliveTimeout = plan.snapshot.config.server.keepAliveTimeout;
    if (plan.bodyLength !== 0) {
      // The route's rate limit, as the proxy asks it: before the body is waited for (a limited
      // client costs nothing upstream). Over the limit, the proxy has the request and answers 429.
      const rate = plan.a.forwarding.rateLimit;
      if (rate !== null && rate.limiter.take(rateLimitKeyOf(plan.a.context.identity, rate.key), Date.now()) > 0) return null;
      const x = new LeanExchange(this, conn, plan, keepAlive, keepAliveTimeout);
      if (plan.expectContinue) writeContinue(conn.socket);
      x.awaitBody();
      return x;
    }
    const slot = this.acquire(plan, true);
    if (slot === null) return null;
    let x: LeanExchange;
    try {
      // From here on the request is this exchange's (or, on a failure, the proxy's it hands over to).
      x = new LeanExchange(this, conn, plan, keepAlive, keepAliveTimeout);
    } catch (err) {
      slot.release();
      throw err;
    }
    if (plan.expectContinue) writeContinue(conn.socket);
    x.start(slot.release, slot.target);
    return x;
  }

  /**
   * An upstream slot, a token of the route's rate limit (if it has one and `rated`) and a target,
   * all or none: null when one of them is not to be had now (the proxy then waits, refuses or
   * answers 429 as it does for every request).
   */
  acquire(plan: LeanPlan, rated: boolean): { release: Release; target: UpstreamTarget } | null {
    const upstream = plan.a.upstream;
    const slots = upstream.gate;
    if (slots.active + slots.waiting >= upstream.limits.maxRequests) return null;
    const release = slots.tryAcquire();
    if (release === null) return null;
    try {
      // The route's rate limit, once the request is sure to be taken otherwise: a token is taken
      // once, here or by the proxy. A request over the limit is left to the proxy, which asks the
      // limiter again and answers 429 (a refusal takes no token).
      const rate = rated ? plan.a.forwarding.rateLimit : null;
      if (rate !== null && (upstream.eligibleCount(NONE) === 0 || rate.limiter.take(rateLimitKeyOf(plan.a.context.identity, rate.key), Date.now()) > 0)) {
        release();
        return null;
      }
      const target = upstream.pick(null);
      // A body is streamed to the gateway's own upstream client (http1-upstream-client.ts reads the
      // exchange's LeanBody); with server.engine lean every HTTP/1 target has one.
      if (target === undefined || (plan.bodyLength !== 0 && !(target.pool instanceof Http1UpstreamClient))) {
        release();
        return null;
      }
      return { release, target };
    } catch (err) {
      release();
      throw err;
    }
  }
}

/** What #decide() found: the request's decision and what goes upstream. */
interface LeanPlan {
  readonly snapshot: RuntimeSnapshot;
  readonly a: Forward;
  readonly started: bigint;
  readonly requestId: string;
  readonly upstreamPath: string;
  readonly headers: string[];
  /** An HTTP/1.0 request: no chunked answer, so an answer without Content-Length ends with the connection. */
  readonly http10: boolean;
  /** The request body's Content-Length, CHUNKED, or 0: no body. */
  readonly bodyLength: number;
  /** The client waits for `100 Continue`: written once the request is admitted and taken, as the HTTP/1 handler writes it. */
  readonly expectContinue: boolean;
  /** The upstream retries statuses (retries.on 502/503/504) and this request may be sent again. */
  readonly statusRetry: boolean;
}

/**
 * One request and its relayed answer; the undici dispatch handler the upstream client drives. A
 * request body (with a Content-Length, or chunked) is read by the connection's parser and handed to the
 * upstream client through a LeanBody, with the proxy's rules: nothing upstream is taken before its
 * first bytes, a body that stalls for server.bodyTimeout ends the request (408 before the answer
 * started, the connection cut after), the client is paused while the upstream is the slow side,
 * and an attempt that never reached a connection hands the whole body, unread, to the proxy.
 */
class LeanExchange implements Dispatcher.DispatchHandler, LeanExchangeInProgress {
  readonly #owner: LeanExchanges;
  readonly #conn: LeanExchangeConnection;
  readonly #socket: TLSSocket;
  readonly #plan: LeanPlan;
  readonly #snapshot: RuntimeSnapshot;
  readonly #a: Forward;
  readonly #requestId: string;
  readonly #started: bigint;
  readonly #upstreamPath: string;
  readonly #headers: string[];
  /** The slot and target, once started. */
  #release: Release = NO_RELEASE;
  #target: UpstreamTarget | null = null;
  #keepAlive: boolean;
  readonly #keepAliveTimeout: number;
  readonly #head: boolean;
  readonly #http10: boolean;
  /** The request body as the upstream client reads it; null without a body. */
  readonly #upload: LeanBody | null;
  /** server.bodyTimeout of the snapshot the request was admitted with. */
  readonly #bodyTimeout: number;
  #begun = false;
  /** The client's socket is paused because the upstream is the slow side. */
  #clientPaused = false;
  #judging = false;
  #stalled = false;
  #unhold: (() => void) | null = null;
  #attemptStarted = 0n;
  #abort: ((err: Error) => void) | null = null;
  #resumeUpstream: (() => void) | null = null;
  #connected = false;
  #clientGone = false;
  #done = false;
  /** The answer's status and headers, from onHeaders until the head is written. */
  #status = 0;
  #pending: string[] | null = null;
  #chunked = false;
  #hasBody = true;
  #last = false;
  #headWritten = false;
  #corked = false;
  #bytesOut = 0;
  /** An answer not relayed, its body read and dropped: a status the proxy then retries, or one refused as a protocol fault (unreadableContentLength). */
  #discard: Error | null = null;
  #discarded = 0;
  /** The retry of #discard holds a slot of the upstream's retry budget (the proxy's to end). */
  #retryGranted = false;

  constructor(owner: LeanExchanges, conn: LeanExchangeConnection, plan: LeanPlan, keepAlive: boolean, keepAliveTimeout: number) {
    this.#owner = owner;
    this.#conn = conn;
    this.#socket = conn.socket;
    this.#plan = plan;
    this.#snapshot = plan.snapshot;
    this.#a = plan.a;
    this.#requestId = plan.requestId;
    this.#started = plan.started;
    this.#upstreamPath = plan.upstreamPath;
    this.#headers = plan.headers;
    this.#keepAlive = keepAlive;
    this.#keepAliveTimeout = keepAliveTimeout;
    this.#head = plan.a.method === 'HEAD';
    this.#http10 = plan.http10;
    this.#upload = plan.bodyLength !== 0 ? new LeanBody(this) : null;
    this.#bodyTimeout = plan.snapshot.requests.bodyTimeout;
  }

  /** A request with a body: waits for its first bytes (body()), its stall timer running from now. */
  awaitBody(): void {
    inProgress.set(this.#socket, this);
    // The socket's inactivity timer, as the proxy's stall watch uses it (every read restarts it).
    if (this.#bodyTimeout > 0) this.#socket.setTimeout(this.#bodyTimeout);
  }

  start(release: Release, target: UpstreamTarget): void {
    this.#begun = true;
    this.#release = release;
    this.#target = target;
    inProgress.set(this.#socket, this);
    const upstream = this.#a.upstream;
    this.#unhold = upstream.hold();
    // Envoy's budget counts the requests waiting for a connection as active too.
    upstream.budget.requestStarted();
    this.#attemptStarted = process.hrtime.bigint();
    target.active++;
    const timeout = this.#a.forwarding.responseTimeout;
    target.pool.dispatch(
      {
        method: this.#a.method as Dispatcher.HttpMethod,
        path: this.#upstreamPath + this.#a.query,
        headers: this.#headers,
        body: this.#upload as unknown as Dispatcher.DispatchOptions['body'],
        ...(timeout !== undefined ? { headersTimeout: timeout } : {}),
      },
      this,
    );
  }

  // ---- the client's side (LeanExchangeInProgress) --------------------------------------------

  clientGone(): void {
    if (this.#done) return;
    this.#clientGone = true;
    if (!this.#begun) return this.#unsent('client-left');
    this.#abort?.(new Error('client closed the connection'));
  }

  body(chunk: Buffer): void {
    const upload = this.#upload;
    if (this.#done || upload === null) return;
    // (A failure within the start hands the request, and so this chunk, over.)
    if (!this.#begun && !this.#takeSlot()) return;
    upload.push(chunk);
  }

  bodyEnd(): void {
    const upload = this.#upload;
    if (upload === null || this.#done) return;
    if (this.#bodyTimeout > 0) this.#socket.setTimeout(0);
    // An empty chunked body: its end is what the proxy waits for before it takes a slot.
    if (!this.#begun && !this.#takeSlot()) return;
    upload.end();
  }

  /**
   * The body's first bytes (or its end): now an upstream slot and a target are taken and the
   * attempt starts, or the proxy, which waits for a slot or refuses, has the request (and what the
   * connection reads of it from here on). False when the exchange no longer has the request.
   */
  #takeSlot(): boolean {
    let slot: { release: Release; target: UpstreamTarget } | null;
    try {
      // (The rate limit's token was taken with the head.)
      slot = this.#owner.acquire(this.#plan, false);
    } catch (err) {
      this.#internalFailure(err);
      return false;
    }
    if (slot === null) {
      this.#toProxy();
      return false;
    }
    this.start(slot.release, slot.target);
    return !this.#done;
  }

  /**
   * The socket's timer fired while this exchange is in progress: the body stalled, unless the
   * gateway is the slow side (the client paused, or bytes waiting for an upstream connection),
   * as the proxy's stall watch judges it (request-body-watch.ts). False: not this exchange's timer.
   */
  timeout(): boolean {
    const upload = this.#upload;
    if (upload === null || this.#done) return false;
    if (upload.ended || this.#judging) return true;
    if (this.#clientPaused || upload.queuedBytes > 0) {
      this.#socket.setTimeout(this.#bodyTimeout);
      return true;
    }
    // After a pause of the event loop itself, the client's bytes may be in the kernel, unread: the
    // verdict waits until the loop has read them.
    this.#judging = true;
    const before = this.#socket.bytesRead;
    setImmediate(() => {
      this.#judging = false;
      if (this.#done || upload.ended) return;
      if (this.#clientPaused || upload.queuedBytes > 0 || this.#socket.bytesRead !== before) {
        this.#socket.setTimeout(this.#bodyTimeout);
        return;
      }
      this.#stall();
    });
    return true;
  }

  get answerStarted(): boolean {
    return this.#status !== 0;
  }

  /** The upstream cannot take more of the body now (LeanBody.pause), or can again. */
  pauseClient(): void {
    if (this.#clientPaused || this.#done) return;
    this.#clientPaused = true;
    this.#socket.pause();
  }

  resumeClient(): void {
    if (!this.#clientPaused) return;
    this.#clientPaused = false;
    if (!this.#socket.destroyed) this.#socket.resume();
  }

  drained(): void {
    this.#resumeUpstream?.();
  }

  get requestId(): string {
    return this.#requestId;
  }

  closeAfter(): void {
    // Before its head is written, the answer says so; after, the connection closes once it is whole.
    if (this.#headWritten) this.#last = true;
    else this.#keepAlive = false;
  }

  // ---- the upstream's side (undici's raw dispatch callbacks, as forward-request.ts) -----------

  onConnect(abort: (err?: Error) => void): void {
    this.#abort = abort;
    this.#connected = true;
    if (this.#clientGone || this.#socket.destroyed) {
      this.#clientGone = true;
      abort(new Error('client closed the connection'));
    } else if (this.#stalled) abort(new BodyStalledError(this.#bodyTimeout));
  }

  onHeaders(statusCode: number, rawHeaders: readonly (Buffer | string)[], resume: () => void): boolean {
    if (statusCode < 200 || this.#done) return true;
    const unreadable = unreadableContentLength(rawHeaders);
    if (unreadable !== null) {
      this.#discard = unreadable;
      this.#abort?.(unreadable);
      return true;
    }
    if (this.#plan.statusRetry && this.#retries(statusCode)) {
      this.#discard = new RetryableStatus(statusCode);
      return true;
    }
    this.#status = statusCode;
    this.#resumeUpstream = resume;
    this.#pending = buildClientResponseHeaders(rawHeaders, this.#requestId);
    // As forward-request.ts: the head goes out at the end of this tick, or with the first body
    // bytes, or with the end of an answer that completes in the same tick (one write).
    void RESOLVED.then(this.#writeHeadLater);
    return true;
  }

  readonly #writeHeadLater = (): void => {
    if (this.#pending === null || this.#done) return;
    if (!this.#writeHead(null, false)) this.#cut(new Error('invalid response header'));
  };

  onData(chunk: Buffer): boolean {
    // An empty chunk would end a chunked answer (node:http writes nothing for one either).
    if (this.#done || chunk.length === 0) return true;
    if (this.#discard !== null) {
      this.#discarded += chunk.length;
      if (this.#discarded > MAX_DISCARD) this.#abort?.(this.#discard);
      return true;
    }
    this.#bytesOut += chunk.length;
    const socket = this.#socket;
    if (this.#pending !== null) {
      // (#writeHead corks for this tick unless `chunk` is the whole answer.)
      if (!this.#writeHead(chunk, false)) {
        this.#cut(new Error('invalid response header'));
        return true;
      }
    } else if (this.#hasBody && socket.writable) {
      this.#corkForThisTick();
      if (this.#chunked) {
        socket.cork();
        socket.write(`${chunk.length.toString(16)}\r\n`, 'latin1');
        socket.write(chunk);
        socket.write('\r\n', 'latin1');
        socket.uncork();
      } else socket.write(chunk);
    }
    // Reading goes on while less than RELAY_BUFFER_BYTES wait; the socket's 'drain' (drained()) resumes it.
    return socket.writableLength < RELAY_BUFFER_BYTES;
  }

  onComplete(trailers: string[] | null): void {
    if (this.#done) return;
    if (this.#discard !== null) return this.#handOver(this.#discard);
    const socket = this.#socket;
    const relayed = trailers == null ? null : relayableTrailers(trailers as unknown as UpstreamTrailers);
    if (this.#pending !== null) {
      // The whole answer is known before its head went out: node:http's end() without a body
      // (grouped headers, Content-Length: 0), unless there are trailers (chunked, as writeHead then end).
      if (!this.#writeHead(null, relayed === null)) return this.#cut(new Error('invalid response header'));
    }
    if (this.#chunked && socket.writable) {
      this.#corkForThisTick();
      const tail = relayed === null ? CHUNKED_END : trailerSection(relayed);
      if (tail === null) return this.#cut(new Error('invalid response trailer'));
      socket.write(tail, 'latin1');
    }
    this.#finish(null);
  }

  onError(err: Error): void {
    if (this.#done) return;
    // As forward-request.ts: once the answer's head arrived, the answer has started (whether or
    // not its head was written yet), and a failure cuts it.
    if (this.#status === 0) return this.#handOver(this.#discard ?? err);
    this.#cut(err);
  }

  /**
   * Whether `status` is retried, by the proxy's own rule (grantRetry: a status the policy names,
   * another target eligible, and a slot of the retry budget, taken now).
   */
  #retries(status: number): boolean {
    if (!grantRetry(this.#a.upstream, String(status) as RetryReason, this.#target!, null, this.#owner.metrics)) return false;
    this.#retryGranted = true;
    return true;
  }

  // ---- the answer ------------------------------------------------------------------------------

  /**
   * Writes the answer's head (with `body`, when given, in the same write). `ended`: the answer
   * completed without a body before its head was written. False when a header fails node:http's
   * checks (nothing is written then).
   */
  #writeHead(body: Buffer | null, ended: boolean): boolean {
    const list = this.#pending!;
    this.#pending = null;
    this.#headWritten = true;
    const status = this.#status;
    this.#hasBody = !(this.#head || status === 204 || status === 304);
    let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'unknown'}\r\n`;
    let contentLength = false;
    let declaredLength = -1;
    let date = false;
    const lines = ended ? groupedByName(list) : list;
    // An answer read by the gateway's own HTTP/1 client was parsed by llhttp (strict), which
    // refuses every name and value node:http's checks refuse (pinned byte by byte by
    // test/security/upstream-response-parser-refuses-what-node-http-would-not-write): not checked
    // again per header here (0.4 µs per keep-alive GET, bench/README.md "Where the keep-alive
    // targets stop"). An HTTP/2 upstream's answer is (nghttp2 lets through control bytes node:http
    // refuses). The gateway's own x-request-id is a sane client id or a UUID (request-id.ts).
    const parsedStrictly = this.#target?.pool instanceof Http1UpstreamClient;
    for (let i = 0; i + 1 < lines.length; i += 2) {
      const name = lines[i]!;
      const value = lines[i + 1]!;
      if (!parsedStrictly && (!TOKEN.test(name) || INVALID_VALUE.test(value))) return false;
      head += `${name}: ${value}\r\n`;
      if (name.length === 14 && name.toLowerCase() === 'content-length') {
        contentLength = true;
        declaredLength = parsedStrictly ? Number(value) : -1;
      } else if (name.length === 4 && name.toLowerCase() === 'date') date = true;
    }
    if (!date) head += `Date: ${httpDate()}\r\n`;
    // node:http keeps an HTTP/1.0 connection only when the answer's length is known.
    if (this.#keepAlive && (contentLength || !this.#http10)) {
      head += `Connection: keep-alive\r\n`;
      if (this.#keepAliveTimeout > 0) head += `Keep-Alive: timeout=${Math.floor(this.#keepAliveTimeout / 1000)}\r\n`;
    } else {
      this.#last = true;
      head += 'Connection: close\r\n';
    }
    if (!contentLength && this.#hasBody) {
      if (this.#http10) this.#last = true;
      else if (ended) head += 'Content-Length: 0\r\n';
      else {
        head += 'Transfer-Encoding: chunked\r\n';
        this.#chunked = true;
      }
    }
    head += '\r\n';
    const socket = this.#socket;
    // (Closed, or ended by the gateway's own error answer to the connection.)
    if (!socket.writable) return true;
    if (body === null || !this.#hasBody) {
      socket.write(head, 'latin1');
      return true;
    }
    // What else this tick brings for the answer (body chunks, the last chunk) goes out with it in
    // one write, unless `body` is all of it: a Content-Length the strict parser read, met by this
    // first chunk, leaves nothing to wait for.
    if (this.#chunked || declaredLength !== body.length) this.#corkForThisTick();
    if (body.length <= ONE_WRITE_BYTES) socket.write(headWithBody(head, body, this.#chunked));
    else {
      socket.cork();
      if (this.#chunked) {
        socket.write(`${head}${body.length.toString(16)}\r\n`, 'latin1');
        socket.write(body);
        socket.write('\r\n', 'latin1');
      } else {
        socket.write(head, 'latin1');
        socket.write(body);
      }
      socket.uncork();
    }
    return true;
  }

  /**
   * As node:http's write_(): the socket stays corked to the end of this tick, so that what one
   * read of the upstream brought (several body chunks, the last chunk) goes out in one write.
   */
  #corkForThisTick(): void {
    if (this.#corked) return;
    this.#corked = true;
    this.#socket.cork();
    void RESOLVED.then(this.#uncork);
  }

  readonly #uncork = (): void => {
    this.#corked = false;
    this.#socket.uncork();
  };

  /** The answer is whole: the record, the target's bookkeeping, and the connection goes on. */
  #finish(error: Error | null): void {
    this.#done = true;
    inProgress.delete(this.#socket);
    const target = this.#target!;
    const upstream = this.#a.upstream;
    const status = this.#status;
    if (status >= 500) upstream.failed(target);
    else upstream.succeeded(target);
    this.#release_();
    this.#bodyLetGo();
    recordServed(this.#a, this.#requestId, this.#http10 ? '1.0' : '1.1', this.#upstreamPath, this.#started, target, { status, bytesOut: this.#bytesOut, error, clientAborted: this.#clientGone }, null, this.#owner.metrics);
    if (error !== null) {
      this.#socket.destroy();
      this.#conn.responded(true);
    } else this.#conn.responded(this.#last);
  }

  /**
   * The exchange no longer reads the request body: its stall timer stops and a paused client is
   * let go. (The rest of a body answered early is read and dropped by the connection, as node:http
   * dumps it.)
   */
  #bodyLetGo(): void {
    const upload = this.#upload;
    if (upload === null) return;
    if (!upload.ended && this.#bodyTimeout > 0) this.#socket.setTimeout(0);
    if (this.#clientPaused) {
      this.#clientPaused = false;
      if (!this.#socket.destroyed) this.#socket.resume();
    }
  }

  /** The answer started and cannot be finished: the client's connection is closed (node:http's res.destroy). */
  #cut(err: Error): void {
    if (this.#done) return;
    this.#abort?.(err);
    this.#finish(err);
  }

  #release_(): void {
    this.#target!.active--;
    const budget = this.#a.upstream.budget;
    budget.requestEnded();
    this.#release();
    this.#unhold?.();
    this.#unhold = null;
  }

  /** The body stalled (timeout()): the proxy's outcome for it, at whatever point the exchange is. */
  #stall(): void {
    this.#stalled = true;
    if (!this.#begun) return this.#unsent('body-stalled');
    const err = new BodyStalledError(this.#bodyTimeout);
    // After the answer's head, the answer is cut; before, the attempt fails and #handOver answers 408.
    if (this.#status !== 0) return this.#cut(err);
    // (Not connected yet: onConnect aborts it.)
    this.#abort?.(err);
  }

  /**
   * node:http's objects for the request, from here on the connection's: what the exchange read of
   * a body and did not send goes into the request, unread, as if node:http's parser had pushed it.
   */
  #objectsForProxy(): { req: IncomingMessage; res: ServerResponse } {
    const made = this.#conn.materialize();
    if (!this.#keepAlive) made.res.shouldKeepAlive = false;
    const upload = this.#upload;
    if (upload !== null) {
      // The proxy's own stall watch takes over (the connection's timer stays the socket's).
      if (!upload.ended && this.#bodyTimeout > 0) this.#socket.setTimeout(0);
      for (const chunk of upload.takeQueued()) made.req.push(chunk);
      if (upload.ended) made.req.push(null);
      this.resumeClient();
    }
    return made;
  }

  /** No slot or target at the body's first bytes: the proxy has the request, as node:http's objects, from its start. */
  #toProxy(): void {
    this.#done = true;
    inProgress.delete(this.#socket);
    try {
      const { req, res } = this.#objectsForProxy();
      proxyHttp(this.#snapshot, req, res, this.#a, this.#requestId, this.#started, this.#owner.metrics, this.#owner.onFailure, true);
    } catch (thrown) {
      this.#internalFailure(thrown);
    }
  }

  /** Ended before anything was taken upstream: a body that stalled before its first bytes, or a client that left. */
  #unsent(why: 'body-stalled' | 'client-left'): void {
    this.#done = true;
    inProgress.delete(this.#socket);
    try {
      const { req, res } = this.#objectsForProxy();
      endUnsentRequest(this.#snapshot, req, res, this.#a, this.#requestId, this.#started, this.#owner.metrics, this.#owner.onFailure, why);
    } catch (thrown) {
      this.#internalFailure(thrown);
    }
  }

  /** A bug before anything was taken upstream: logged, counted, the connection closed. */
  #internalFailure(err: unknown): void {
    this.#done = true;
    inProgress.delete(this.#socket);
    this.#socket.destroy();
    this.#owner.logger.error({ reqId: this.#requestId, code: 'GW_ERR_INTERNAL', err }, 'request failed');
    this.#owner.metrics.request('', 'refused', 500, 0);
  }

  /**
   * The attempt failed before the answer started: the request goes on as node:http's objects in
   * the proxy, which judges the failure (retry, or the gateway's answer) as its own. The slot and
   * the budget's count pass to it; the upstream stays held until it holds it itself. A body that
   * stalled is the client's failure, not the target's: 408, as the proxy answers it.
   */
  #handOver(err: Error): void {
    this.#done = true;
    inProgress.delete(this.#socket);
    const target = this.#target!;
    target.active--;
    const unhold = this.#unhold;
    this.#unhold = null;
    let released = false;
    try {
      const { req, res } = this.#objectsForProxy();
      if (this.#stalled) {
        released = true;
        this.#release();
        if (this.#retryGranted) this.#a.upstream.budget.retryEnded();
        this.#a.upstream.budget.requestEnded();
        endUnsentRequest(this.#snapshot, req, res, this.#a, this.#requestId, this.#started, this.#owner.metrics, this.#owner.onFailure, 'body-stalled');
        return;
      }
      continueProxyHttp(this.#snapshot, req, res, this.#a, this.#requestId, this.#started, this.#owner.metrics, this.#owner.onFailure, {
        target,
        attemptStarted: this.#attemptStarted,
        error: new ForwardError(err, this.#clientGone, this.#connected),
        headers: this.#headers,
        release: this.#release,
        retryGranted: this.#retryGranted,
      });
    } catch (thrown) {
      // A bug (continueProxyHttp never throws; its own failures are answered by onFailure): the
      // connection goes, the slot is given back.
      if (!released) {
        this.#release();
        if (this.#retryGranted) this.#a.upstream.budget.retryEnded();
        this.#a.upstream.budget.requestEnded();
      }
      this.#socket.destroy();
      this.#owner.logger.error({ reqId: this.#requestId, code: 'GW_ERR_INTERNAL', err: thrown }, 'request failed');
      this.#owner.metrics.request('', 'refused', 500, 0);
    } finally {
      unhold?.();
    }
  }
}

/**
 * A request body as the gateway's upstream client reads it (http1-upstream-client.ts: 'data',
 * 'end', pause(), resume(), readableEnded), fed by the connection's parser. What arrives before
 * the client listens waits here, in order, and goes to its listener the moment it attaches; what
 * the client never read is handed to node:http's request if the proxy takes over. It emits no
 * 'error' or 'close': the exchange aborts the upstream request itself.
 */
class LeanBody {
  readonly #x: LeanExchange;
  #data: ((chunk: Buffer) => void) | null = null;
  #end: (() => void) | null = null;
  #queued: Buffer[] | null = null;
  #queuedBytes = 0;
  #ended = false;
  /** The upstream client asked for a pause (its connection's buffer is full). */
  #sinkPaused = false;
  /** RELAY_BUFFER_BYTES wait for the upstream client (its connection is still being made). */
  #queuePaused = false;

  constructor(x: LeanExchange) {
    this.#x = x;
  }

  /** The parser delivered the whole body. */
  get ended(): boolean {
    return this.#ended;
  }

  /** Bytes read from the client that the upstream client has not taken yet. */
  get queuedBytes(): number {
    return this.#queuedBytes;
  }

  get readableEnded(): boolean {
    return this.#ended && this.#queued === null;
  }

  push(chunk: Buffer): void {
    const data = this.#data;
    if (data !== null && this.#queued === null) data(chunk);
    else {
      (this.#queued ??= []).push(chunk);
      this.#queuedBytes += chunk.length;
      // As node:http's request stream past its high-water mark: the client is paused until the
      // upstream client reads what waits.
      if (this.#queuedBytes >= RELAY_BUFFER_BYTES && !this.#queuePaused) {
        this.#queuePaused = true;
        this.#paused();
      }
    }
  }

  /** The client's socket is paused while either side asks for it. */
  #paused(): void {
    if (this.#sinkPaused || this.#queuePaused) this.#x.pauseClient();
    else this.#x.resumeClient();
  }

  end(): void {
    this.#ended = true;
    if (this.#queued === null) this.#end?.();
  }

  /** What waits, for node:http's request (whose own flow control takes over the client's socket). */
  takeQueued(): Buffer[] {
    const q = this.#queued ?? [];
    this.#queued = null;
    this.#queuedBytes = 0;
    this.#queuePaused = false;
    return q;
  }

  on(event: string, fn: (...args: never[]) => void): this {
    if (event !== 'data') return this;
    this.#data = fn as (chunk: Buffer) => void;
    // What waited goes now, in order, as long as the listener stays.
    const q = this.#queued;
    if (q !== null) {
      this.#queued = null;
      this.#queuedBytes = 0;
      for (let i = 0; i < q.length; i++) {
        if (this.#data === null) {
          this.#queued = q.slice(i);
          for (const c of this.#queued) this.#queuedBytes += c.length;
          break;
        }
        this.#data(q[i]!);
      }
      if (this.#queued === null && this.#queuePaused) {
        this.#queuePaused = false;
        this.#paused();
      }
    }
    return this;
  }

  once(event: string, fn: (...args: never[]) => void): this {
    if (event === 'end') this.#end = fn as () => void;
    return this;
  }

  off(event: string, fn: (...args: never[]) => void): this {
    if (event === 'data' && this.#data === fn) this.#data = null;
    else if (event === 'end' && this.#end === fn) this.#end = null;
    return this;
  }

  removeListener(event: string, fn: (...args: never[]) => void): this {
    return this.off(event, fn);
  }

  pause(): this {
    this.#sinkPaused = true;
    this.#paused();
    return this;
  }

  resume(): this {
    this.#sinkPaused = false;
    this.#paused();
    return this;
  }
}

/** node:http's ServerResponse#writeContinue(). */
function writeContinue(socket: TLSSocket): void {
  socket.write('HTTP/1.1 100 Continue\r\n\r\n', 'latin1');
}

const RESOLVED = Promise.resolve();
const NONE: ReadonlySet<UpstreamTarget> = new Set();

/** What a request that failed inside serve() leaves on its connection (closed by then). */
const GONE: LeanExchangeInProgress = Object.freeze({ clientGone: () => undefined, drained: () => undefined, body: () => undefined, bodyEnd: () => undefined, closeAfter: () => undefined, timeout: () => false, answerStarted: true });
const NO_RELEASE: Release = () => undefined;

/**
 * A header list with every name's values together at its first place, as setHeader() keeps them
 * (names compared without case; each setHeader() call stores the name as that call spelled it,
 * so the last spelling is the one written).
 */
function groupedByName(list: readonly string[]): string[] {
  let seen: Map<string, number[]> | null = null;
  let repeated = false;
  for (let i = 0; i + 1 < list.length; i += 2) {
    const key = canonicalHeaderName(list[i]!);
    seen ??= new Map();
    const at = seen.get(key);
    if (at === undefined) seen.set(key, [i]);
    else {
      at.push(i);
      repeated = true;
    }
  }
  if (!repeated || seen === null) return list as string[];
  const out: string[] = [];
  for (const positions of seen.values()) {
    const name = list[positions[positions.length - 1]!]!;
    for (const i of positions) out.push(name, list[i + 1]!);
  }
  return out;
}

/** The last chunk with the trailers, as node:http's addTrailers() and end() write them; null when one fails its checks. */
function trailerSection(trailers: Record<string, string | string[]>): string | null {
  let out = '0\r\n';
  for (const name of Object.keys(trailers)) {
    if (!TOKEN.test(name)) return null;
    const value = trailers[name]!;
    for (const v of Array.isArray(value) ? value : [value]) {
      if (INVALID_VALUE.test(v)) return null;
      out += `${name}: ${v}\r\n`;
    }
  }
  return `${out}\r\n`;
}
