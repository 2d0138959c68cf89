/**
 * Revocation: parsing big CRL files on a worker thread so the event loop keeps serving handshakes
 * (a 1M-entry CRL is a few hundred milliseconds of parsing). Owns the choice inline vs worker, the
 * worker's lifetime (one per call, always terminated), and the wire format that moves the DER and
 * the serial index between threads by transfer rather than copy. parse-worker.ts is the entry the
 * worker runs; the parsing itself stays in parse-crl.ts, so both paths produce the same ParsedCrl.
 */

import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { CrlParseError, crlDersFromFile, parseCrl, parseCrlFile, type ParsedCrl } from './parse-crl.js';
import { RevokedSerials, type RevokedSerialsTransfer } from './revoked-serials.js';

export const DEFAULT_OFF_THREAD_THRESHOLD_BYTES = 1024 * 1024;
export const DEFAULT_OFF_THREAD_TIMEOUT_MS = 30_000;

export interface ParseOffThreadOptions {
  /** Inputs smaller than this are parsed inline: starting a worker (~100 ms measured on a busy 2-vCPU box) costs more than parsing them. Default 1 MiB. */
  readonly thresholdBytes?: number;
  /** The worker is terminated after this long. Default 30 s. */
  readonly timeoutMs?: number;
}

export type CrlParseWorkerErrorCode = 'CRL_PARSE_TIMEOUT' | 'CRL_PARSE_WORKER_FAILED';

/** The worker itself failed (timeout, crash, out of memory); malformed input is a CrlParseError instead. */
export class CrlParseWorkerError extends Error {
  readonly code: CrlParseWorkerErrorCode;

  constructor(code: CrlParseWorkerErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CrlParseWorkerError';
    this.code = code;
  }
}

/**
 * Parses every CRL in a file's bytes (PEM with many CRLs, or one DER), on a worker thread when the
 * input is at least `thresholdBytes`. Resolves to the same ParsedCrl[] as parseCrlFile(bytes);
 * rejects with CrlParseError (same code, reason and offset) on malformed input, and with
 * CrlParseWorkerError when the worker times out or dies. `bytes` is copied (in slices, between
 * event-loop turns), never detached; do not modify it until the promise settles.
 */
export async function parseCrlFileOffThread(bytes: Buffer, opts: ParseOffThreadOptions = {}): Promise<ParsedCrl[]> {
  const threshold = opts.thresholdBytes ?? DEFAULT_OFF_THREAD_THRESHOLD_BYTES;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_OFF_THREAD_TIMEOUT_MS;
  if (!Buffer.isBuffer(bytes) || bytes.length < threshold) return parseCrlFile(bytes);
  const reply = await runWorker(bytes, timeoutMs);
  if (!reply.ok) {
    if (reply.kind === 'parse') throw new CrlParseError(reply.reason, reply.offset);
    throw new CrlParseWorkerError('CRL_PARSE_WORKER_FAILED', `CRL parse worker failed: ${reply.message}`);
  }
  return reply.crls.map(crlFromWire);
}

/*
 * Wire format. Every Buffer field of a ParsedCrl is a view into its DER, so it travels as a byte
 * range of the transferred DER and comes back as the same kind of view; the serial index travels as
 * its typed arrays. Dates and bigints survive structured clone as they are.
 */

type PlainFields = Omit<ParsedCrl, 'der' | 'issuerDer' | 'tbsDer' | 'signatureAlgorithmParams' | 'signature' | 'revoked'>;

/** A range of the DER, or a copy for a field that (after some future parser change) is not a view of it. */
type WireBytes = readonly [start: number, end: number] | Uint8Array;

interface WireCrl {
  readonly der: Uint8Array;
  readonly plain: PlainFields;
  readonly issuerDer: WireBytes;
  readonly tbsDer: WireBytes;
  readonly signatureAlgorithmParams: WireBytes | null;
  readonly signature: WireBytes;
  readonly revoked: RevokedSerialsTransfer;
}

/** Worker -> main thread. @internal shared with parse-worker.ts only. */
export type ParseJobReply =
  | { readonly ok: true; readonly crls: readonly WireCrl[] }
  | { readonly ok: false; readonly kind: 'parse'; readonly reason: string; readonly offset: number | null }
  | { readonly ok: false; readonly kind: 'internal'; readonly message: string };

/** Main thread -> worker, as its one message. @internal */
export interface ParseJobInput {
  readonly input: Uint8Array;
}

function ownsBuffer(b: Uint8Array): boolean {
  return b.buffer instanceof ArrayBuffer && b.byteOffset === 0 && b.byteLength === b.buffer.byteLength;
}

/**
 * A Buffer that alone owns its ArrayBuffer. PEM-decoded DERs may sit in Node's shared allocation
 * pool, which must not (and from Node 21 cannot) be transferred; a copy on the worker is cheap.
 */
function owned(b: Buffer): Buffer {
  if (ownsBuffer(b)) return b;
  const ab = new ArrayBuffer(b.length);
  new Uint8Array(ab).set(b);
  return Buffer.from(ab);
}

function bytesToWire(der: Buffer, sub: Buffer): WireBytes {
  const start = sub.byteOffset - der.byteOffset;
  if (sub.buffer === der.buffer && start >= 0 && start + sub.length <= der.length) return [start, start + sub.length];
  return Uint8Array.prototype.slice.call(sub);
}

function bytesFromWire(der: Buffer, w: WireBytes): Buffer {
  if (w instanceof Uint8Array) return Buffer.from(w.buffer, w.byteOffset, w.byteLength);
  const [start, end] = w;
  if (!(Number.isInteger(start) && Number.isInteger(end) && start >= 0 && start <= end && end <= der.length)) {
    throw new RangeError('CRL wire format: byte range outside the DER');
  }
  return der.subarray(start, end);
}

function crlToWire(crl: ParsedCrl, transfer: Set<ArrayBuffer>): WireCrl {
  const { der, issuerDer, tbsDer, signatureAlgorithmParams, signature, revoked, ...plain } = crl;
  const index = revoked.toTransferable();
  // A DER sharing its buffer with other data would detach that data too; such a DER is cloned instead.
  if (ownsBuffer(der) && der.buffer instanceof ArrayBuffer) transfer.add(der.buffer);
  // The index arrays are the builder's own allocations (or prefixes of them).
  for (const a of [index.slots, index.serialOff, index.serialLen, index.entryOff]) {
    if (a.buffer instanceof ArrayBuffer) transfer.add(a.buffer);
  }
  return {
    der,
    plain,
    issuerDer: bytesToWire(der, issuerDer),
    tbsDer: bytesToWire(der, tbsDer),
    signatureAlgorithmParams: signatureAlgorithmParams === null ? null : bytesToWire(der, signatureAlgorithmParams),
    signature: bytesToWire(der, signature),
    revoked: index,
  };
}

function crlFromWire(w: WireCrl): ParsedCrl {
  // Structured clone turns Buffers into plain Uint8Arrays; rewrap without copying.
  const der = Buffer.from(w.der.buffer, w.der.byteOffset, w.der.byteLength);
  return {
    ...w.plain,
    der,
    issuerDer: bytesFromWire(der, w.issuerDer),
    tbsDer: bytesFromWire(der, w.tbsDer),
    signatureAlgorithmParams: w.signatureAlgorithmParams === null ? null : bytesFromWire(der, w.signatureAlgorithmParams),
    signature: bytesFromWire(der, w.signature),
    revoked: RevokedSerials.fromTransferable(der, w.revoked),
  };
}

/**
 * The worker's whole job, kept here so the wire format has one owner; parse-worker.ts only hands it
 * the job message and posts the result. @internal
 */
export function runParseJob(data: unknown): { readonly reply: ParseJobReply; readonly transfer: ArrayBuffer[] } {
  try {
    const input = (data as Partial<ParseJobInput> | null)?.input;
    if (!(input instanceof Uint8Array)) return { reply: { ok: false, kind: 'internal', message: 'no input bytes in the parse job' }, transfer: [] };
    const bytes = Buffer.from(input.buffer, input.byteOffset, input.byteLength);
    const crls = crlDersFromFile(bytes).map((der) => parseCrl(owned(der)));
    const transfer = new Set<ArrayBuffer>();
    const wire = crls.map((crl) => crlToWire(crl, transfer));
    return { reply: { ok: true, crls: wire }, transfer: [...transfer] };
  } catch (err) {
    if (err instanceof CrlParseError) return { reply: { ok: false, kind: 'parse', reason: err.reason, offset: err.offset }, transfer: [] };
    return { reply: { ok: false, kind: 'internal', message: (err as Error)?.message ?? String(err) }, transfer: [] };
  }
}

/**
 * Where the worker entry lives. From dist/ it is the compiled parse-worker.js next to this file;
 * under a TypeScript loader (tap runs src/ directly) only parse-worker.ts exists, and the worker
 * needs the parent's execArgv so the same loader hooks apply inside it.
 */
function workerEntry(): { readonly url: URL; readonly execArgv: string[] | undefined } {
  const self = import.meta.url;
  if (self.endsWith('.ts')) return { url: new URL('./parse-worker.ts', self), execArgv: process.execArgv };
  return { url: new URL('./parse-worker.js', self), execArgv: undefined };
}

/** Bytes copied per event-loop turn: a 40 MB memcpy into fresh pages blocks for 40-60 ms in one go. */
const COPY_CHUNK_BYTES = 1024 * 1024;

/**
 * Copies `src` into a buffer of its own (transferable, unlike Node's shared pool), yielding to the
 * event loop between chunks. Returns null when `abandoned()` turns true mid-way.
 */
async function copyYielding(src: Buffer, abandoned: () => boolean): Promise<Buffer | null> {
  // allocUnsafeSlow: never pooled, and no zero-fill for bytes about to be overwritten.
  const out = Buffer.allocUnsafeSlow(src.length);
  for (let off = 0; off < src.length; off += COPY_CHUNK_BYTES) {
    if (off > 0) await yieldToLoop();
    if (abandoned()) return null;
    src.copy(out, off, off, Math.min(off + COPY_CHUNK_BYTES, src.length));
  }
  return out;
}

async function runWorker(bytes: Buffer, timeoutMs: number): Promise<ParseJobReply> {
  const { url, execArgv } = workerEntry();
  // Started before the input is copied, so the thread boots while the copy runs.
  const worker = new Worker(url, execArgv ? { execArgv } : {});
  let timer: NodeJS.Timeout | undefined;
  let settled = false;
  const result = new Promise<ParseJobReply>((resolve, reject) => {
    const fail = (err: CrlParseWorkerError): void => {
      settled = true;
      reject(err);
    };
    timer = setTimeout(() => fail(new CrlParseWorkerError('CRL_PARSE_TIMEOUT', `CRL parse did not finish within ${timeoutMs} ms`)), timeoutMs);
    worker.once('message', (msg: ParseJobReply) => {
      settled = true;
      resolve(msg);
    });
    worker.once('messageerror', (err) => fail(new CrlParseWorkerError('CRL_PARSE_WORKER_FAILED', 'CRL parse result could not be received', { cause: err })));
    worker.once('error', (err) => fail(new CrlParseWorkerError('CRL_PARSE_WORKER_FAILED', `CRL parse worker failed: ${err.message}`, { cause: err })));
    worker.once('exit', (code) => fail(new CrlParseWorkerError('CRL_PARSE_WORKER_FAILED', `CRL parse worker exited (code ${code}) without a result`)));
  });
  // Observed below; this only keeps a failure during the copy from counting as unhandled.
  void result.catch(() => undefined);
  try {
    // The caller keeps its Buffer: we transfer our own copy rather than detach theirs.
    const input = await copyYielding(bytes, () => settled);
    if (input !== null) {
      const job: ParseJobInput = { input };
      worker.postMessage(job, [input.buffer as ArrayBuffer]);
    }
    return await result;
  } finally {
    clearTimeout(timer);
    // Resolves once the thread is gone, so a caller that awaited us leaves nothing running.
    await worker.terminate();
  }
}
