/**
 * The streaming proxy for HTTP/1: streams one admitted request upstream and the response back,
 * then writes its access record. A request with a body takes an upstream connection only once its
 * body starts to arrive, and its body may not stall longer than server.bodyTimeout: a client that
 * announces a body and sends none cannot hold the upstream's connections.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ErrorCode } from '../errors/registry.js';
import { responseGone } from '../proxy/client-response.js';
import { buildUpstreamRequestHeaders } from '../proxy/forward-headers.js';
import type { RetryReason } from '../config/schema.js';
import { acceptsTrailers, ForwardError, forwardRequest, RetryableStatus, type ForwardResult } from '../proxy/forward-request.js';
import { rateLimitKeyOf } from '../proxy/route-forwarding.js';
import { translateUpstreamError } from '../proxy/upstream-errors.js';
import type { Release } from '../proxy/upstream-gate.js';
import type { Upstream } from '../proxy/upstream-pool.js';
import type { UpstreamTarget } from '../proxy/upstream-target.js';
import type { RuntimeSnapshot } from '../runtime/snapshot.js';
import type { GatewayMetrics } from '../telemetry/metrics.js';
import type { Forward } from './admit.js';
import { hasBody, requestAuthority } from './http1-request.js';
import { writeInfoRecord } from '../log/record-line.js';
import { elapsedMicros, elapsedMs, ServedRecord, type Attempt } from './log-records.js';
import { startGrpcDeadline } from './grpc-deadline-timer.js';
import { firstBodyBytes, watchBodyStall } from './request-body-watch.js';
import { respondError } from './respond-error.js';
import { midRequestRefusal } from './mid-request-refusal.js';

/** The id of the request each response answers, for the 'clientError' handler (proxiedRequestId). */
const requestIds = new WeakMap<ServerResponse, string>();

/** The id of the proxied request `res` answers, if it is one. */
export function proxiedRequestId(res: object): string | undefined {
  return requestIds.get(res as ServerResponse);
}

/**
 * Proxies one admitted request. One object per request carries its state (no closure is made per
 * request on the common path), and the upstream stays open for this request even if a reload
 * retires it meanwhile. `rateLimited`: the route's rate limit has taken its token for the request
 * already (a lean exchange that had it did).
 */
export function proxyHttp(snapshot: RuntimeSnapshot, raw: IncomingMessage, res: ServerResponse, a: Forward, requestId: string, started: bigint, metrics: GatewayMetrics, onFailure: ProxyFailureHandler, rateLimited = false): void {
  void new ProxiedRequest(snapshot, raw, res, a, requestId, started, metrics, onFailure).run(null, rateLimited);
}

/**
 * A request's first attempt, made by the lean exchange (lean-exchange.ts), that failed before any
 * byte of its response was written to the client. Everything it held passes to the request that
 * goes on from it: the upstream slot, the budget's count of it, the header list. Of a request
 * body, what the attempt did not send is in node:http's request by then (all of it when the
 * attempt never reached a connection, so that another target can be tried).
 */
export interface FailedFirstAttempt {
  readonly target: UpstreamTarget;
  readonly attemptStarted: bigint;
  /** The dispatch handler's error, as ForwardExchange would have rejected with it. */
  readonly error: ForwardError;
  readonly headers: string[];
  /** The upstream's slot (gate), held since before the attempt. */
  readonly release: Release;
  /**
   * The attempt ended in a status the retry policy retries (error's cause is a RetryableStatus),
   * and the retry was granted its budget slot when the status arrived, as statusRetryFor grants it.
   */
  readonly retryGranted?: boolean;
}

/**
 * Goes on from a lean exchange's failed first attempt exactly as if this proxy had made it: the
 * failure is judged (retried on another target, or answered) by the same code, with node:http's
 * objects for the client from here on. `budget.requestStarted()` and the gate slot were taken by
 * the lean exchange and are released here.
 */
export function continueProxyHttp(snapshot: RuntimeSnapshot, raw: IncomingMessage, res: ServerResponse, a: Forward, requestId: string, started: bigint, metrics: GatewayMetrics, onFailure: ProxyFailureHandler, first: FailedFirstAttempt): void {
  void new ProxiedRequest(snapshot, raw, res, a, requestId, started, metrics, onFailure).run(first, true);
}

/**
 * Ends a request whose body a lean exchange was reading (lean-exchange.ts) before any of it was
 * sent upstream, as this proxy ends it in the same case: the body stalled for server.bodyTimeout
 * (408, the connection closed), or the client left (the 499 record). Nothing upstream was held
 * for it by then, or it was given back.
 */
export function endUnsentRequest(snapshot: RuntimeSnapshot, raw: IncomingMessage, res: ServerResponse, a: Forward, requestId: string, started: bigint, metrics: GatewayMetrics, onFailure: ProxyFailureHandler, why: 'body-stalled' | 'client-left'): void {
  try {
    const p = new ProxiedRequest(snapshot, raw, res, a, requestId, started, metrics, onFailure);
    if (why === 'client-left') p.clientLeft();
    else p.bodyStalled();
  } catch (err) {
    onFailure(res, requestId, err);
  }
}

/**
 * The header list sent upstream for an admitted request: the client's headers less the hop-by-hop
 * and stripped ones, the identity and forwarding headers the route sends, and the Host the route
 * asks for (undici and the gateway's own client send the target's host:port unless the list names one).
 */
export function upstreamRequestHeaders(snapshot: RuntimeSnapshot, a: Forward, rawHeaders: readonly string[], clientAddress: string, authority: string | null, requestId: string): string[] {
  const { forwarding, upstream, context } = a;
  const send = forwarding.identityHeaders;
  const headers = buildUpstreamRequestHeaders(rawHeaders, {
    filter: snapshot.requests.headerFilter,
    clientAddress,
    originalHost: authority,
    requestId,
    xfcc: send.xfcc ? context.xfcc : null,
    clientCert: send.clientCert ? context.rfc9440.clientCert : null,
    clientCertChain: send.clientCertChain ? context.rfc9440.clientCertChain : null,
  });
  const host = forwarding.host === 'servername' ? upstream.servername : forwarding.host === 'preserve' ? authority : null;
  if (host !== null) headers.push('host', host);
  return headers;
}

/**
 * The access record of a response relayed (whole, or cut after it started), and its metrics: the
 * line every served request ends with, whichever exchange relayed it.
 */
export function recordServed(a: Forward, requestId: string, httpVersion: string, upstreamPath: string, started: bigint, target: UpstreamTarget, result: ForwardResult, attempts: Attempt[] | null, metrics: GatewayMetrics): void {
  const micros = elapsedMicros(started);
  const record = new ServedRecord(
    requestId,
    httpVersion,
    a.method,
    a.path,
    upstreamPath !== a.path ? upstreamPath : undefined,
    a.route,
    a.rule,
    a.upstream.name,
    a.decision,
    a.audit,
    target.origin,
    result.status,
    result.bytesOut,
    micros,
    attempts,
    result.error,
    result.clientAborted,
  );
  if (record.composable) writeInfoRecord(a.context.log, record, 'request');
  else a.context.log.info(record.asObject(), 'request');
  metrics.request(a.route, a.decision, result.status, micros / 1e6);
}

/** Answers a request whose proxying threw (a bug): the caller's 500 and log record. */
export type ProxyFailureHandler = (res: ServerResponse, requestId: string, err: unknown) => void;

/** Methods whose repetition the client must already expect (RFC 9110 9.2.2). */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/** A request that may be sent again as it is after it was sent: idempotent and without a body. */
export function replayableRequest(method: string, bodiless: boolean): boolean {
  return bodiless && IDEMPOTENT.has(method);
}

/** What one failed attempt counts as for the retry policy, or null when it is never retried. */
function retryReasonOf(cause: unknown, sent: boolean): RetryReason | null {
  if (cause instanceof RetryableStatus) return String(cause.status) as RetryReason;
  let code: unknown;
  for (let cur = cause, i = 0; i < 3 && cur != null && typeof code !== 'string'; i++, cur = (cur as { cause?: unknown }).cause) code = (cur as { code?: unknown }).code;
  if (!sent) return code === 'UND_ERR_CONNECT_TIMEOUT' ? 'connect-timeout' : 'connect-failure';
  if (code === 'UND_ERR_REFUSED_STREAM') return 'refused-stream';
  return code === 'ECONNRESET' || code === 'EPIPE' || code === 'UND_ERR_SOCKET' || code === 'UND_ERR_CLOSED' ? 'reset' : null;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The fields every log record of a proxied request starts with, in their order in the record. */
interface AccessFields {
  readonly reqId: string;
  /** '1.1', '1.0' or '2.0' (HTTP/2 streams and HTTP/1.1 share the port and this record). */
  readonly httpVersion: string;
  readonly method: string;
  readonly path: string;
  readonly upstreamPath?: string;
  readonly route: string;
  readonly rule: string | null;
  readonly upstream: string;
  readonly decision: string;
  readonly audit?: Readonly<Record<string, unknown>>;
}

/**
 * One admitted request on its way upstream: limits, retries over the upstream's targets, and the
 * request's log record and metrics. The rare paths (refusals, a client that left, retries) are
 * methods, not closures made afresh for every request.
 */
class ProxiedRequest {
  readonly #snapshot: RuntimeSnapshot;
  readonly #raw: IncomingMessage;
  readonly #res: ServerResponse;
  readonly #a: Forward;
  readonly #requestId: string;
  readonly #started: bigint;
  readonly #metrics: GatewayMetrics;
  readonly #onFailure: ProxyFailureHandler;
  readonly #upstream: Upstream;
  readonly #upstreamPath: string;
  readonly #body: IncomingMessage | null;
  #attempts: Attempt[] | null = null;
  #stall: ReturnType<typeof watchBodyStall> | null = null;
  #tried: Set<UpstreamTarget> | null = null;
  #lastTarget: UpstreamTarget | null = null;

  constructor(snapshot: RuntimeSnapshot, raw: IncomingMessage, res: ServerResponse, a: Forward, requestId: string, started: bigint, metrics: GatewayMetrics, onFailure: ProxyFailureHandler) {
    this.#snapshot = snapshot;
    this.#raw = raw;
    this.#res = res;
    this.#a = a;
    this.#requestId = requestId;
    this.#started = started;
    this.#metrics = metrics;
    this.#onFailure = onFailure;
    this.#upstream = a.upstream;
    this.#upstreamPath = a.forwarding.rewrite === null ? a.path : a.forwarding.rewrite(a.path);
    this.#body = hasBody(raw) ? raw : null;
    requestIds.set(res, requestId);
  }

  /** The record's leading fields; optional ones are left out, as the log shows them. */
  #access(): AccessFields {
    const a = this.#a;
    return {
      reqId: this.#requestId,
      httpVersion: this.#raw.httpVersion,
      method: a.method,
      path: a.path,
      ...(this.#upstreamPath !== a.path ? { upstreamPath: this.#upstreamPath } : {}),
      route: a.route,
      rule: a.rule,
      upstream: this.#upstream.name,
      decision: a.decision,
      ...(a.audit !== null ? { audit: a.audit } : {}),
    };
  }

  #refuse(code: ErrorCode, fields: Record<string, unknown>, headers?: Readonly<Record<string, string>>): void {
    this.#stall?.stop();
    const attempts = this.#attempts;
    const durationMs = elapsedMs(this.#started);
    this.#a.context.log.warn(
      { ...this.#access(), code, durationMs, ...(attempts !== null ? { attempts } : {}), ...fields },
      code === 'GW_ERR_REQUEST_TIMEOUT' || code === 'GW_ERR_RATE_LIMITED' ? 'request refused' : 'upstream failed',
    );
    const body = this.#body;
    const status = respondError(this.#res, code, this.#requestId, { close: body !== null && !body.complete, ...(headers ? { headers } : {}) });
    if (code !== 'GW_ERR_REQUEST_TIMEOUT' && code !== 'GW_ERR_RATE_LIMITED') this.#metrics.upstreamError(this.#upstream.name, code);
    this.#metrics.request(this.#a.route, this.#a.decision, status, elapsedMs(this.#started) / 1000);
  }

  /** endUnsentRequest's two endings. */
  clientLeft(): void {
    this.#clientLeft();
  }

  bodyStalled(): void {
    this.#refuse('GW_ERR_REQUEST_TIMEOUT', { reason: 'body-stalled', afterMs: this.#snapshot.requests.bodyTimeout });
  }

  #clientLeft(): void {
    this.#stall?.stop();
    this.#res.destroy();
    const attempts = this.#attempts;
    const durationMs = elapsedMs(this.#started);
    // The connection closed because the parser refused the request's own bytes (mid-request-refusal.ts).
    const refusal = this.#raw.socket !== null ? midRequestRefusal(this.#raw.socket) : undefined;
    if (refusal !== undefined) {
      this.#a.context.log.info({ ...this.#access(), status: refusal.status, code: refusal.code, reason: refusal.reason, durationMs, ...(attempts !== null ? { attempts } : {}) }, 'request refused');
      this.#metrics.request(this.#a.route, 'refused', refusal.status, durationMs / 1000);
      return;
    }
    this.#a.context.log.info({ ...this.#access(), status: 499, clientAborted: true, durationMs, ...(attempts !== null ? { attempts } : {}) }, 'request');
    this.#metrics.request(this.#a.route, this.#a.decision, 499, durationMs / 1000);
  }

  /** Circuit breaking, Envoy's way: too many outstanding or waiting requests are refused at once. */
  #overloaded(reason: string): void {
    const gate = this.#upstream.gate;
    this.#metrics.upstreamRejected(this.#upstream.name, reason);
    this.#refuse('GW_ERR_UPSTREAM_OVERLOADED', { reason, waitedMs: elapsedMs(this.#started), active: gate.active, waiting: gate.waiting }, RETRY_AFTER);
  }

  /** The access record of a response relayed (whole, or cut after it started), and its metrics. */
  #served(target: UpstreamTarget, result: ForwardResult): void {
    recordServed(this.#a, this.#requestId, this.#raw.httpVersion, this.#upstreamPath, this.#started, target, result, this.#attempts, this.#metrics);
  }

  /**
   * One async frame for the whole request; the upstream is held open to the end of it. It never
   * rejects: whatever throws is the failure handler's (no promise chained per request for it).
   */
  async run(first: FailedFirstAttempt | null, rateLimited: boolean): Promise<void> {
    const unhold = this.#upstream.hold();
    try {
      const { forwarding } = this.#a;
      const upstream = this.#upstream;
      const raw = this.#raw;
      const res = this.#res;
      const body = this.#body;
      const bodyTimeout = this.#snapshot.requests.bodyTimeout;
      const rate = forwarding.rateLimit;
      // A request a lean exchange had has passed the rate limit already (it took the route's token).
      if (rate !== null && !rateLimited) {
        // Before the body is waited for or a connection taken: a limited client costs nothing upstream.
        const waitMs = rate.limiter.take(rateLimitKeyOf(this.#a.context.identity, rate.key), Date.now());
        if (waitMs > 0) {
          this.#metrics.rateLimited(this.#a.route);
          return this.#refuse('GW_ERR_RATE_LIMITED', { key: rate.key }, { 'retry-after': String(Math.max(1, Math.ceil(waitMs / 1000))) });
        }
      }
      const stall = body !== null && !raw.complete ? watchBodyStall(raw, res, bodyTimeout) : null;
      this.#stall = stall;
      // (A lean exchange's failed attempt holds its slot already: nothing to wait for before judging it.)
      if (stall !== null && raw.readableLength === 0 && first === null) {
        const outcome = await firstBodyBytes(raw, res, stall.signal);
        // An HTTP/2 stream that was reset ends its body too: the client is gone, not sending.
        if (outcome === 'client-left' || responseGone(res)) return this.#clientLeft();
        if (outcome === 'stalled') return this.#refuse('GW_ERR_REQUEST_TIMEOUT', { reason: 'body-stalled', afterMs: bodyTimeout });
      }
      const gate = upstream.gate;
      if (first === null && gate.active + gate.waiting >= upstream.limits.maxRequests) return this.#overloaded('max-requests');
      const budget = upstream.budget;
      const retry = new RetryState(upstream, this.#a.method, body === null);
      // A lean exchange's attempt that ended in a retried status holds the retry's budget slot.
      if (first?.retryGranted === true) retry.nextSlot = true;
      let release: Release | null = first?.release ?? null;
      // Envoy's budget counts the requests waiting for a connection as active too (a lean first
      // attempt counted itself).
      if (first === null) budget.requestStarted();
      try {
        // Most requests find a free slot: no promise or closure on that path.
        release ??= gate.tryAcquire();
        if (release === null) {
          if (gate.waiting >= upstream.limits.maxPending) return this.#overloaded('max-pending');
          const waited = await acquireUpstream(upstream, res);
          if (waited === 'client-left') return this.#clientLeft();
          if (waited === 'overloaded') return this.#overloaded('queue-timeout');
          release = waited;
        }
        const headers = first?.headers ?? upstreamRequestHeaders(this.#snapshot, this.#a, raw.rawHeaders, raw.socket?.remoteAddress ?? '', requestAuthority(raw), this.#requestId);
        // gRPC over HTTP/2 needs `te: trailers` (hop-by-hop, so dropped above) and honours grpc-timeout.
        if (upstream.protocol === 'http2' && acceptsTrailers(raw.headers.te)) headers.push('te', 'trailers');
        const deadline = startGrpcDeadline(raw, res, this.#started, stall?.signal);
        if (deadline?.expired) return this.#refuse('GW_ERR_UPSTREAM_TIMEOUT', { reason: 'grpc-timeout', afterMs: deadline.ms });
        let failedFirst = first;
        for (;;) {
          const target = failedFirst?.target ?? upstream.pick(this.#tried);
          if (target === undefined) {
            // Nothing eligible from the start, or (in a fleet) every target left refused to connect.
            if (retry.lastError === null || (retry.lastReason === 'connect-failure' && retry.allUnreachable && upstream.size > 1)) {
              const reason = retry.lastError !== null ? 'all-refused' : upstream.size === 0 ? 'no-targets' : 'all-down';
              this.#metrics.upstreamRejected(upstream.name, reason);
              return this.#refuse('GW_ERR_UPSTREAM_UNAVAILABLE', { reason, targets: upstream.size }, RETRY_AFTER);
            }
            return this.#failWith(retry.lastError);
          }
          const attemptStarted = failedFirst?.attemptStarted ?? process.hrtime.bigint();
          target.active++;
          try {
            let err: unknown;
            if (failedFirst !== null) {
              err = failedFirst.error;
              failedFirst = null;
            } else {
              try {
                const result = await forwardRequest(target.pool, {
                  method: this.#a.method,
                  path: this.#upstreamPath + this.#a.query,
                  headers,
                  body,
                  res,
                  requestId: this.#requestId,
                  signal: deadline?.signal ?? stall?.signal,
                  headersTimeout: forwarding.responseTimeout,
                  // A retried status is dropped only if a retry will really follow: decided when it arrives.
                  retryStatus: retry.statusRetryFor(target, this),
                });
                if (result.status >= 500) upstream.failed(target);
                else upstream.succeeded(target);
                if (this.#attempts !== null) this.#attempts.push({ target: target.origin, outcome: result.status, durationMs: elapsedMs(attemptStarted) });
                return this.#served(target, result);
              } catch (thrown) {
                err = thrown;
              }
            }
            if (err instanceof ForwardError && err.clientAborted) return this.#clientLeft();
            if (stall?.signal.aborted) return this.#refuse('GW_ERR_REQUEST_TIMEOUT', { reason: 'body-stalled', afterMs: bodyTimeout });
            if (deadline?.expired) return this.#refuse('GW_ERR_UPSTREAM_TIMEOUT', { reason: 'grpc-timeout', afterMs: deadline.ms, target: target.origin });
            const cause = err instanceof ForwardError ? err.cause : err;
            const sent = err instanceof ForwardError ? err.sent : true;
            upstream.failed(target);
            const reason = retryReasonOf(cause, sent);
            retry.lastError = cause;
            retry.lastReason = reason;
            this.#lastTarget = target;
            const outcome = cause instanceof RetryableStatus ? cause.status : (translateUpstreamError(cause, upstream.name).code as string);
            if (outcome !== 'GW_ERR_UPSTREAM_UNREACHABLE') retry.allUnreachable = false;
            (this.#attempts ??= []).push({ target: target.origin, outcome, durationMs: elapsedMs(attemptStarted) });
            if (retry.retrySlot) {
              budget.retryEnded();
              retry.retrySlot = false;
            }
            const policy = upstream.retries;
            if (cause instanceof RetryableStatus) {
              // Granted, with its budget slot, when the status arrived (statusRetryFor).
              retry.retrySlot = retry.nextSlot;
              retry.nextSlot = false;
              retry.retries++;
              this.#metrics.upstreamRetry(upstream.name, reason!);
              (this.#tried ??= new Set()).add(target);
              await sleep(backoff(policy.backoffMs, retry.retries));
              if (responseGone(res)) return this.#clientLeft();
              continue;
            }
            // A refused stream was not processed (RFC 9113 8.7): safe to repeat whatever the method,
            // as long as there is no body (a streamed body may be partly consumed).
            const retryable = reason === 'connect-failure' || reason === 'connect-timeout' ? !sent : reason === 'refused-stream' ? body === null : retry.replayable;
            if (reason === null || !policy.on.has(reason) || !retryable) return this.#failWith(cause);
            (this.#tried ??= new Set()).add(target);
            // A connection that was never made cost the target nothing: it fails over to every
            // untried target at once, without counting as a retry or spending the budget.
            if (reason !== 'connect-failure') {
              if (retry.retries >= policy.attempts || !this.grantRetry(reason, target)) return this.#failWith(cause);
              retry.retrySlot = true;
              retry.retries++;
              await sleep(backoff(policy.backoffMs, retry.retries));
              if (responseGone(res)) return this.#clientLeft();
            }
            this.#metrics.upstreamRetry(upstream.name, reason);
          } finally {
            target.active--;
          }
        }
      } finally {
        if (retry.retrySlot) budget.retryEnded();
        if (retry.nextSlot) budget.retryEnded();
        budget.requestEnded();
        release?.();
        stall?.stop();
      }
    } catch (err) {
      this.#onFailure(this.#res, this.#requestId, err);
    } finally {
      unhold();
    }
  }

  /** grantRetry() for a retry after an attempt on `current`, with the targets tried so far excluded. */
  grantRetry(reason: RetryReason, current: UpstreamTarget): boolean {
    return grantRetry(this.#upstream, reason, current, this.#tried, this.#metrics);
  }

  #failWith(err: unknown): void {
    const lastTarget = this.#lastTarget;
    if (err instanceof RetryableStatus) {
      // The status was dropped for a retry that then found no target: answer in its place.
      return this.#refuse(err.status === 503 ? 'GW_ERR_UPSTREAM_UNAVAILABLE' : err.status === 504 ? 'GW_ERR_UPSTREAM_TIMEOUT' : 'GW_ERR_UPSTREAM_RESET', { target: lastTarget?.origin, upstreamStatus: err.status });
    }
    const gwErr = translateUpstreamError(err, this.#upstream.name);
    const cause = gwErr.cause as { code?: unknown; message?: unknown } | undefined;
    this.#refuse(gwErr.code, { target: lastTarget?.origin, upstreamError: cause?.code, upstreamMessage: cause?.message });
  }
}

/**
 * The one rule that grants a retry, after a failed attempt or for a status as it arrives, in the
 * proxy and in the lean exchange alike: the upstream's policy names `reason`, a target other than
 * `current` and those `tried` is eligible now, and a slot of the upstream's retry budget is free
 * (taken now: the caller ends it with budget.retryEnded(); a refusal is counted in
 * upstream_retries_refused_total{reason="budget"}). The attempts left are the caller's to check.
 */
export function grantRetry(upstream: Upstream, reason: RetryReason, current: UpstreamTarget, tried: ReadonlySet<UpstreamTarget> | null, metrics: GatewayMetrics): boolean {
  if (!upstream.retries.on.has(reason)) return false;
  const except = new Set(tried);
  except.add(current);
  if (upstream.eligibleCount(except) === 0) return false;
  if (!upstream.budget.tryStartRetry()) {
    metrics.upstreamRetryRefused(upstream.name, 'budget');
    return false;
  }
  return true;
}

/** The retry loop's bookkeeping for one request: attempts made and the budget slots held. */
class RetryState {
  readonly #upstream: Upstream;
  /** The request may be sent again as it is: idempotent and without a body. */
  readonly replayable: boolean;
  retries = 0;
  /** The attempt running is a retry holding a budget slot. */
  retrySlot = false;
  /** A status retry was granted a slot for the next attempt. */
  nextSlot = false;
  lastError: unknown = null;
  lastReason: RetryReason | null = null;
  /** Every failed attempt so far was a refused or unreachable connection. */
  allUnreachable = true;

  constructor(upstream: Upstream, method: string, bodiless: boolean) {
    this.#upstream = upstream;
    this.replayable = replayableRequest(method, bodiless);
  }

  /**
   * The exchange's retryStatus for an attempt on `target`, or undefined when no status is retried
   * (the common case: no closure is made then).
   */
  statusRetryFor(target: UpstreamTarget, request: ProxiedRequest): ((status: number) => boolean) | undefined {
    const policy = this.#upstream.retries;
    if (!(policy.onStatus && this.replayable && this.retries < policy.attempts)) return undefined;
    return (status: number) => {
      if (!request.grantRetry(String(status) as RetryReason, target)) return false;
      this.nextSlot = true;
      return true;
    };
  }
}

const RETRY_AFTER = Object.freeze({ 'retry-after': '1' });

/** Envoy's backoff: fully jittered, exponential from the base, at most ten times the base. */
function backoff(baseMs: number, retry: number): number {
  return Math.random() * Math.min(baseMs * 10, baseMs * 2 ** (retry - 1));
}

/** Waits for an upstream slot; 'overloaded' after the upstream's timeouts.queue. */
function acquireUpstream(upstream: Upstream, res: ServerResponse): Promise<Release | 'overloaded' | 'client-left'> {
  return new Promise((resolve) => {
    const onClose = () => {
      cancel();
      resolve('client-left');
    };
    let granted = false;
    const cancel = upstream.gate.acquire(
      (release) => {
        granted = true;
        res.off('close', onClose);
        if (responseGone(res)) {
          release();
          resolve('client-left');
        } else resolve(release);
      },
      () => {
        res.off('close', onClose);
        resolve('overloaded');
      },
    );
    // The gate may have granted synchronously; only a waiting request listens for the client.
    if (!granted) res.once('close', onClose);
  });
}
