/**
 * HTTP/2 client sessions: what the gateway adds to node:http2 on every session, and how one is
 * closed. node:http2 (nghttp2) already validates the protocol (pseudo-headers, connection-specific
 * headers, `te` other than `trailers`, header list size and count, CONTINUATION limits) and answers
 * a malformed stream with RST_STREAM PROTOCOL_ERROR, and a malformed connection with GOAWAY. On top
 * of that, each session gets:
 * - the rapid-reset guard (CVE-2023-44487): streams that end reset (RST_STREAM from either side)
 *   draw from a token bucket (server.http2.resetBurst, refilled at resetRate per second); a client
 *   that empties it loses its connection with GOAWAY ENHANCE_YOUR_CALM. A stream reset costs the
 *   gateway a request's admission and often an upstream request; a client must not get that for free;
 * - an idle timeout (the session timer, server.keepAliveTimeout): a session without frames for that
 *   long is closed gracefully, as an idle HTTP/1.1 keep-alive connection is.
 * Closing: revocation and a CA removal cut a session with GOAWAY INADEQUATE_SECURITY (its streams
 * end at once, as an HTTP/1.1 connection is destroyed); a drain or a stop sends GOAWAY NO_ERROR and
 * lets the streams in flight finish.
 */
import { constants, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import type { Logger } from 'pino';
import type { GatewayMetrics } from '../telemetry/metrics.js';

const { NGHTTP2_NO_ERROR, NGHTTP2_CANCEL, NGHTTP2_ENHANCE_YOUR_CALM, NGHTTP2_INADEQUATE_SECURITY } = constants;

export interface SessionLimits {
  readonly resetBurst: number;
  readonly resetRate: number;
  readonly idleTimeout: number;
}

/** A token bucket of stream resets, per session. Pure: the clock is passed in. */
export class ResetBudget {
  #tokens: number;
  #at: number;
  readonly #burst: number;
  readonly #rate: number;

  constructor(burst: number, ratePerSecond: number, now: number) {
    this.#tokens = burst;
    this.#burst = burst;
    this.#rate = ratePerSecond;
    this.#at = now;
  }

  /** Spends one reset; false once the client is over its budget. */
  spend(now: number): boolean {
    const elapsed = Math.max(0, now - this.#at);
    this.#at = now;
    this.#tokens = Math.min(this.#burst, this.#tokens + (elapsed * this.#rate) / 1000);
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}

/** The open streams of each session, so that a cut can end them before the GOAWAY is flushed. */
const OPEN = new WeakMap<ServerHttp2Session, Set<ServerHttp2Stream>>();

/** How long a cut session may take to flush its GOAWAY before its socket is destroyed. */
const CUT_FLUSH_MS = 1_000;

/** Sets a new session up: the reset guard and the idle timeout. */
export function guardSession(session: ServerHttp2Session, limits: SessionLimits, logger: Logger, metrics: GatewayMetrics): void {
  const budget = new ResetBudget(limits.resetBurst, limits.resetRate, Date.now());
  const open = new Set<ServerHttp2Stream>();
  OPEN.set(session, open);
  let tripped = false;
  session.on('stream', (stream: ServerHttp2Stream) => {
    open.add(stream);
    stream.once('close', () => {
      open.delete(stream);
      if (tripped || stream.rstCode === undefined || stream.rstCode === NGHTTP2_NO_ERROR) return;
      if (budget.spend(Date.now())) return;
      tripped = true;
      const peer = { address: session.socket?.remoteAddress, port: session.socket?.remotePort };
      logger.warn({ event: 'http2-rapid-reset', code: 'GW_ERR_HTTP2_ABUSE', peer, resetBurst: limits.resetBurst, resetRate: limits.resetRate }, 'closing an HTTP/2 connection that resets streams faster than allowed');
      metrics.http2SessionClosed('rapid-reset');
      cutSession(session, NGHTTP2_ENHANCE_YOUR_CALM);
    });
  });
  session.setTimeout(limits.idleTimeout, () => session.close());
  // A protocol error on the session (nghttp2 already sent GOAWAY) ends it; nothing to answer.
  session.on('error', (err: NodeJS.ErrnoException) => logger.debug({ event: 'http2-session-error', reason: err.code ?? err.message }, 'HTTP/2 session error'));
  session.on('frameError', (type: number, code: number) => logger.debug({ event: 'http2-frame-error', frameType: type, errorCode: code }, 'HTTP/2 frame could not be sent'));
}

/**
 * Ends a session at once with GOAWAY `code`: its streams are cancelled now, and the connection
 * closes as soon as the GOAWAY is on the wire (destroying the session right away could discard it
 * behind queued frames), or after CUT_FLUSH_MS if the client does not read.
 */
export function cutSession(session: ServerHttp2Session, code: number = NGHTTP2_INADEQUATE_SECURITY): void {
  if (session.destroyed) return;
  session.goaway(code);
  for (const stream of OPEN.get(session) ?? []) if (!stream.destroyed) stream.close(NGHTTP2_CANCEL);
  if (!session.closed) session.close();
  const force = setTimeout(() => session.destroyed || session.destroy(), CUT_FLUSH_MS);
  force.unref();
  session.once('close', () => clearTimeout(force));
}

/** GOAWAY NO_ERROR: no new streams; the ones in flight finish, then the connection closes. */
export function closeSessionGracefully(session: ServerHttp2Session): void {
  if (session.destroyed || session.closed) return;
  session.close();
}
