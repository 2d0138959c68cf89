/**
 * The HTTP/2 client (sockets) for one target of a `protocol: http2` upstream: one node:http2
 * session over mTLS, every request a stream on it, seen by the rest of the gateway as an undici
 * Dispatcher (forwardRequest dispatches on it, health checks call its `request`).
 *
 * Why not undici's Pool with allowH2 (measured in bench/h2-client-choice.mjs): undici 7's HTTP/2
 * client completes a response when its trailers arrive and drops the body bytes still buffered
 * behind a paused stream, so a gRPC response read with backpressure loses its tail; it also puts
 * no second stream with a request body on a connection (one connection per call), and it carried
 * unary calls at about a fifth of node:http2's rate.
 *
 * The session offers only h2 by ALPN and refuses a connection on which the upstream chose
 * anything else (GW_ERR_UPSTREAM_PROTOCOL): gRPC carried over HTTP/1.1 would lose its trailers.
 * The TLS settings are the target's (shared secure context, identity check), and so is its
 * connector (resuming-target-connect.ts): a resumed session is judged again before it is used.
 */
import http2, { type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders } from 'node:http2';
import type { Readable } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { Dispatcher } from 'undici';
import { GatewayError } from '../errors/registry.js';
import type { TargetPoolSettings } from './upstream-target.js';
import { connectTarget } from './target-tls-connect.js';
import { undiciCodedError } from './upstream-errors.js';

/** Connection-specific fields HTTP/2 forbids (RFC 9113 8.2.2); Host becomes :authority. */
const NOT_SENT = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'host', 'http2-settings']);

const { NGHTTP2_CANCEL, NGHTTP2_NO_ERROR, NGHTTP2_REFUSED_STREAM, NGHTTP2_FLAG_END_STREAM } = http2.constants;

/** The request's headers (undici's name/value list, or an object) as HTTP/2 headers with the pseudo-headers. */
function requestHeaders(opts: Dispatcher.DispatchOptions, authority: string): http2.OutgoingHttpHeaders {
  const out: http2.OutgoingHttpHeaders = { ':method': opts.method, ':scheme': 'https', ':authority': authority, ':path': opts.path };
  const given = opts.headers;
  const list: readonly string[] = Array.isArray(given) ? (given as string[]) : given == null ? [] : Object.entries(given as Record<string, string>).flat();
  for (let i = 0; i + 1 < list.length; i += 2) {
    const name = list[i]!.toLowerCase();
    const value = list[i + 1]!;
    if (name === 'host') out[':authority'] = value;
    if (NOT_SENT.has(name) || name.startsWith(':')) continue;
    const had = out[name];
    out[name] = had === undefined ? value : name === 'cookie' ? `${String(had)}; ${value}` : `${String(had)}, ${value}`;
  }
  return out;
}

/** Response headers as the raw Buffer list undici's handlers take, pseudo-headers left out. */
function rawHeaders(headers: IncomingHttpHeaders): Buffer[] {
  const out: Buffer[] = [];
  for (const name of Object.keys(headers)) {
    if (name.startsWith(':')) continue;
    const value = headers[name];
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) out.push(Buffer.from(name, 'latin1'), Buffer.from(String(v), 'latin1'));
  }
  return out;
}

/** Requests waiting for a session's handshake: started once it connects, failed if it closes first. */
interface Waiting {
  start(): void;
  fail(err: Error): void;
}

export class Http2UpstreamClient extends Dispatcher {
  readonly #url: URL;
  readonly #settings: TargetPoolSettings;
  #session: ClientHttp2Session | null = null;
  #waiting: Waiting[] = [];
  #closed = false;
  #closing: Promise<void> | null = null;

  constructor(origin: string, settings: TargetPoolSettings) {
    super();
    this.#url = new URL(origin);
    this.#settings = settings;
  }

  /** The live session, or a new one. */
  #sessionFor(): ClientHttp2Session {
    const live = this.#session;
    if (live !== null && !live.closed && !live.destroyed) return live;
    const s = this.#settings;
    const url = this.#url;
    let lastError: Error | null = null;
    const session = http2.connect(url.origin, {
      createConnection: () => {
        const socket = connectTarget(url, s, ['h2']);
        const timer = setTimeout(() => socket.destroy(undiciCodedError(`connect timeout after ${s.connectTimeout}ms`, 'UND_ERR_CONNECT_TIMEOUT')), s.connectTimeout);
        socket.once('secureConnect', () => {
          clearTimeout(timer);
          const alpn = (socket as TLSSocket).alpnProtocol;
          if (alpn !== 'h2') {
            socket.destroy(new GatewayError('GW_ERR_UPSTREAM_PROTOCOL', { message: `the upstream did not negotiate HTTP/2 by ALPN (got ${alpn === false ? 'no ALPN' : String(alpn)})`, detail: { alpn } }));
          }
        });
        socket.once('close', () => clearTimeout(timer));
        return socket;
      },
      settings: { enablePush: false },
    });
    const waiting: Waiting[] = (this.#waiting = []);
    // The streams see their own errors; the session's is kept for the requests still waiting.
    session.on('error', (err: Error) => (lastError = err));
    session.once('connect', () => {
      for (const w of waiting.splice(0)) w.start();
    });
    session.once('close', () => {
      if (this.#session === session) this.#session = null;
      const err = lastError ?? undiciCodedError('the upstream connection closed before it was established', 'UND_ERR_SOCKET');
      for (const w of waiting.splice(0)) w.fail(err);
    });
    // After a GOAWAY no new stream may open: later requests get a new session, and this one
    // closes once its streams are done.
    session.once('goaway', () => {
      if (this.#session === session) this.#session = null;
      session.close();
    });
    // An idle session closes after timeouts.keepAlive, as an idle pooled HTTP/1.1 connection does
    // (close waits for the streams in flight).
    session.setTimeout(s.keepAlive, () => session.close());
    this.#session = session;
    return session;
  }

  /** Closed or destroyed: takes no more requests (as undici's Pool#closed). */
  get closed(): boolean {
    return this.#closed;
  }

  override dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    if (this.#closed) {
      handler.onError?.(undiciCodedError('the upstream client is closed', 'UND_ERR_CLOSED'));
      return false;
    }
    const session = this.#sessionFor();
    const exchange = new Http2Exchange(opts, handler, this.#url.host, this.#settings);
    // A request waits for the handshake before it counts as sent (onConnect), as with undici.
    if (session.connecting) this.#waiting.push({ start: () => exchange.start(session), fail: (err) => exchange.fail(err) });
    else exchange.start(session);
    return true;
  }

  /** Takes no more requests; resolves once the streams in flight finished and the connection closed. */
  override close(): Promise<void> {
    this.#closed = true;
    this.#closing ??= new Promise<void>((resolve) => {
      const session = this.#session;
      this.#session = null;
      if (session === null || session.closed || session.destroyed) return resolve();
      session.close(() => resolve());
    });
    return this.#closing;
  }
}

/**
 * One request as one stream, driving an undici handler with the raw callbacks forward-request.ts
 * implements. Backpressure both ways: the request body is piped into the stream (paused while
 * the upstream's flow-control window is full), and a handler that returns false from onData
 * pauses the stream until it calls resume. The response completes on the stream's end, after
 * every buffered byte was delivered, with the trailers received before it.
 */
class Http2Exchange {
  readonly #opts: Dispatcher.DispatchOptions;
  readonly #handler: Dispatcher.DispatchHandler;
  readonly #authority: string;
  readonly #settings: TargetPoolSettings;
  #stream: ClientHttp2Stream | null = null;
  #body: Readable | null = null;
  #trailers: IncomingHttpHeaders | null = null;
  #responded = false;
  #done = false;

  constructor(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler, authority: string, settings: TargetPoolSettings) {
    this.#opts = opts;
    this.#handler = handler;
    this.#authority = authority;
    this.#settings = settings;
  }

  start(session: ClientHttp2Session): void {
    if (this.#done) return;
    this.#handler.onConnect?.((err?: Error) => this.fail(err ?? undiciCodedError('request aborted', 'UND_ERR_ABORTED')));
    if (this.#done) return;
    const opts = this.#opts;
    const body = opts.body as Readable | Buffer | string | null | undefined;
    let stream: ClientHttp2Stream;
    try {
      stream = session.request(requestHeaders(opts, this.#authority), { endStream: body == null });
    } catch (err) {
      return this.fail(err as Error);
    }
    this.#stream = stream;
    const headersTimeout = opts.headersTimeout ?? this.#settings.responseTimeout;
    const bodyTimeout = opts.bodyTimeout ?? this.#settings.idleTimeout;
    stream.setTimeout(headersTimeout, () =>
      this.fail(this.#responded ? undiciCodedError(`body timeout after ${bodyTimeout}ms`, 'UND_ERR_BODY_TIMEOUT') : undiciCodedError(`headers timeout after ${headersTimeout}ms`, 'UND_ERR_HEADERS_TIMEOUT')),
    );
    stream.on('response', (headers, flags) => {
      if (this.#done) return;
      this.#responded = true;
      stream.setTimeout(bodyTimeout);
      this.#call(() => {
        if (this.#handler.onHeaders?.(Number(headers[':status']), rawHeaders(headers), () => stream.resume(), '') === false) stream.pause();
      });
      // A Trailers-Only answer (grpc-status in the only HEADERS frame) completes in the same tick,
      // so the gateway's answer is one HEADERS frame that ends the stream too (forward-request.ts).
      if ((flags & NGHTTP2_FLAG_END_STREAM) !== 0) this.#complete();
    });
    stream.on('data', (chunk: Buffer) => {
      if (!this.#done) this.#call(() => this.#handler.onData?.(chunk) === false && stream.pause());
    });
    stream.once('trailers', (trailers: IncomingHttpHeaders) => (this.#trailers = trailers));
    // 'end' comes after every buffered byte was read: only then is the response complete.
    stream.once('end', () => {
      if (this.#done) return;
      if (!this.#responded) return this.fail(undiciCodedError('the upstream ended the stream without a response', 'UND_ERR_SOCKET'));
      this.#complete();
    });
    // A stream the upstream reset is a reset (GW_ERR_UPSTREAM_RESET, retried as `reset`), except
    // REFUSED_STREAM before any response: the upstream did not process the request (RFC 9113 8.7),
    // retried as `refused-stream`.
    stream.on('error', (err: Error) => this.fail((err as { code?: unknown }).code === 'ERR_HTTP2_STREAM_ERROR' ? this.#resetError(stream, err) : err));
    stream.once('close', () => {
      if (!this.#done) this.fail(this.#resetError(stream));
    });
    if (body == null) return;
    if (typeof body === 'string' || Buffer.isBuffer(body)) {
      stream.end(body);
      return;
    }
    this.#body = body;
    body.on('error', (err: Error) => this.fail(err));
    body.pipe(stream);
  }

  #resetError(stream: ClientHttp2Stream, cause?: Error): Error {
    if (stream.rstCode === NGHTTP2_REFUSED_STREAM && !this.#responded) {
      return Object.assign(new Error('the upstream refused the stream (REFUSED_STREAM) without processing the request', { cause }), { code: 'UND_ERR_REFUSED_STREAM' });
    }
    return Object.assign(new Error(`the upstream reset the stream (HTTP/2 error ${stream.rstCode ?? 'unknown'})`, { cause }), { code: 'ECONNRESET' });
  }

  /** Runs a handler callback from a stream event: a throw fails this request, never the process. */
  #call(fn: () => unknown): void {
    try {
      fn();
    } catch (err) {
      this.fail(err as Error);
    }
  }

  #complete(): void {
    if (this.#done) return;
    this.#done = true;
    this.#stopBody();
    // undici's handlers take trailers as an object from HTTP/2 (`{}` when there were none).
    const trailers = this.#trailers ?? {};
    try {
      this.#handler.onComplete?.(trailers as unknown as string[]);
    } catch (err) {
      this.#handler.onError?.(err as Error);
    }
  }

  /** The response is over: a request body still arriving is no longer sent, and the stream ends. */
  #stopBody(): void {
    const stream = this.#stream;
    this.#body?.unpipe();
    if (stream !== null && !stream.destroyed && stream.writable) stream.close(NGHTTP2_NO_ERROR);
  }

  fail(err: Error): void {
    if (this.#done) return;
    this.#done = true;
    this.#body?.unpipe();
    const stream = this.#stream;
    if (stream !== null && !stream.destroyed) stream.close(NGHTTP2_CANCEL);
    this.#handler.onError?.(err);
  }
}
