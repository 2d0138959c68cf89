/**
 * HTTP/1.x request parsing for the lean listener: llhttp in undici's WebAssembly build
 * (llhttp-wasm.ts: the one instance, strict, no lenient flag), with the limits Node's http server
 * puts around its own llhttp: the request head (request line, header names and values, and a
 * trailer section each) stays under `maxHeaderBytes` (Node's --max-http-header-size, counted as
 * Node counts it: HPE_HEADER_OVERFLOW once the count reaches the limit), and no message has more
 * than `maxHeaders` header lines (Node drops lines past maxHeadersCount silently; here they are a
 * refusal, as the gateway answers them: 431), and a chunked body carries no more than 16 KiB of
 * chunk extensions (Node's kMaxChunkExtensionsSize, CVE-2024-22019: a body that never gets past
 * one chunk's extension). undici's llhttp build reports no extension spans, so they are measured
 * from the gaps between body spans: a gap longer than the framing needs (CRLF, 16 hex digits,
 * CRLF) counts as extension bytes. Header values lose trailing blanks (SP, HTAB) as Node's do
 * (RFC 9110 5.5: OWS is not part of the value). Pure: bytes in, callbacks out; what a connection
 * does with them (Host rules, timeouts, Expect, answers) is its owner's.
 *
 * execute() stops at the end of each message (llhttp paused), so that the owner decides what the
 * bytes after it are: the next pipelined request, or nothing it may read yet. A request whose
 * owner takes the connection over (onRequest returns true: an Upgrade it accepts, CONNECT) ends
 * the parse at its head: everything after it is the owner's.
 */
import { errorOf, execute, finish, llhttp, LLHTTP_TYPE, methodOf, OK, PAUSED, PAUSED_UPGRADE, type LlhttpCallbacks } from './llhttp-wasm.js';

/** A request head as the parser read it: header names and values raw (latin1), in order. */
export interface ParsedRequestHead {
  readonly method: string;
  /** The request-target as sent. */
  readonly url: string;
  readonly versionMajor: number;
  readonly versionMinor: number;
  /** Raw name/value list. */
  readonly headers: string[];
  /** llhttp's verdict on the connection after this message (version, Connection header). */
  readonly keepAlive: boolean;
  /** An upgrade llhttp recognised: Connection: upgrade with Upgrade, or CONNECT. */
  readonly upgrade: boolean;
}

export interface RequestEvents {
  /** The head is in. True: the owner takes the connection over (no body is parsed; execute() returns `upgrade`). */
  onRequest(head: ParsedRequestHead): boolean;
  onBody(chunk: Buffer): void;
  /**
   * The message is complete; `trailers` is the raw name/value list of a chunked body's trailer
   * section. `keepAlive` is llhttp's verdict at the message's end, which the trailer section can
   * take back (`Connection: close` there): false, llhttp refuses every later byte.
   */
  onComplete(trailers: string[], keepAlive: boolean): void;
}

/** A request the parser refuses: `code` is llhttp's (HPE_*); `status` the answer it calls for (400, or 431 for a head over a limit). */
export class RequestParseError extends Error {
  readonly code: string;
  readonly status: 400 | 431;
  constructor(message: string, code: string, status: 400 | 431 = 400) {
    super(message);
    this.name = 'HTTPParserError';
    this.code = code;
    this.status = status;
  }
}

export type RequestParseResult =
  /** Every byte was read; a message may be in progress. */
  | { readonly kind: 'more' }
  /** A message completed; `rest` bytes of the chunk follow it. */
  | { readonly kind: 'complete'; readonly rest: number }
  /** The owner took the connection over at a head; `rest` bytes of the chunk follow the head. */
  | { readonly kind: 'upgrade'; readonly rest: number }
  /** A RequestParseError, or what a callback threw (kept as thrown). */
  | { readonly kind: 'error'; readonly error: Error };

export interface RequestLimits {
  readonly maxHeaderBytes: number;
  readonly maxHeaders: number;
}

/** Node's limit on a message's chunk-extension bytes (kMaxChunkExtensionsSize). */
export const MAX_CHUNK_EXTENSION_BYTES = 16_384;
/** The framing a gap between two body spans needs without extensions: CRLF, a size of up to 16 hex digits, CRLF. */
const CHUNK_FRAMING_BYTES = 20;
/** After the head's last name or value span: its CRLF and the blank line's. */
const HEAD_END_BYTES = 4;

function extensionOverflow(): RequestParseError {
  return new RequestParseError(`chunk extensions over ${MAX_CHUNK_EXTENSION_BYTES} bytes`, 'HPE_CHUNK_EXTENSIONS_OVERFLOW');
}

/** Trailing SP and HTAB removed (llhttp keeps them in the value span; Node trims them). */
function trimOws(v: string): string {
  let end = v.length;
  while (end > 0) {
    const c = v.charCodeAt(end - 1);
    if (c !== 0x20 && c !== 0x09) break;
    end--;
  }
  return end === v.length ? v : v.slice(0, end);
}

/** Whether a Transfer-Encoding field is present (strict llhttp refuses a request whose last coding is not chunked). */
function hasTransferEncoding(headers: readonly string[]): boolean {
  for (let i = 0; i < headers.length; i += 2) if (headers[i]!.length === 17 && headers[i]!.toLowerCase() === 'transfer-encoding') return true;
  return false;
}

function trimValues(list: string[]): void {
  for (let i = 1; i < list.length; i += 2) list[i] = trimOws(list[i]!);
}

export class RequestParser implements LlhttpCallbacks {
  readonly #events: RequestEvents;
  readonly #limits: RequestLimits;
  #ptr: number;
  #url = '';
  #headers: string[] = [];
  #trailers: string[] = [];
  #inTrailers = false;
  #headerBytes = 0;
  #failure: Error | null = null;
  #completed = false;
  #tookOver = false;
  /** Bytes read before the current execute()'s first byte: positions in the stream. */
  #base = 0;
  /** The current message is chunked: its gaps between body spans are measured. */
  #chunked = false;
  /** Where the last name or value span of the head ended (stream position). */
  #headSpanEnd = 0;
  /** Where the last body span (or the head) ended, and the trailer section's bytes since. */
  #lastEnd = 0;
  #trailerBytes = 0;
  /** The current message's chunk-extension bytes, as measured (see the module comment). */
  #extensionBytes = 0;
  /** Length of the bytes the current execute() reads. */
  #partLength = 0;

  constructor(events: RequestEvents, limits: RequestLimits) {
    this.#events = events;
    this.#limits = limits;
    this.#ptr = llhttp().llhttp_alloc(LLHTTP_TYPE.REQUEST);
  }

  /** Parses `data` from `offset` up to the end of the next message at most (see the module comment). */
  execute(data: Buffer, offset = 0): RequestParseResult {
    if (this.#tookOver || this.#ptr === 0) return { kind: 'error', error: new RequestParseError('the parser no longer reads this connection', 'HPE_CLOSED_CONNECTION') };
    const len = data.length - offset;
    this.#partLength = len;
    const { ret, unread } = execute(this.#ptr, this, data, offset);
    const r = this.#result(ret, unread);
    const end = this.#base + len;
    this.#base = end;
    if (r.kind === 'more' && this.#chunked && this.#overExtensions(end)) return this.#extensionError();
    return r;
  }

  /** A gap from the last body span to `end` (a stream position) would take the extensions over the limit. */
  #overExtensions(end: number): boolean {
    const gap = end - this.#lastEnd - this.#trailerBytes;
    return this.#extensionBytes + Math.max(0, gap - CHUNK_FRAMING_BYTES) > MAX_CHUNK_EXTENSION_BYTES;
  }

  #extensionError(): RequestParseResult {
    this.#failure = extensionOverflow();
    this.close();
    return { kind: 'error', error: this.#failure };
  }

  /** The client ended its side: a message in progress is an error (llhttp's INVALID_EOF_STATE). */
  finish(): RequestParseResult {
    if (this.#tookOver || this.#ptr === 0) return { kind: 'more' };
    return this.#result(finish(this.#ptr, this), () => 0);
  }

  close(): void {
    if (this.#ptr !== 0) llhttp().llhttp_free(this.#ptr);
    this.#ptr = 0;
  }

  #result(ret: number, unread: () => number): RequestParseResult {
    if (ret === OK) return { kind: 'more' };
    if (this.#tookOver && (ret === PAUSED_UPGRADE || ret === PAUSED)) return { kind: 'upgrade', rest: unread() };
    if (ret === PAUSED && this.#completed) {
      this.#completed = false;
      const rest = unread();
      if (this.#chunked) {
        this.#chunked = false;
        if (this.#overExtensions(this.#base + (this.#partLength - rest))) return this.#extensionError();
      }
      // Delivered only now, after the last check of the message.
      const trailers = this.#trailers;
      this.#trailers = [];
      trimValues(trailers);
      const keepAlive = llhttp().llhttp_should_keep_alive(this.#ptr) === 1;
      try {
        this.#events.onComplete(trailers, keepAlive);
      } catch (err) {
        return { kind: 'error', error: err instanceof Error ? err : new Error(String(err)) };
      }
      llhttp().llhttp_resume(this.#ptr);
      return { kind: 'complete', rest };
    }
    if (this.#failure !== null) return { kind: 'error', error: this.#failure };
    const { name, reason } = errorOf(this.#ptr, ret);
    return { kind: 'error', error: new RequestParseError(`request: ${reason || name}`, `HPE_${name}`) };
  }

  // ---- callbacks (from the instance, while this parser's execute runs) -----------------------

  #count(len: number): number {
    this.#headerBytes += len;
    if (this.#headerBytes < this.#limits.maxHeaderBytes) return 0;
    this.#failure = new RequestParseError(`request head of ${this.#limits.maxHeaderBytes} bytes or more`, 'HPE_HEADER_OVERFLOW', 431);
    return -1;
  }

  url(v: string): number {
    this.#url += v;
    return this.#count(v.length);
  }

  status(): number {
    return 0;
  }

  /** A name or value span of `len` bytes at `at`: where the head ends, or the trailer section's size. */
  #spanEnded(len: number, at: number): void {
    if (this.#inTrailers) this.#trailerBytes += len + HEAD_END_BYTES;
    else this.#headSpanEnd = this.#base + at + len;
  }

  field(v: string, at: number): number {
    this.#spanEnded(v.length, at);
    const list = this.#inTrailers ? this.#trailers : this.#headers;
    // A name split over two chunks: its second piece arrives while the name is still the last entry.
    if (list.length % 2 === 1) list[list.length - 1] += v;
    else {
      if (list.length / 2 >= this.#limits.maxHeaders) {
        this.#failure = new RequestParseError(`more than ${this.#limits.maxHeaders} header lines`, 'HPE_HEADER_OVERFLOW', 431);
        return -1;
      }
      list.push(v);
    }
    return this.#count(v.length);
  }

  value(v: string, at: number): number {
    this.#spanEnded(v.length, at);
    const list = this.#inTrailers ? this.#trailers : this.#headers;
    if (list.length % 2 === 0) list[list.length - 1] += v;
    else list.push(v);
    return this.#count(v.length);
  }

  headersComplete(_status: number, upgrade: boolean, keepAlive: boolean): number {
    const w = llhttp();
    const head: ParsedRequestHead = {
      method: methodOf(this.#ptr),
      url: this.#url,
      versionMajor: w.llhttp_get_http_major(this.#ptr),
      versionMinor: w.llhttp_get_http_minor(this.#ptr),
      headers: this.#headers,
      keepAlive,
      upgrade,
    };
    trimValues(head.headers);
    this.#url = '';
    this.#headers = [];
    this.#headerBytes = 0;
    this.#inTrailers = true;
    this.#trailerBytes = 0;
    this.#extensionBytes = 0;
    this.#lastEnd = this.#headSpanEnd + HEAD_END_BYTES;
    this.#chunked = !upgrade && hasTransferEncoding(head.headers);
    try {
      if (this.#events.onRequest(head)) {
        this.#tookOver = true;
        // 2: no body; llhttp stops with PAUSED_UPGRADE after the head.
        return 2;
      }
      return 0;
    } catch (err) {
      return this.#fail(err);
    }
  }

  body(v: Buffer, at: number): number {
    if (this.#chunked) {
      const start = this.#base + at;
      this.#extensionBytes += Math.max(0, start - this.#lastEnd - CHUNK_FRAMING_BYTES);
      this.#lastEnd = start + v.length;
      if (this.#extensionBytes > MAX_CHUNK_EXTENSION_BYTES) {
        this.#failure = extensionOverflow();
        return -1;
      }
    }
    try {
      this.#events.onBody(v);
      return 0;
    } catch (err) {
      return this.#fail(err);
    }
  }

  /** The message ended: execute() stops here (paused) and delivers onComplete once its checks passed. */
  messageComplete(): number {
    this.#inTrailers = false;
    this.#headerBytes = 0;
    if (this.#tookOver) return 0;
    this.#completed = true;
    return PAUSED;
  }

  #fail(err: unknown): number {
    this.#failure = err instanceof Error ? err : new Error(String(err));
    return -1;
  }
}
