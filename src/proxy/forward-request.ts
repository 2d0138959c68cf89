/**
 * Forwarding: streams one request to an upstream pool and the response back, at undici's dispatch
 * level so that bodies flow chunk by chunk with backpressure both ways and nothing is buffered whole.
 * Errors before the response starts reject (the caller answers with a gateway error); errors after
 * it started cut the client response, since a status line cannot be taken back.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Dispatcher } from 'undici';
import { buildClientResponseHeaders, unreadableContentLength } from './forward-headers.js';
import { responseGone } from './client-response.js';
import { RELAY_BUFFER_BYTES } from './relay-buffer.js';

export interface ForwardOptions {
  readonly method: string;
  /** Normalized path plus the original query string. */
  readonly path: string;
  readonly headers: string[];
  readonly body: IncomingMessage | null;
  readonly res: ServerResponse;
  readonly requestId: string;
  /** Aborts the upstream request (a stalled request body); the reason becomes the error's cause. */
  readonly signal?: AbortSignal | undefined;
  /** The route's response timeout, when it overrides the upstream's. */
  readonly headersTimeout?: number | undefined;
  /**
   * Asked when the response head arrives: true means this status will be retried, so the
   * response is read and dropped, and the exchange fails with a RetryableStatus instead of being
   * relayed. Asked at that moment because the answer depends on the budget then.
   */
  readonly retryStatus?: ((status: number) => boolean) | undefined;
}

/** The upstream answered with a status the retry policy retries (its body was discarded). */
export class RetryableStatus extends Error {
  readonly status: number;
  constructor(status: number) {
    super(`upstream answered ${status}`);
    this.status = status;
  }
}

export interface ForwardResult {
  readonly status: number;
  readonly bytesOut: number;
  /** The error that cut the response after it started, if any (for the log). */
  readonly error: Error | null;
  /** True when the client went away before the response completed. */
  readonly clientAborted: boolean;
}

export class ForwardError extends Error {
  readonly clientAborted: boolean;
  /**
   * False when the request never reached a connection: undici calls onConnect just before it
   * writes the request head, so nothing of the request (head or body) was sent. Such a request
   * can go to another target whatever its method, its body still unread.
   */
  readonly sent: boolean;
  constructor(cause: unknown, clientAborted: boolean, sent: boolean) {
    super('upstream request failed before the response started', { cause });
    this.clientAborted = clientAborted;
    this.sent = sent;
  }
}

const RESOLVED = Promise.resolve();

/** A retried status's body is read and dropped up to this size; beyond it the connection is given up. */
export const MAX_DISCARD = 64 * 1024;

/**
 * One forwarded exchange, as undici's dispatch handler. It implements the raw-header callbacks of
 * undici 7's `DispatchHandler` (onConnect, onHeaders, onData, onComplete, onError): those are what
 * undici's Client calls directly, with the response headers as the raw name/value list that is
 * relayed faithfully (case and order kept). The controller callbacks (onRequestStart,
 * onResponseStart...) would route every response through undici's UnwrapHandler, which parses the
 * headers into an object per response that this relay never reads. undici 7 marks the raw
 * callbacks deprecated; moving to the controller API when undici drops them is a change to this
 * class alone.
 */
export class ForwardExchange implements Dispatcher.DispatchHandler {
  readonly #res: ServerResponse;
  readonly #requestId: string;
  readonly #signal: AbortSignal | undefined;
  readonly #retryStatus: ((status: number) => boolean) | undefined;
  /** An answer not relayed, its body read and dropped: a status to retry, or one refused as a protocol fault (unreadableContentLength). */
  #discard: Error | null = null;
  #discarded = 0;
  #connected = false;
  readonly #resolve: (result: ForwardResult) => void;
  readonly #reject: (err: ForwardError) => void;
  #abort: ((err: Error) => void) | null = null;
  #resumeUpstream: (() => void) | null = null;
  #aborted: Error | null = null;
  #started = false;
  /** The response head, until it is written (see onHeaders). */
  #head: string[] | null = null;
  #done = false;
  #status = 0;
  #bytesOut = 0;
  #clientAborted = false;

  constructor(opts: ForwardOptions, resolve: (result: ForwardResult) => void, reject: (err: ForwardError) => void) {
    this.#res = opts.res;
    this.#requestId = opts.requestId;
    this.#signal = opts.signal;
    this.#retryStatus = opts.retryStatus;
    this.#resolve = resolve;
    this.#reject = reject;
    this.#res.once('close', this.#onClientClose);
    this.#signal?.addEventListener('abort', this.#onAbort, { once: true });
  }

  readonly #onClientClose = (): void => {
    if (this.#done) return;
    this.#clientAborted = true;
    this.#abort?.(new Error('client closed the connection'));
  };

  readonly #onDrain = (): void => {
    this.#resumeUpstream?.();
  };

  readonly #onAbort = (): void => {
    this.#aborted = this.#signal!.reason as Error;
    this.#abort?.(this.#aborted);
  };

  #finish(error: Error | null): void {
    if (this.#done) return;
    this.#done = true;
    const res = this.#res;
    res.off('close', this.#onClientClose);
    res.off('drain', this.#onDrain);
    this.#signal?.removeEventListener('abort', this.#onAbort);
    if (!this.#started) {
      this.#reject(new ForwardError(this.#discard ?? error, this.#clientAborted, this.#connected));
      return;
    }
    if (error) res.destroy(error);
    this.#resolve({ status: this.#status, bytesOut: this.#bytesOut, error, clientAborted: this.#clientAborted });
  }

  onConnect(abort: (err?: Error) => void): void {
    this.#abort = abort;
    this.#connected = true;
    if (responseGone(this.#res)) {
      this.#clientAborted = true;
      abort(new Error('client closed the connection'));
    } else if (this.#aborted !== null) {
      abort(this.#aborted);
    }
  }

  onHeaders(statusCode: number, rawHeaders: readonly (Buffer | string)[], resume: () => void): boolean {
    if (statusCode < 200) return true;
    const unreadable = unreadableContentLength(rawHeaders);
    if (unreadable !== null) {
      this.#discard = unreadable;
      this.#abort?.(unreadable);
      return true;
    }
    if (this.#retryStatus !== undefined && this.#retryStatus(statusCode)) {
      this.#discard = new RetryableStatus(statusCode);
      return true;
    }
    this.#started = true;
    this.#status = statusCode;
    this.#resumeUpstream = resume;
    // The head is written at the end of this tick, or before the first body byte: a response
    // that completes in the same tick (an HTTP/2 upstream's Trailers-Only gRPC answer) is then
    // written as one HEADERS frame that ends the stream, the only place a gRPC client reads its
    // status from.
    this.#head = buildClientResponseHeaders(rawHeaders, this.#requestId);
    // A promise reaction, not queueMicrotask: the same microtask queue, without the AsyncResource
    // and bound function queueMicrotask makes for every call.
    void RESOLVED.then(this.#writeHeadLater);
    this.#res.on('drain', this.#onDrain);
    return true;
  }

  /** The deferred #writeHead: a throw there would reach no caller, so it cuts this exchange instead. */
  readonly #writeHeadLater = (): void => {
    try {
      this.#writeHead();
    } catch (err) {
      this.#abort?.(err as Error);
      this.#finish(err as Error);
    }
  };

  readonly #writeHead = (): void => {
    const head = this.#head;
    if (head === null) return;
    this.#head = null;
    if (!this.#res.headersSent && !responseGone(this.#res)) this.#res.writeHead(this.#status, head);
  };

  /** A response without body or trailers: headers set and end() alone, so the head ends it. */
  #endWithHeadOnly(head: string[]): void {
    const res = this.#res;
    this.#head = null;
    res.statusCode = this.#status;
    for (let i = 0; i + 1 < head.length; i += 2) {
      const name = head[i]!;
      const had = res.getHeader(name);
      res.setHeader(name, had === undefined ? head[i + 1]! : [...(Array.isArray(had) ? had : [String(had)]), head[i + 1]!]);
    }
    res.end();
  }

  onData(chunk: Buffer): boolean {
    if (this.#discard !== null) {
      this.#discarded += chunk.length;
      if (this.#discarded > MAX_DISCARD) this.#abort?.(this.#discard);
      return true;
    }
    this.#bytesOut += chunk.length;
    if (this.#head !== null) this.#writeHead();
    // Reading goes on while less than RELAY_BUFFER_BYTES wait; 'drain' (#onDrain) resumes it.
    return this.#res.write(chunk) || this.#res.writableLength < RELAY_BUFFER_BYTES;
  }

  /**
   * `trailers`: typed as undici declares it, but undici passes HTTP/1.1 trailers as a raw list of
   * Buffers and HTTP/2 trailers as an object. They are relayed (grpc-status and grpc-message end
   * every gRPC call); an HTTP/1.1 client receives them in the chunked body's trailer section.
   */
  onComplete(trailers: string[] | null): void {
    if (this.#done) return;
    if (this.#discard !== null) return this.#finish(this.#discard);
    const relayed = trailers == null ? null : relayableTrailers(trailers as unknown as UpstreamTrailers);
    if (this.#head !== null && relayed === null) {
      this.#endWithHeadOnly(this.#head);
      return this.#finish(null);
    }
    this.#writeHead();
    if (relayed !== null) this.#res.addTrailers(relayed);
    this.#res.end();
    this.#finish(null);
  }

  onError(err: Error): void {
    this.#finish(err);
  }
}

/**
 * Fields that may not be trailers (RFC 9110 6.5.1: framing, routing, connection control) or that
 * Node refuses on an HTTP/2 stream, where a refusal would be thrown from an event handler.
 */
const NOT_TRAILERS = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'content-length', 'content-type', 'content-encoding', 'host', 'http2-settings']);

function relayableName(name: string): boolean {
  return !name.startsWith(':') && !NOT_TRAILERS.has(name);
}

/** Trailers as undici hands them over: a raw name/value list (HTTP/1.1) or an object (HTTP/2). */
export type UpstreamTrailers = readonly (Buffer | string)[] | Readonly<Record<string, string | string[] | undefined>>;

/** The upstream's trailers that may be relayed, lower-cased; null when none. */
export function relayableTrailers(trailers: UpstreamTrailers): Record<string, string | string[]> | null {
  let out: Record<string, string | string[]> | null = null;
  if (isList(trailers)) {
    for (let i = 0; i + 1 < trailers.length; i += 2) {
      const name = trailers[i]!.toString('latin1').toLowerCase();
      if (!relayableName(name)) continue;
      const value = trailers[i + 1]!.toString('latin1');
      out ??= {};
      const had = out[name];
      out[name] = had === undefined ? value : Array.isArray(had) ? [...had, value] : [had, value];
    }
    return out;
  }
  // Object.keys leaves out Node's sensitive-headers symbol.
  for (const name of Object.keys(trailers)) {
    const value = trailers[name];
    if (value === undefined || !relayableName(name)) continue;
    (out ??= {})[name] = value;
  }
  return out;
}

function isList(t: UpstreamTrailers): t is readonly (Buffer | string)[] {
  return Array.isArray(t);
}

/** The client's TE lists `trailers` (RFC 9110 10.1.4): it reads trailers, as every gRPC client does. */
export function acceptsTrailers(te: string | string[] | undefined): boolean {
  if (Array.isArray(te)) return te.some(acceptsTrailers);
  return te !== undefined && /(?:^|,)[ \t]*trailers[ \t]*(?:;|,|$)/i.test(te);
}

export function forwardRequest(dispatcher: Dispatcher, opts: ForwardOptions): Promise<ForwardResult> {
  return new Promise((resolve, reject) => {
    dispatcher.dispatch(
      { method: opts.method as Dispatcher.HttpMethod, path: opts.path, headers: opts.headers, body: opts.body, ...(opts.headersTimeout !== undefined ? { headersTimeout: opts.headersTimeout } : {}) },
      new ForwardExchange(opts, resolve, reject),
    );
  });
}
