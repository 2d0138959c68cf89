/**
 * HTTP/1.x response parsing for the gateway's own upstream client (http1-upstream-client.ts):
 * llhttp in undici's WebAssembly build (src/request/llhttp-wasm.ts: the one instance, shared with
 * the request parser), measured cheaper as the lean floor's parser (bench/README.md, "The HTTP/1
 * stack under the gateway"). No sockets or timers here: bytes in, callbacks out. Header names and
 * values are delivered as latin1 strings (the raw bytes, one char per byte: what the relay turns
 * them into anyway), the body as views of the socket's chunk; a name or value split over two
 * chunks arrives in pieces and is joined here.
 */
import { errorOf, execute, finish, llhttp, LLHTTP_TYPE, OK, PAUSED, type LlhttpCallbacks } from '../request/llhttp-wasm.js';

/** What a parser reports; `onHeaders` returns true when no body follows (a HEAD request's answer). */
export interface ResponseEvents {
  /** The status line and headers are in; `headers` is the raw name/value list (latin1). */
  onHeaders(status: number, headers: string[], keepAlive: boolean): boolean;
  onBody(chunk: Buffer): void;
  /**
   * The message is complete; `trailers` is the raw name/value list of a chunked body's trailer
   * section. `keepAlive`: llhttp's own verdict now, which a trailer section can turn (a trailer
   * `Connection: close` or `Transfer-Encoding`): when false, llhttp refuses any byte that follows
   * ("Data after `Connection: close`"), so the connection cannot carry another exchange.
   */
  onComplete(trailers: string[], keepAlive: boolean): void;
}

/** A parse failure: `code` is llhttp's (HPE_*), or the one the caller's limit set. */
export class ResponseParseError extends Error {
  readonly code: string;
  constructor(message: string, code: string) {
    super(message);
    this.name = 'HTTPParserError';
    this.code = code;
  }
}

/** Loads llhttp (once per process): a client calls it when it is built, so a missing build fails there. */
export function loadResponseParser(): void {
  llhttp();
}

/** The result of one execute(): how the bytes ended. */
export type ParseResult =
  /** Every byte was read; a message may still be in progress. */
  | { readonly kind: 'more' }
  /** A message completed; `rest` bytes of the chunk follow it (0 when the chunk ended with it). */
  | { readonly kind: 'complete'; readonly rest: number }
  /** llhttp's error (a ResponseParseError), or what a callback threw (kept as thrown). */
  | { readonly kind: 'error'; readonly error: Error };

export class ResponseParser implements LlhttpCallbacks {
  readonly #events: ResponseEvents;
  readonly #maxHeaderBytes: number;
  #ptr: number;
  #headers: string[] = [];
  #trailers: string[] = [];
  #inTrailers = false;
  #headerBytes = 0;
  /** A callback's own failure (a limit, a throw): reported instead of llhttp's generic user error. */
  #failure: Error | null = null;
  /** The message that just completed: execute() stops there (llhttp paused) and says so. */
  #completed = false;

  constructor(events: ResponseEvents, maxHeaderBytes: number) {
    this.#events = events;
    this.#maxHeaderBytes = maxHeaderBytes;
    this.#ptr = llhttp().llhttp_alloc(LLHTTP_TYPE.RESPONSE);
  }

  /**
   * Parses `data` (or its tail from `offset`) up to the end of the next complete message at most:
   * after a message completes, execute(data, data.length - rest) goes on with what followed it.
   */
  execute(data: Buffer, offset = 0): ParseResult {
    const { ret, unread } = execute(this.#ptr, this, data, offset);
    return this.#result(ret, unread);
  }

  /** The connection ended: completes a body delimited by the end of the connection, or fails. */
  finish(): ParseResult {
    return this.#result(finish(this.#ptr, this), () => 0);
  }

  #result(ret: number, rest: () => number): ParseResult {
    if (ret === OK) return { kind: 'more' };
    if (ret === PAUSED && this.#completed) {
      this.#completed = false;
      llhttp().llhttp_resume(this.#ptr);
      return { kind: 'complete', rest: rest() };
    }
    return { kind: 'error', error: this.#failure ?? this.#llhttpError(ret) };
  }

  #llhttpError(ret: number): ResponseParseError {
    const { name, reason } = errorOf(this.#ptr, ret);
    return new ResponseParseError(`upstream response: ${reason || name}`, `HPE_${name}`);
  }

  close(): void {
    if (this.#ptr !== 0) llhttp().llhttp_free(this.#ptr);
    this.#ptr = 0;
  }

  // ---- callbacks (from the instance, while this parser's execute runs) -----------------------

  #count(len: number): number {
    this.#headerBytes += len;
    if (this.#headerBytes <= this.#maxHeaderBytes) return 0;
    this.#failure = new ResponseParseError(`upstream response head larger than ${this.#maxHeaderBytes} bytes`, 'UND_ERR_HEADERS_OVERFLOW');
    return -1;
  }

  url(): number {
    return 0;
  }

  status(len: number): number {
    return this.#count(len);
  }

  field(v: string): number {
    const list = this.#inTrailers ? this.#trailers : this.#headers;
    // A name split over two chunks: its second piece arrives while the name is still the last entry.
    if (list.length % 2 === 1) list[list.length - 1] += v;
    else list.push(v);
    return this.#count(v.length);
  }

  value(v: string): number {
    const list = this.#inTrailers ? this.#trailers : this.#headers;
    if (list.length % 2 === 0) list[list.length - 1] += v;
    else list.push(v);
    return this.#count(v.length);
  }

  headersComplete(status: number, _upgrade: boolean, keepAlive: boolean): number {
    const headers = this.#headers;
    this.#headers = [];
    this.#headerBytes = 0;
    // What follows a final head's body, if anything, is the trailer section.
    this.#inTrailers = status >= 200;
    try {
      return this.#events.onHeaders(status, headers, keepAlive) ? 1 : 0;
    } catch (err) {
      return this.#fail(err);
    }
  }

  body(v: Buffer): number {
    try {
      this.#events.onBody(v);
      return 0;
    } catch (err) {
      return this.#fail(err);
    }
  }

  messageComplete(): number {
    const trailers = this.#trailers;
    this.#trailers = [];
    this.#inTrailers = false;
    this.#headerBytes = 0;
    this.#completed = true;
    try {
      this.#events.onComplete(trailers, llhttp().llhttp_should_keep_alive(this.#ptr) === 1);
    } catch (err) {
      this.#completed = false;
      return this.#fail(err);
    }
    // Paused: execute() returns here, so that the caller decides what the bytes after it are.
    return PAUSED;
  }

  #fail(err: unknown): number {
    this.#failure = err instanceof Error ? err : new Error(String(err));
    return -1;
  }
}
