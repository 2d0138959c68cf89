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
import { acceptsTrailers, ForwardError, forwardRequest, RetryableStatus } from '../proxy/forward-request.js';
import { rateLimitKeyOf } from '../proxy/route-forwarding.js';
import { translateUpstreamError } from '../proxy/upstream-errors.js';
import type { Release } from '../proxy/upstream-gate.js';
import type { Upstream } from '../proxy/upstream-pool.js';
import type { UpstreamTarget } from '../proxy/upstream-target.js';
import type { RuntimeSnapshot } from '../runtime/snapshot.js';
import type { GatewayMetrics } from '../telemetry/metrics.js';
import type { Forward } from './admit.js';
import { hasBody, requestAuthority } from './http1-request.js';
import { elapsedMs } from './log-records.js';
import { startGrpcDeadline } from './grpc-deadline-timer.js';
import { firstBodyBytes, watchBodyStall } from './request-body-watch.js';
import { respondError } from './respond-error.js';

export async function proxyHttp(snapshot: RuntimeSnapshot, raw: IncomingMessage, res: ServerResponse, a: Forward, requestId: string, started: bigint, metrics: GatewayMetrics): Promise<void> {
  // The upstream stays open for this request even if a reload retires it meanwhile.
  const unhold = a.upstream.hold();
  try {
    await proxy(snapshot, raw, res, a, requestId, started, metrics);
  } finally {
    unhold();
  }
}

/** Methods whose repetition the client must already expect (RFC 9110 9.2.2). */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/** What one failed attempt counts as for the retry policy, or null when it is never retried. */
function retryReasonOf(cause: unknown, sent: boolean): RetryReason | null {
  if (cause instanceof RetryableStatus) return String(cause.status) as RetryReason;
  let code: unknown;
  for (let cur = cause, i = 0; i < 3 && cur != null && typeof code !== 'string'; i++, cur = (cur as { cause?: unknown }).cause) code = (cur as { code?: unknown }).code;
  if (!sent) return code === 'UND_ERR_CONNECT_TIMEOUT' ? 'connect-timeout' : 'connect-failure';
  if (code === 'UND_ERR_REFUSED_STREAM') return 'refused-stream';
  return code === 'ECONNRESET' || code === 'EPIPE' || code === 'UND_ERR_SOCKET' || code === 'UND_ERR_CLOSED' ? 'reset' : null;
}

interface Attempt {
  readonly target: string;
  readonly outcome: string | number;
  readonly durationMs: number;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function proxy(snapshot: RuntimeSnapshot, raw: IncomingMessage, res: ServerResponse, a: Forward, requestId: string, started: bigint, metrics: GatewayMetrics): Promise<void> {
  const { upstream, forwarding } = a;
  const log = a.context.log;
  const bodyTimeout = snapshot.requests.bodyTimeout;
  const upstreamPath = forwarding.rewrite === null ? a.path : forwarding.rewrite(a.path);
  const access = {
    reqId: requestId,
    // '1.1', '1.0' or '2.0' (HTTP/2 streams and HTTP/1.1 share the port and this record).
    httpVersion: raw.httpVersion,
    method: a.method,
    path: a.path,
    ...(upstreamPath !== a.path ? { upstreamPath } : {}),
    route: a.route,
    rule: a.rule,
    upstream: upstream.name,
    decision: a.decision,
    ...(a.audit !== null ? { audit: a.audit } : {}),
  };
  const body = hasBody(raw) ? raw : null;
  let attempts: Attempt[] | null = null;
  let stall: ReturnType<typeof watchBodyStall> | null = null;
  const refuse = (code: ErrorCode, fields: Record<string, unknown>, headers?: Record<string, string>) => {
    stall?.stop();
    log.warn(
      { ...access, code, durationMs: elapsedMs(started), ...(attempts !== null ? { attempts } : {}), ...fields },
      code === 'GW_ERR_REQUEST_TIMEOUT' || code === 'GW_ERR_RATE_LIMITED' ? 'request refused' : 'upstream failed',
    );
    const status = respondError(res, code, requestId, { close: body !== null && !raw.complete, ...(headers ? { headers } : {}) });
    if (code !== 'GW_ERR_REQUEST_TIMEOUT' && code !== 'GW_ERR_RATE_LIMITED') metrics.upstreamError(upstream.name, code);
    metrics.request(a.route, a.decision, status, elapsedMs(started) / 1000);
  };
  const rate = forwarding.rateLimit;
  if (rate !== null) {
    // Before the body is waited for or a connection taken: a limited client costs nothing upstream.
    const waitMs = rate.limiter.take(rateLimitKeyOf(a.context.identity, rate.key), Date.now());
    if (waitMs > 0) {
      metrics.rateLimited(a.route);
      return refuse('GW_ERR_RATE_LIMITED', { key: rate.key }, { 'retry-after': String(Math.max(1, Math.ceil(waitMs / 1000))) });
    }
  }
  stall = body !== null && !raw.complete ? watchBodyStall(raw, res, bodyTimeout) : null;
  const clientLeft = () => {
    stall?.stop();
    res.destroy();
    log.info({ ...access, status: 499, clientAborted: true, durationMs: elapsedMs(started), ...(attempts !== null ? { attempts } : {}) }, 'request');
    metrics.request(a.route, a.decision, 499, elapsedMs(started) / 1000);
  };
  if (stall !== null && raw.readableLength === 0) {
    const outcome = await firstBodyBytes(raw, res, stall.signal);
    // An HTTP/2 stream that was reset ends its body too: the client is gone, not sending.
    if (outcome === 'client-left' || responseGone(res)) return clientLeft();
    if (outcome === 'stalled') return refuse('GW_ERR_REQUEST_TIMEOUT', { reason: 'body-stalled', afterMs: bodyTimeout });
  }
  // Circuit breaking, Envoy's way: too many outstanding or waiting requests are refused at once.
  const gate = upstream.gate;
  const overloaded = (reason: string) => {
    metrics.upstreamRejected(upstream.name, reason);
    refuse('GW_ERR_UPSTREAM_OVERLOADED', { reason, waitedMs: elapsedMs(started), active: gate.active, waiting: gate.waiting }, RETRY_AFTER);
  };
  if (gate.active + gate.waiting >= upstream.limits.maxRequests) return overloaded('max-requests');
  const budget = upstream.budget;
  const policy = upstream.retries;
  const replayable = IDEMPOTENT.has(a.method) && body === null;
  let tried: Set<UpstreamTarget> | null = null;
  let retries = 0;
  /** The attempt running is a retry holding a budget slot. */
  let retrySlot = false;
  /** A status retry was granted a slot for the next attempt. */
  let nextSlot = false;
  let lastError: unknown = null;
  let lastReason: RetryReason | null = null;
  let lastTarget: UpstreamTarget | null = null;
  /** Every failed attempt so far was a refused or unreachable connection. */
  let allUnreachable = true;
  let release: Release | null = null;
  // Envoy's budget counts the requests waiting for a connection as active too.
  budget.requestStarted();
  try {
    // Most requests find a free slot: no promise or closure on that path.
    release = gate.tryAcquire();
    if (release === null) {
      if (gate.waiting >= upstream.limits.maxPending) return overloaded('max-pending');
      const waited = await acquireUpstream(upstream, res);
      if (waited === 'client-left') return clientLeft();
      if (waited === 'overloaded') return overloaded('queue-timeout');
      release = waited;
    }
    const host = forwarding.host === 'servername' ? upstream.servername : forwarding.host === 'preserve' ? requestAuthority(raw) : null;
    const send = forwarding.identityHeaders;
    const headers = buildUpstreamRequestHeaders(raw.rawHeaders, {
      filter: snapshot.requests.headerFilter,
      clientAddress: raw.socket?.remoteAddress ?? '',
      originalHost: requestAuthority(raw),
      requestId,
      xfcc: send.xfcc ? a.context.xfcc : null,
      clientCert: send.clientCert ? a.context.rfc9440.clientCert : null,
      clientCertChain: send.clientCertChain ? a.context.rfc9440.clientCertChain : null,
    });
    // undici sends the target's host:port as Host unless the list names one.
    if (host !== null) headers.push('host', host);
    // gRPC over HTTP/2 needs `te: trailers` (hop-by-hop, so dropped above) and honours grpc-timeout.
    if (upstream.protocol === 'http2' && acceptsTrailers(raw.headers.te)) headers.push('te', 'trailers');
    const deadline = startGrpcDeadline(raw, res, started, stall?.signal);
    if (deadline?.expired) return refuse('GW_ERR_UPSTREAM_TIMEOUT', { reason: 'grpc-timeout', afterMs: deadline.ms });
    for (;;) {
      const target = upstream.pick(tried);
      if (target === undefined) {
        // Nothing eligible from the start, or (in a fleet) every target left refused to connect.
        if (lastError === null || (lastReason === 'connect-failure' && allUnreachable && upstream.size > 1)) {
          const reason = lastError !== null ? 'all-refused' : upstream.size === 0 ? 'no-targets' : 'all-down';
          metrics.upstreamRejected(upstream.name, reason);
          return refuse('GW_ERR_UPSTREAM_UNAVAILABLE', { reason, targets: upstream.size }, RETRY_AFTER);
        }
        return failWith(lastError);
      }
      const attemptStarted = process.hrtime.bigint();
      // A retried status is dropped only if a retry will really follow: decided when it arrives.
      const retryStatus =
        policy.onStatus && replayable && retries < policy.attempts
          ? (status: number) => {
              const reason = String(status) as RetryReason;
              if (!policy.on.has(reason) || !otherTarget(target)) return false;
              if (!budget.tryStartRetry()) {
                metrics.upstreamRetryRefused(upstream.name, 'budget');
                return false;
              }
              nextSlot = true;
              return true;
            }
          : undefined;
      target.active++;
      try {
        const result = await forwardRequest(target.pool, {
          method: a.method,
          path: upstreamPath + a.query,
          headers,
          body,
          res,
          requestId,
          signal: deadline?.signal ?? stall?.signal,
          headersTimeout: forwarding.responseTimeout,
          retryStatus,
        });
        if (result.status >= 500) upstream.failed(target);
        else upstream.succeeded(target);
        if (attempts !== null) attempts.push({ target: target.origin, outcome: result.status, durationMs: elapsedMs(attemptStarted) });
        log.info(
          {
            ...access,
            target: target.origin,
            status: result.status,
            bytesOut: result.bytesOut,
            durationMs: elapsedMs(started),
            ...(attempts !== null ? { attempts } : {}),
            ...(result.error ? { cut: result.error.message, clientAborted: result.clientAborted } : {}),
          },
          'request',
        );
        metrics.request(a.route, a.decision, result.status, elapsedMs(started) / 1000);
        return;
      } catch (err) {
        if (err instanceof ForwardError && err.clientAborted) return clientLeft();
        if (stall?.signal.aborted) return refuse('GW_ERR_REQUEST_TIMEOUT', { reason: 'body-stalled', afterMs: bodyTimeout });
        if (deadline?.expired) return refuse('GW_ERR_UPSTREAM_TIMEOUT', { reason: 'grpc-timeout', afterMs: deadline.ms, target: target.origin });
        const cause = err instanceof ForwardError ? err.cause : err;
        const sent = err instanceof ForwardError ? err.sent : true;
        upstream.failed(target);
        const reason = retryReasonOf(cause, sent);
        lastError = cause;
        lastReason = reason;
        lastTarget = target;
        const outcome = cause instanceof RetryableStatus ? cause.status : (translateUpstreamError(cause, upstream.name).code as string);
        if (outcome !== 'GW_ERR_UPSTREAM_UNREACHABLE') allUnreachable = false;
        (attempts ??= []).push({ target: target.origin, outcome, durationMs: elapsedMs(attemptStarted) });
        if (retrySlot) {
          budget.retryEnded();
          retrySlot = false;
        }
        if (cause instanceof RetryableStatus) {
          // Granted, with its budget slot, when the status arrived (retryStatus above).
          retrySlot = nextSlot;
          nextSlot = false;
          retries++;
          metrics.upstreamRetry(upstream.name, reason!);
          (tried ??= new Set()).add(target);
          await sleep(backoff(policy.backoffMs, retries));
          if (responseGone(res)) return clientLeft();
          continue;
        }
        // A refused stream was not processed (RFC 9113 8.7): safe to repeat whatever the method,
        // as long as there is no body (a streamed body may be partly consumed).
        const retryable = reason === 'connect-failure' || reason === 'connect-timeout' ? !sent : reason === 'refused-stream' ? body === null : replayable;
        if (reason === null || !policy.on.has(reason) || !retryable) return failWith(cause);
        (tried ??= new Set()).add(target);
        // A connection that was never made cost the target nothing: it fails over to every
        // untried target at once, without counting as a retry or spending the budget.
        if (reason !== 'connect-failure') {
          if (retries >= policy.attempts || !otherTarget(target)) return failWith(cause);
          if (!budget.tryStartRetry()) {
            metrics.upstreamRetryRefused(upstream.name, 'budget');
            return failWith(cause);
          }
          retrySlot = true;
          retries++;
          await sleep(backoff(policy.backoffMs, retries));
          if (responseGone(res)) return clientLeft();
        }
        metrics.upstreamRetry(upstream.name, reason);
      } finally {
        target.active--;
      }
    }
  } finally {
    if (retrySlot) budget.retryEnded();
    if (nextSlot) budget.retryEnded();
    budget.requestEnded();
    release?.();
    stall?.stop();
  }

  function otherTarget(current: UpstreamTarget): boolean {
    const except = new Set(tried);
    except.add(current);
    return upstream.eligibleCount(except) > 0;
  }

  function failWith(err: unknown): void {
    if (err instanceof RetryableStatus) {
      // The status was dropped for a retry that then found no target: answer in its place.
      return refuse(err.status === 503 ? 'GW_ERR_UPSTREAM_UNAVAILABLE' : err.status === 504 ? 'GW_ERR_UPSTREAM_TIMEOUT' : 'GW_ERR_UPSTREAM_RESET', { target: lastTarget?.origin, upstreamStatus: err.status });
    }
    const gwErr = translateUpstreamError(err, upstream.name);
    const cause = gwErr.cause as { code?: unknown; message?: unknown } | undefined;
    refuse(gwErr.code, { target: lastTarget?.origin, upstreamError: cause?.code, upstreamMessage: cause?.message });
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
