/**
 * llhttp, the HTTP/1.x parser of Node's http module and of undici, in the WebAssembly build undici
 * ships and runs itself (node_modules/undici/lib/llhttp: strict, no lenient flag set). One
 * instance per process serves every parser of both kinds (requests: llhttp-request-parser.ts;
 * upstream responses: src/proxy/llhttp-response-parser.ts), as in undici: the bytes of one chunk
 * are copied into the instance's memory, and its callbacks, global to the instance, go to the
 * parser whose execute() runs, with offsets turned back into views of the chunk (no copy) or
 * latin1 strings (one char per byte). Chosen over Node's internal HTTPParser binding, which Node
 * is deprecating (DEP0199). Pure: no sockets or timers.
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

interface LlhttpConstants {
  readonly ERROR: Readonly<Record<string, number>>;
  readonly TYPE: { readonly REQUEST: number; readonly RESPONSE: number };
  readonly METHODS: Readonly<Record<string, number>>;
}

interface LlhttpExports {
  readonly memory: { readonly buffer: ArrayBuffer };
  llhttp_alloc(type: number): number;
  llhttp_free(ptr: number): void;
  llhttp_execute(ptr: number, data: number, len: number): number;
  llhttp_finish(ptr: number): number;
  llhttp_resume(ptr: number): void;
  llhttp_resume_after_upgrade(ptr: number): void;
  llhttp_get_error_reason(ptr: number): number;
  llhttp_get_error_pos(ptr: number): number;
  llhttp_get_method(ptr: number): number;
  llhttp_get_http_major(ptr: number): number;
  llhttp_get_http_minor(ptr: number): number;
  llhttp_should_keep_alive(ptr: number): number;
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
export const LLHTTP_TYPE = constants.TYPE;
export const { OK, PAUSED, PAUSED_UPGRADE } = constants.ERROR as { OK: number; PAUSED: number; PAUSED_UPGRADE: number };
const ERROR_NAMES = new Map<number, string>(Object.entries(constants.ERROR).map(([name, n]) => [n, name]));
const METHOD_NAMES = new Map<number, string>(Object.entries(constants.METHODS).map(([name, n]) => [n, name]));

/**
 * What a parser does with llhttp's callbacks while its execute() runs. Each returns llhttp's
 * answer: 0 to go on, -1 to fail (the parser keeps its own reason), PAUSED to stop after this
 * callback; headersComplete may also return 1 (no body follows) or 2 (upgrade: no body, stop).
 */
export interface LlhttpCallbacks {
  url(v: string): number;
  status(len: number): number;
  /** `at`: where the span starts in the bytes execute() was given (from its offset). */
  field(v: string, at: number): number;
  value(v: string, at: number): number;
  headersComplete(status: number, upgrade: boolean, keepAlive: boolean): number;
  body(v: Buffer, at: number): number;
  messageComplete(): number;
}

let wasm: LlhttpExports | null = null;
let current: LlhttpCallbacks | null = null;
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

/** The instance, loaded once per process: a parser's owner calls it when it is built, so a missing build fails there. */
export function llhttp(): LlhttpExports {
  if (wasm !== null) return wasm;
  const env = {
    wasm_on_message_begin: () => 0,
    wasm_on_url: (_p: number, at: number, len: number) => current!.url(text(at, len)),
    wasm_on_status: (_p: number, _at: number, len: number) => current!.status(len),
    wasm_on_header_field: (_p: number, at: number, len: number) => current!.field(text(at, len), at - bufPtr),
    wasm_on_header_value: (_p: number, at: number, len: number) => current!.value(text(at, len), at - bufPtr),
    wasm_on_headers_complete: (_p: number, status: number, upgrade: number, keepAlive: number) => current!.headersComplete(status, upgrade === 1, keepAlive === 1),
    wasm_on_body: (_p: number, at: number, len: number) => current!.body(view(at, len), at - bufPtr),
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

/** llhttp_execute over `data` from `offset`, with `callbacks` receiving the events; returns llhttp's code and how many bytes it did not read. */
export function execute(ptr: number, callbacks: LlhttpCallbacks, data: Buffer, offset: number): { readonly ret: number; readonly unread: () => number } {
  const w = llhttp();
  const len = data.length - offset;
  if (len > bufSize) {
    if (bufPtr !== 0) w.free(bufPtr);
    bufSize = Math.ceil(len / 4096) * 4096;
    bufPtr = w.malloc(bufSize);
  }
  const part = offset === 0 ? data : data.subarray(offset);
  new Uint8Array(w.memory.buffer, bufPtr, len).set(part);
  let ret: number;
  try {
    current = callbacks;
    chunk = part;
    ret = w.llhttp_execute(ptr, bufPtr, len);
  } finally {
    current = null;
    chunk = null;
  }
  return { ret, unread: () => len - (w.llhttp_get_error_pos(ptr) - bufPtr) };
}

/** llhttp_finish (the connection ended), with `callbacks` receiving what it completes. */
export function finish(ptr: number, callbacks: LlhttpCallbacks): number {
  try {
    current = callbacks;
    return llhttp().llhttp_finish(ptr);
  } finally {
    current = null;
  }
}

/** llhttp's name for an error code (`HEADER_OVERFLOW`, `INVALID_METHOD`, ...), and its reason text. */
export function errorOf(ptr: number, ret: number): { readonly name: string; readonly reason: string } {
  const w = llhttp();
  const at = w.llhttp_get_error_reason(ptr);
  let reason = '';
  if (at !== 0) {
    const mem = new Uint8Array(w.memory.buffer);
    let end = at;
    while (end < mem.length && mem[end] !== 0) end++;
    reason = Buffer.from(mem.subarray(at, end)).toString('latin1');
  }
  return { name: ERROR_NAMES.get(ret) ?? String(ret), reason };
}

/** The method of the request whose head a REQUEST parser just read (llhttp's name: GET, M-SEARCH, ...). */
export function methodOf(ptr: number): string {
  const n = llhttp().llhttp_get_method(ptr);
  return METHOD_NAMES.get(n) ?? String(n);
}
