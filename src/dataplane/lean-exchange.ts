/**
 * The lean exchange (`server.engine: lean`): a bodiless GET or HEAD that admit() forwards to an
 * HTTP/1 upstream is served from the parser's head to the upstream client and back onto the
 * client's socket, without node:http's IncomingMessage and ServerResponse, the proxy's promise per
 * request or its dispatch handler. The decision, the header lists, the upstream slot and budget,
 * the outlier bookkeeping, the access record and the metrics are the proxy's own (admit.ts,
 * proxy-http.ts); only the request's objects and the answer's writing are this module's.
 *
 * Why: together those layers are about a sixth of the gateway's CPU per keep-alive request
 * (bench/README.md, "Which layers the distance is in"), and none of them does anything for a
 * request that has no body and an answer relayed as it came.
 *
 * What it takes, decided before anything is done (else it returns null and node:http's objects
 * serve the request, as they serve every other): HTTP/1.1 or 1.0 (not naming TE), GET or HEAD,
 * no Content-Length, Transfer-Encoding or Expect, no gRPC; the gateway neither closing nor waiting on an OCSP answer
 * for the connection; admitted to a route whose upstream speaks HTTP/1 and retries no status; an
 * upstream slot free now, a token of the route's rate limit (if it has one), and a target.
 *
 * What it hands over: an attempt that fails before a byte of the answer was written (connect
 * failure, reset, timeout, a client that left) becomes node:http's objects for the request and
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
import { STATUS_CODES } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { Dispatcher } from 'undici';
import type { Logger } from 'pino';
import { buildClientResponseHeaders, canonicalHeaderName } from '../proxy/forward-headers.js';
import { ForwardError, relayableTrailers, type UpstreamTrailers } from '../proxy/forward-request.js';
import { RELAY_BUFFER_BYTES } from '../proxy/relay-buffer.js';
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
import { continueProxyHttp, recordServed, upstreamRequestHeaders, type ProxyFailureHandler } from './proxy-http.js';

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

/** Which request head lines keep a request off the lean exchange (lower-cased names, by length). */
function leanHeadFacts(headers: readonly string[]): { host: string | undefined; hostCount: number; requestId: string | undefined; te: boolean } | null {
  let host: string | undefined;
  let hostCount = 0;
  let requestId: string | undefined;
  let te = false;
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
        if (name.toLowerCase() === 'expect') return null;
        break;
      case 12:
        if (name.toLowerCase() === 'x-request-id') {
          // Several are joined as node:http joins them; requestIdFor() then makes a fresh one.
          requestId = requestId === undefined ? headers[i + 1]! : `${requestId}, ${headers[i + 1]!}`;
        } else if (name.toLowerCase() === 'content-type' && /^application\/grpc/i.test(headers[i + 1]!)) return null;
        break;
      case 14:
        if (name.toLowerCase() === 'content-length') return null;
        break;
      case 17:
        if (name.toLowerCase() === 'transfer-encoding') return null;
        break;
    }
  }
  return { host, hostCount, requestId, te };
}

/** The lean exchange each client connection is busy with, for the drain. */
const inProgress = new WeakMap<object, LeanExchange>();

/**
 * The drain's view of a connection's lean exchange, if it has one in progress: `closeAfter()` makes
 * the connection close after its answer (`Connection: close` when the head is still to be
 * written), as the drain does with node:http's response.
 */
export function leanExchangeOn(socket: object): { closeAfter(): void } | undefined {
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
    if (head.versionMajor !== 1 || head.versionMinor > 1 || (head.method !== 'GET' && head.method !== 'HEAD')) return null;
    if (this.#gate.closing) return null;
    const facts = leanHeadFacts(head.headers);
    // An HTTP/1.0 client that names TE may read a chunked answer (node:http then sends one).
    if (facts === null || (head.versionMinor === 0 && facts.te)) return null;
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
      expect: undefined,
      headerLines: head.headers.length >> 1,
    };
    const a = admit(snapshot, connection, requestHead);
    if (a.kind !== 'forward') return null;
    const upstream = a.upstream;
    if (upstream.protocol !== 'http1' || upstream.retries.onStatus) return null;
    const requestId = requestIdFor(facts.requestId);
    const upstreamPath = a.forwarding.rewrite === null ? a.path : a.forwarding.rewrite(a.path);
    const headers = upstreamRequestHeaders(snapshot, a, head.headers, socket.remoteAddress ?? '', facts.host ?? null, requestId);
    return { snapshot, a, started, requestId, upstreamPath, headers, http10: head.versionMinor === 0 };
  }

  /** Takes an upstream slot and a target, and starts the exchange; null when there is no slot or target now. */
  #begin(conn: LeanExchangeConnection, plan: LeanPlan): LeanExchangeInProgress | null {
    const upstream = plan.a.upstream;
    const slots = upstream.gate;
    if (slots.active + slots.waiting >= upstream.limits.maxRequests) return null;
    const release = slots.tryAcquire();
    if (release === null) return null;
    let x: LeanExchange;
    try {
      // The route's rate limit, once the request is sure to be taken otherwise: a token is taken
      // once, here or by the proxy. A request over the limit is left to the proxy, which asks the
      // limiter again and answers 429 (a refusal takes no token).
      const rate = plan.a.forwarding.rateLimit;
      if (rate !== null && (upstream.eligibleCount(NONE) === 0 || rate.limiter.take(rateLimitKeyOf(plan.a.context.identity, rate.key), Date.now()) > 0)) {
        release();
        return null;
      }
      const target = upstream.pick(null);
      if (target === undefined) {
        release();
        return null;
      }
      // From here on the request is this exchange's (or, on a failure, the proxy's it hands over to).
      x = new LeanExchange(this, conn, plan, release, target, conn.keepAlive && !this.#gate.draining, plan.snapshot.config.server.keepAliveTimeout);
    } catch (err) {
      release();
      throw err;
    }
    x.start();
    return x;
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
}

/** One bodiless request and its relayed answer; the undici dispatch handler the upstream client drives. */
class LeanExchange implements Dispatcher.DispatchHandler, LeanExchangeInProgress {
  readonly #owner: LeanExchanges;
  readonly #conn: LeanExchangeConnection;
  readonly #socket: TLSSocket;
  readonly #snapshot: RuntimeSnapshot;
  readonly #a: Forward;
  readonly #requestId: string;
  readonly #started: bigint;
  readonly #upstreamPath: string;
  readonly #headers: string[];
  readonly #release: Release;
  readonly #target: UpstreamTarget;
  #keepAlive: boolean;
  readonly #keepAliveTimeout: number;
  readonly #head: boolean;
  readonly #http10: boolean;
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

  constructor(owner: LeanExchanges, conn: LeanExchangeConnection, plan: LeanPlan, release: Release, target: UpstreamTarget, keepAlive: boolean, keepAliveTimeout: number) {
    this.#owner = owner;
    this.#conn = conn;
    this.#socket = conn.socket;
    this.#snapshot = plan.snapshot;
    this.#a = plan.a;
    this.#requestId = plan.requestId;
    this.#started = plan.started;
    this.#upstreamPath = plan.upstreamPath;
    this.#headers = plan.headers;
    this.#release = release;
    this.#target = target;
    this.#keepAlive = keepAlive;
    this.#keepAliveTimeout = keepAliveTimeout;
    this.#head = plan.a.method === 'HEAD';
    this.#http10 = plan.http10;
  }

  start(): void {
    inProgress.set(this.#socket, this);
    const upstream = this.#a.upstream;
    this.#unhold = upstream.hold();
    // Envoy's budget counts the requests waiting for a connection as active too.
    upstream.budget.requestStarted();
    this.#attemptStarted = process.hrtime.bigint();
    this.#target.active++;
    const timeout = this.#a.forwarding.responseTimeout;
    this.#target.pool.dispatch(
      { method: this.#a.method as Dispatcher.HttpMethod, path: this.#upstreamPath + this.#a.query, headers: this.#headers, body: null, ...(timeout !== undefined ? { headersTimeout: timeout } : {}) },
      this,
    );
  }

  // ---- the client's side (LeanExchangeInProgress) --------------------------------------------

  clientGone(): void {
    if (this.#done) return;
    this.#clientGone = true;
    this.#abort?.(new Error('client closed the connection'));
  }

  drained(): void {
    this.#resumeUpstream?.();
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
    }
  }

  onHeaders(statusCode: number, rawHeaders: readonly (Buffer | string)[], resume: () => void): boolean {
    if (statusCode < 200 || this.#done) return true;
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
    this.#bytesOut += chunk.length;
    const socket = this.#socket;
    this.#corkForThisTick();
    if (this.#pending !== null) {
      if (!this.#writeHead(chunk, false)) {
        this.#cut(new Error('invalid response header'));
        return true;
      }
    } else if (this.#hasBody && !socket.destroyed) {
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
    const socket = this.#socket;
    const relayed = trailers == null ? null : relayableTrailers(trailers as unknown as UpstreamTrailers);
    if (this.#pending !== null) {
      // The whole answer is known before its head went out: node:http's end() without a body
      // (grouped headers, Content-Length: 0), unless there are trailers (chunked, as writeHead then end).
      if (!this.#writeHead(null, relayed === null)) return this.#cut(new Error('invalid response header'));
    }
    if (this.#chunked && !socket.destroyed) {
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
    if (this.#status === 0) return this.#handOver(err);
    this.#cut(err);
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
    let date = false;
    const lines = ended ? groupedByName(list) : list;
    for (let i = 0; i + 1 < lines.length; i += 2) {
      const name = lines[i]!;
      const value = lines[i + 1]!;
      if (!TOKEN.test(name) || INVALID_VALUE.test(value)) return false;
      head += `${name}: ${value}\r\n`;
      if (name.length === 14 && name.toLowerCase() === 'content-length') contentLength = true;
      else if (name.length === 4 && name.toLowerCase() === 'date') date = true;
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
    if (socket.destroyed) return true;
    if (body === null || !this.#hasBody) socket.write(head, 'latin1');
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
    const upstream = this.#a.upstream;
    const status = this.#status;
    if (status >= 500) upstream.failed(this.#target);
    else upstream.succeeded(this.#target);
    this.#release_();
    recordServed(this.#a, this.#requestId, this.#http10 ? '1.0' : '1.1', this.#upstreamPath, this.#started, this.#target, { status, bytesOut: this.#bytesOut, error, clientAborted: this.#clientGone }, null, this.#owner.metrics);
    if (error !== null) {
      this.#socket.destroy();
      this.#conn.responded(true);
    } else this.#conn.responded(this.#last);
  }

  /** The answer started and cannot be finished: the client's connection is closed (node:http's res.destroy). */
  #cut(err: Error): void {
    if (this.#done) return;
    this.#abort?.(err);
    this.#finish(err);
  }

  #release_(): void {
    this.#target.active--;
    const budget = this.#a.upstream.budget;
    budget.requestEnded();
    this.#release();
    this.#unhold?.();
    this.#unhold = null;
  }

  /**
   * The attempt failed before the answer started: the request goes on as node:http's objects in
   * the proxy, which judges the failure (retry, or the gateway's answer) as its own. The slot and
   * the budget's count pass to it; the upstream stays held until it holds it itself.
   */
  #handOver(err: Error): void {
    this.#done = true;
    inProgress.delete(this.#socket);
    this.#target.active--;
    const unhold = this.#unhold;
    this.#unhold = null;
    try {
      const { req, res } = this.#conn.materialize();
      continueProxyHttp(this.#snapshot, req, res, this.#a, this.#requestId, this.#started, this.#owner.metrics, this.#owner.onFailure, {
        target: this.#target,
        attemptStarted: this.#attemptStarted,
        error: new ForwardError(err, this.#clientGone, this.#connected),
        headers: this.#headers,
        release: this.#release,
      });
    } catch (thrown) {
      // A bug (continueProxyHttp never throws; its own failures are answered by onFailure): the
      // connection goes, the slot is given back.
      this.#release();
      this.#a.upstream.budget.requestEnded();
      this.#socket.destroy();
      this.#owner.logger.error({ reqId: this.#requestId, code: 'GW_ERR_INTERNAL', err: thrown }, 'request failed');
      this.#owner.metrics.request('', 'refused', 500, 0);
    } finally {
      unhold?.();
    }
  }
}

const RESOLVED = Promise.resolve();
const NONE: ReadonlySet<UpstreamTarget> = new Set();

/** What a request that failed inside serve() leaves on its connection (closed by then). */
const GONE: LeanExchangeInProgress = Object.freeze({ clientGone: () => undefined, drained: () => undefined });

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
