/**
 * The deadline of a gRPC call (timer): a `grpc-timeout` the client sent, counted from the request's
 * arrival, bounds the whole call. When it passes, the upstream request is aborted: before the
 * response started the caller answers DEADLINE_EXCEEDED (GW_ERR_UPSTREAM_TIMEOUT), after it the
 * response is cut (the client's stream is reset), as a gRPC server would.
 *
 * The route's response timeout keeps bounding the wait for the response head on its own, so the
 * shorter of the two wins there, and a longer grpc-timeout never extends anything.
 */
import type { IncomingMessage } from 'node:http';
import { GatewayError } from '../errors/registry.js';
import { parseGrpcTimeout } from '../request/grpc-timeout.js';
import { isGrpcRequest } from './respond-grpc-error.js';

/** setTimeout fires at once beyond this (about 24.8 days): longer deadlines are not armed. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface GrpcDeadline {
  /** Aborts with the deadline, or with `also`'s reason when that aborts first. */
  readonly signal: AbortSignal;
  /** The client's grpc-timeout, in milliseconds. */
  readonly ms: number;
  /** The deadline passed. */
  readonly expired: boolean;
}

/**
 * Arms the deadline of a gRPC request that carries a well-formed grpc-timeout; null otherwise.
 * `also`: a signal the forwarded request already obeys (the body-stall watch), folded into one.
 * The timer clears itself when the response closes, however the request ends.
 */
export function startGrpcDeadline(raw: IncomingMessage, res: { once(event: 'close', fn: () => void): unknown }, started: bigint, also: AbortSignal | undefined): GrpcDeadline | null {
  if (!isGrpcRequest(raw)) return null;
  const ms = parseGrpcTimeout(raw.headers['grpc-timeout']);
  if (ms === null || ms > MAX_TIMER_MS) return null;
  const controller = new AbortController();
  const state = { signal: controller.signal, ms, expired: false };
  const elapsed = Number(process.hrtime.bigint() - started) / 1e6;
  const expire = () => {
    state.expired = true;
    controller.abort(new GatewayError('GW_ERR_UPSTREAM_TIMEOUT', { message: `the call's grpc-timeout of ${ms}ms passed`, detail: { grpcTimeoutMs: ms } }));
  };
  // A deadline already passed (grpc-timeout 0, or less than the time spent so far) is expired now,
  // not after a timer a fast upstream could beat.
  if (ms <= elapsed) {
    expire();
    return state;
  }
  const timer = setTimeout(expire, ms - elapsed);
  const onAlso = () => controller.abort(also!.reason);
  also?.addEventListener('abort', onAlso, { once: true });
  res.once('close', () => {
    clearTimeout(timer);
    also?.removeEventListener('abort', onAlso);
  });
  return state;
}
