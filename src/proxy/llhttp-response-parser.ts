/**
 * HTTP/1.x response parsing for the gateway's own upstream client (http1-upstream-client.ts):
 * llhttp, the parser of Node's http module and of undici, in the WebAssembly build undici ships
 * and runs itself (node_modules/undici/lib/llhttp: same version, same strict settings, no lenient
 * flags). Chosen over Node's internal HTTPParser binding, which Node is deprecating (DEP0199), and
 * measured cheaper as the lean floor's parser (bench/README.md, "The HTTP/1 stack under the
 * gateway"). No sockets or timers here: bytes in, callbacks out.
 *
 * One WebAssembly instance serves every parser (as in undici): the bytes of one chunk are copied
 * into its memory and the callbacks get offsets into them, turned back into views of the chunk
 * (no copy). Header names and values are delivered as latin1 strings (the raw bytes, one char per
 * byte: what the relay turns them into anyway); a name or value split over two chunks arrives in
 * pieces and is joined here.
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

interface LlhttpConstants {
  readonly ERROR: Readonly<Record<string, number>>;
  readonly TYPE: { readonly RESPONSE: number };
}

interface LlhttpExports {
  readonly memory: { readonly buffer: ArrayBuffer };
  llhttp_alloc(type: number): number;
  llhttp_free(ptr: number): void;
  llhttp_execute(ptr: number, data: number, len: number): number;
  llhttp_finish(ptr: number): number;
  llhttp_resume(ptr: number): void;
  llhttp_get_error_reason(ptr: number): number;
  llhttp_get_error_pos(ptr: number): number;
  malloc(size: number): number;
  free(ptr: number): void;
}

/** The part of the WebAssembly global used here (the project's TypeScript libs do not declare it). */
interface WasmApi {
  readonly Module: new (bytes: Uint8Array) => object;
  readonly Instance: new (mod: object, imports: object) => { readonly exports: unknown };
}
const { Module, Instance } = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

const constants = require('undici/lib/llhttp/constants.js') as LlhttpConstants;
const { OK, PAUSED } = constants.ERROR as { OK: number; PAUSED: number };
const ERROR_NAMES = new Map<number, string>(Object.entries(constants.ERROR).map(([name, n]) => [n, name]));

/** What a parser reports; `onHeaders` returns true when no body follows (a HEAD request's answer). */
export interface ResponseEvents {
  /** The status line and headers are in; `headers` is the raw name/value list (latin1). */
  onHeaders(status: number, headers: string[], keepAlive: boolean): boolean;
  onBody(chunk: Buffer): void;
  /** The message is complete; `trailers` is the raw name/value list of a chunked body's trailer section. */
  onComplete(trailers: string[]): void;
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

let wasm: LlhttpExports | null = null;
/** The parser whose execute() is running: the instance's callbacks are global to it. */
let current: ResponseParser | null = null;
let chunk: Buffer | null = null;
let bufPtr = 0;
let bufSize = 0;

function view(at: number, len: number): Buffer {
  const start = at - bufPtr;
  return chunk!.subarray(start, start + len);
}

function text(at: number, len: number): string {
  const start = at - bufPtr;
  return chunk!.toString('latin1', start, start + len);
}

/** Loads llhttp (once per process): a client calls it when it is built, so a missing build fails there. */
export function loadResponseParser(): void {
  instance();
}

function instance(): LlhttpExports {
  if (wasm !== null) return wasm;
  const env = {
    wasm_on_message_begin: () => 0,
    wasm_on_url: () => 0,
    wasm_on_status: (_p: number, _at: number, len: number) => current!.span(len),
    wasm_on_header_field: (_p: number, at: number, len: number) => current!.field(text(at, len)),
    wasm_on_header_value: (_p: number, at: number, len: number) => current!.value(text(at, len)),
    wasm_on_headers_complete: (_p: number, status: number, _upgrade: number, keepAlive: number) => current!.headersComplete(status, keepAlive === 1),
    wasm_on_body: (_p: number, at: number, len: number) => current!.body(view(at, len)),
    wasm_on_message_complete: () => current!.messageComplete(),
  };
  let mod: object;
  try {
    // The SIMD build where the CPU has it, as undici does.
    mod = new Module(require('undici/lib/llhttp/llhttp_simd-wasm.js') as Buffer);
  } catch {
    mod = new Module(require('undici/lib/llhttp/llhttp-wasm.js') as Buffer);
  }
  wasm = new Instance(mod, { env }).exports as LlhttpExports;
  return wasm;
}

/** The result of one execute(): how the bytes ended. */
export type ParseResult =
  /** Every byte was read; a message may still be in progress. */
  | { readonly kind: 'more' }
  /** A message completed; `rest` bytes of the chunk follow it (0 when the chunk ended with it). */
  | { readonly kind: 'complete'; readonly rest: number }
  /** llhttp's error (a ResponseParseError), or what a callback threw (kept as thrown). */
  | { readonly kind: 'error'; readonly error: Error };

export class ResponseParser {
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
    this.#ptr = instance().llhttp_alloc(constants.TYPE.RESPONSE);
  }

  /**
   * Parses `data` (or its tail from `offset`) up to the end of the next complete message at most:
   * after a message completes, execute(data, data.length - rest) goes on with what followed it.
   */
  execute(data: Buffer, offset = 0): ParseResult {
    const w = instance();
    const len = data.length - offset;
    if (len > bufSize) {
      if (bufPtr !== 0) w.free(bufPtr);
      bufSize = Math.ceil(len / 4096) * 4096;
      bufPtr = w.malloc(bufSize);
    }
    new Uint8Array(w.memory.buffer, bufPtr, len).set(offset === 0 ? data : data.subarray(offset));
    let ret: number;
    try {
      current = this;
      chunk = offset === 0 ? data : data.subarray(offset);
      ret = w.llhttp_execute(this.#ptr, bufPtr, len);
    } finally {
      current = null;
      chunk = null;
    }
    return this.#result(ret, () => len - (w.llhttp_get_error_pos(this.#ptr) - bufPtr));
  }

  /** The connection ended: completes a body delimited by the end of the connection, or fails. */
  finish(): ParseResult {
    let ret: number;
    try {
      current = this;
      ret = instance().llhttp_finish(this.#ptr);
    } finally {
      current = null;
    }
    return this.#result(ret, () => 0);
  }

  #result(ret: number, rest: () => number): ParseResult {
    if (ret === OK) return { kind: 'more' };
    if (ret === PAUSED && this.#completed) {
      this.#completed = false;
      instance().llhttp_resume(this.#ptr);
      return { kind: 'complete', rest: rest() };
    }
    return { kind: 'error', error: this.#failure ?? this.#llhttpError(ret) };
  }

  #llhttpError(ret: number): ResponseParseError {
    const w = instance();
    const at = w.llhttp_get_error_reason(this.#ptr);
    let reason = '';
    if (at !== 0) {
      const mem = new Uint8Array(w.memory.buffer);
      let end = at;
      while (end < mem.length && mem[end] !== 0) end++;
      reason = Buffer.from(mem.subarray(at, end)).toString('latin1');
    }
    const name = ERROR_NAMES.get(ret) ?? String(ret);
    return new ResponseParseError(`upstream response: ${reason || name}`, `HPE_${name}`);
  }

  close(): void {
    if (this.#ptr !== 0) instance().llhttp_free(this.#ptr);
    this.#ptr = 0;
  }

  // ---- callbacks (from the instance, while this parser's execute runs) -----------------------

  #count(len: number): number {
    this.#headerBytes += len;
    if (this.#headerBytes <= this.#maxHeaderBytes) return 0;
    this.#failure = new ResponseParseError(`upstream response head larger than ${this.#maxHeaderBytes} bytes`, 'UND_ERR_HEADERS_OVERFLOW');
    return -1;
  }

  span(len: number): number {
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

  headersComplete(status: number, keepAlive: boolean): number {
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
      this.#events.onComplete(trailers);
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
