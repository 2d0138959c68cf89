/**
 * The streaming proxy for HTTP/1: streams one admitted request upstream and the response back,
 * then writes its access record. A request with a body takes an upstream connection only once its
 * body starts to arrive, and its body may not stall longer than server.bodyTimeout: a client that
 * announces a body and sends none cannot hold the upstream's connections.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ErrorCode } from '../errors/registry.js';
import { buildUpstreamRequestHeaders } from '../proxy/forward-headers.js';
import { ForwardError, forwardRequest } from '../proxy/forward-request.js';
import { translateUpstreamError } from '../proxy/upstream-errors.js';
import type { Release } from '../proxy/upstream-gate.js';
import type { Upstream } from '../proxy/upstream-pool.js';
import type { RuntimeSnapshot } from '../runtime/snapshot.js';
import type { GatewayMetrics } from '../telemetry/metrics.js';
import type { Forward } from './admit.js';
import { hasBody } from './http1-request.js';
import { elapsedMs } from './log-records.js';
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

async function proxy(snapshot: RuntimeSnapshot, raw: IncomingMessage, res: ServerResponse, a: Forward, requestId: string, started: bigint, metrics: GatewayMetrics): Promise<void> {
  const { upstream } = a;
  const log = a.context.log;
  const bodyTimeout = snapshot.requests.bodyTimeout;
  const access = { reqId: requestId, method: a.method, path: a.path, route: a.route, rule: a.rule, upstream: upstream.name, decision: a.decision, ...(a.audit !== null ? { audit: a.audit } : {}) };
  const body = hasBody(raw) ? raw : null;
  const stall = body !== null && !raw.complete ? watchBodyStall(raw, res, bodyTimeout) : null;
  const fail = (code: ErrorCode, fields: Record<string, unknown>, headers?: Record<string, string>) => {
    log.warn({ ...access, code, durationMs: elapsedMs(started), ...fields }, code === 'GW_ERR_REQUEST_TIMEOUT' ? 'request refused' : 'upstream failed');
    const status = respondError(res, code, requestId, { close: body !== null && !raw.complete, ...(headers ? { headers } : {}) });
    if (code !== 'GW_ERR_REQUEST_TIMEOUT') metrics.upstreamError(upstream.name, code);
    metrics.request(a.route, a.decision, status, elapsedMs(started) / 1000);
  };
  const clientLeft = () => {
    stall?.stop();
    res.destroy();
    log.info({ ...access, status: 499, clientAborted: true, durationMs: elapsedMs(started) }, 'request');
    metrics.request(a.route, a.decision, 499, elapsedMs(started) / 1000);
  };
  if (stall !== null && raw.readableLength === 0) {
    const outcome = await firstBodyBytes(raw, res, stall.signal);
    if (outcome === 'client-left') return clientLeft();
    if (outcome === 'stalled') return fail('GW_ERR_REQUEST_TIMEOUT', { reason: 'body-stalled', afterMs: bodyTimeout });
  }
  // Most requests find a free slot: no promise or closure on that path.
  const release = upstream.gate.tryAcquire() ?? (await acquireUpstream(upstream, res));
  if (release === 'client-left') return clientLeft();
  if (release === 'overloaded') {
    stall?.stop();
    return fail('GW_ERR_UPSTREAM_OVERLOADED', { waitedMs: elapsedMs(started), active: upstream.gate.active, waiting: upstream.gate.waiting }, { 'retry-after': '1' });
  }
  const headers = buildUpstreamRequestHeaders(raw.rawHeaders, {
    filter: snapshot.requests.headerFilter,
    clientAddress: raw.socket?.remoteAddress ?? '',
    originalHost: raw.headers.host ?? null,
    requestId,
    xfcc: a.context.xfcc,
  });
  try {
    const result = await forwardRequest(upstream.pool, {
      method: a.method,
      path: a.path + a.query,
      headers,
      body,
      res,
      requestId,
      signal: stall?.signal,
    });
    log.info(
      {
        ...access,
        status: result.status,
        bytesOut: result.bytesOut,
        durationMs: elapsedMs(started),
        ...(result.error ? { cut: result.error.message, clientAborted: result.clientAborted } : {}),
      },
      'request',
    );
    metrics.request(a.route, a.decision, result.status, elapsedMs(started) / 1000);
  } catch (err) {
    if (err instanceof ForwardError && err.clientAborted) return clientLeft();
    if (stall?.signal.aborted) return fail('GW_ERR_REQUEST_TIMEOUT', { reason: 'body-stalled', afterMs: bodyTimeout });
    const gwErr = translateUpstreamError(err instanceof ForwardError ? err.cause : err, upstream.name);
    const cause = gwErr.cause as { code?: unknown; message?: unknown } | undefined;
    fail(gwErr.code, { upstreamError: cause?.code, upstreamMessage: cause?.message });
  } finally {
    release();
    stall?.stop();
  }
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
        if (res.destroyed) {
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
