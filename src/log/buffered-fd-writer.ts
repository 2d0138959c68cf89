/**
 * The log destination: lines kept in memory and written to a file descriptor in batches, on libuv's
 * thread pool (fs.write), never on the event loop. This module owns the flush timer and the
 * descriptor writes; pino formats the lines and hands them here (it calls `write`, `flush` and
 * `flushSync`, the same surface sonic-boom offers it).
 *
 * Why not sonic-boom (pino's own destination, used until issue 14): it measures the UTF-8 length of
 * the batch it appends to on every line, which flattens the growing string each time, and it turns
 * each written string into a Buffer again afterwards. Measured with pino on Node 24.21
 * (bench/log-destination-cost.mjs: 625-byte access records, one process, interleaved): 5.5 µs of
 * CPU per line above pino's own serialization to /dev/null (6.6 to a file), against 0.9 (1.1) here.
 * It also keeps every line while the descriptor is blocked (a stalled log pipe grows the heap
 * without limit), and pino re-emits its errors other than EPIPE, which stops the process. Here:
 *  - each line is encoded to UTF-8 once, as it arrives, into the chunk that is then written;
 *  - at most `maxPendingBytes` wait in memory; beyond that new lines are dropped and counted, and a
 *    notice saying how many (built by the caller, so it is a line in the log's own format) goes
 *    into the log where the gap is;
 *  - a write that fails is dropped with its lines, reported once on stderr per streak of failures,
 *    and logging goes on with the next batch: logging never stops the gateway;
 *  - EAGAIN (a non-blocking pipe that is full) is retried after a short wait.
 */
import { write as fsWrite, writeSync } from 'node:fs';

export interface BufferedFdWriterOptions {
  readonly fd: number;
  /** Write once about this many bytes are waiting; 0 writes every line at once. */
  readonly bufferBytes: number;
  /** ms: a line waits at most about this long before its write starts. */
  readonly flushInterval: number;
  /** Lines beyond this many bytes waiting (a descriptor that does not keep up) are dropped and counted. */
  readonly maxPendingBytes: number;
  /** The line that says `dropped` lines are missing at this point of the log. */
  readonly droppedNotice: (dropped: number) => string;
}

/**
 * A chunk holds log.bufferBytes and this much more, so that the line which reaches the buffer size
 * usually still fits and a batch is written from one chunk, without copying.
 */
const CHUNK_SLACK = 16 * 1024;
/** Wait before retrying a write the descriptor refused with EAGAIN (its pipe is full). */
const RETRY_BUSY_MS = 10;
/** flushSync gives a descriptor that keeps answering EAGAIN this long, then gives up (on exit). */
const FLUSH_SYNC_BUSY_LIMIT_MS = 1_000;

export class BufferedFdWriter {
  readonly #fd: number;
  readonly #bufferBytes: number;
  readonly #flushInterval: number;
  readonly #maxPending: number;
  readonly #droppedNotice: (dropped: number) => string;
  /**
   * Lines not yet handed to a write, in order, already UTF-8: full chunks, then the chunk being
   * filled (`#cur`, its first `#curLen` bytes). Each line is encoded once, as it arrives, into the
   * chunk that is written: no batch string is joined and then encoded again.
   */
  #chunks: Buffer[] = [];
  #cur: Buffer | null = null;
  #curLen = 0;
  /** Their length in UTF-16 units: at most their UTF-8 length, which is what the limits are about. */
  #pending = 0;
  /** The bytes of the write in progress (what is left of them after a short write), or null. */
  #inFlight: Buffer | null = null;
  #dropped = 0;
  #droppedTotal = 0;
  #failing = false;
  #timer: NodeJS.Timeout | null = null;
  #flushDue = false;
  #waiters: ((err?: Error) => void)[] = [];
  #closed = false;

  constructor(opts: BufferedFdWriterOptions) {
    this.#fd = opts.fd;
    this.#bufferBytes = opts.bufferBytes;
    this.#flushInterval = opts.flushInterval;
    this.#maxPending = Math.max(opts.maxPendingBytes, opts.bufferBytes);
    this.#droppedNotice = opts.droppedNotice;
    liveWriters.add(this);
  }

  /** Lines dropped since start because the descriptor did not keep up or failed. */
  get dropped(): number {
    return this.#droppedTotal;
  }

  write(line: string): boolean {
    if (this.#closed) return true;
    if (this.#pending + line.length > this.#maxPending) {
      this.#dropped++;
      this.#droppedTotal++;
      return true;
    }
    if (this.#dropped > 0) this.#noteDropped();
    this.#append(line);
    if (this.#inFlight !== null) return true;
    if (this.#pending >= this.#bufferBytes) this.#writeNext();
    else if (this.#timer === null) this.#armTimer();
    return true;
  }

  /** Writes everything waiting now; `cb` runs once it is all written (or dropped on an error). */
  flush(cb?: (err?: Error) => void): void {
    if (cb) this.#waiters.push(cb);
    if (this.#inFlight === null) this.#writeNext();
    else this.#flushDue = true;
  }

  /**
   * Writes everything waiting, synchronously: for exit, when the event loop will not run again. A
   * write already handed to the thread pool is not repeated (it cannot be told apart from one that
   * is done); it is normally done by then, a few KiB taking microseconds, but when it is not, its
   * lines can land after the ones written here. sonic-boom behaves the same way.
   */
  flushSync(): void {
    if (this.#dropped > 0) this.#noteDropped();
    if (this.#pending === 0) return;
    let buf = this.#take();
    let busySince = 0;
    while (buf.length > 0) {
      try {
        buf = buf.subarray(writeSync(this.#fd, buf));
        busySince = 0;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'EAGAIN' && code !== 'EBUSY') return;
        const now = Date.now();
        if (busySince === 0) busySince = now;
        else if (now - busySince > FLUSH_SYNC_BUSY_LIMIT_MS) return;
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, RETRY_BUSY_MS);
      }
    }
  }

  /** Writes what is waiting and stops: later lines are ignored. Does not close the descriptor. */
  end(): void {
    this.flushSync();
    this.#closed = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    liveWriters.delete(this);
  }

  /** Encodes `line` at the end of what is waiting. */
  #append(line: string): void {
    // At most 3 bytes per UTF-16 unit; a chunk that may not hold the line is closed first.
    const worst = line.length * 3;
    let cur = this.#cur;
    if (cur === null || cur.length - this.#curLen < worst) {
      if (cur !== null && this.#curLen > 0) this.#chunks.push(cur.subarray(0, this.#curLen));
      // Unbuffered (bufferBytes 0), every line is written alone: a chunk of its own size.
      cur = this.#cur = Buffer.allocUnsafeSlow(Math.max(worst, this.#bufferBytes > 0 ? this.#bufferBytes + CHUNK_SLACK : 0));
      this.#curLen = 0;
    }
    this.#curLen += cur.write(line, this.#curLen, 'utf8');
    this.#pending += line.length;
  }

  /** Everything waiting, as one buffer (the chunk itself when there is one), and nothing waits any more. */
  #take(): Buffer {
    const cur = this.#cur;
    const last = cur !== null && this.#curLen > 0 ? cur.subarray(0, this.#curLen) : null;
    const chunks = this.#chunks;
    const buf = chunks.length === 0 ? last! : Buffer.concat(last === null ? chunks : [...chunks, last]);
    // The bytes now belong to the write: the next line starts a new chunk.
    this.#chunks = [];
    this.#cur = null;
    this.#curLen = 0;
    this.#pending = 0;
    return buf;
  }

  #noteDropped(): void {
    const notice = this.#droppedNotice(this.#dropped);
    this.#dropped = 0;
    this.#append(notice);
  }

  #armTimer(): void {
    this.#timer = setTimeout(this.#onTimer, this.#flushInterval);
    this.#timer.unref();
  }

  readonly #onTimer = (): void => {
    this.#timer = null;
    if (this.#inFlight === null) this.#writeNext();
    else this.#flushDue = true;
  };

  #writeNext(): void {
    this.#flushDue = false;
    if (this.#dropped > 0) this.#noteDropped();
    if (this.#pending === 0) {
      this.#settleWaiters();
      return;
    }
    this.#start(this.#take());
  }

  #start(buf: Buffer): void {
    this.#inFlight = buf;
    fsWrite(this.#fd, buf, 0, buf.length, null, this.#onWritten);
  }

  readonly #onWritten = (err: NodeJS.ErrnoException | null, written: number): void => {
    const buf = this.#inFlight!;
    if (err) {
      if (err.code === 'EAGAIN' || err.code === 'EBUSY') {
        setTimeout(() => this.#start(buf), RETRY_BUSY_MS);
        return;
      }
      this.#failed(err, buf);
    } else {
      this.#failing = false;
      if (written < buf.length) {
        this.#start(buf.subarray(written));
        return;
      }
    }
    this.#inFlight = null;
    if (this.#pending === 0 && this.#dropped === 0) {
      this.#settleWaiters();
      return;
    }
    if (this.#flushDue || this.#waiters.length > 0 || this.#pending >= this.#bufferBytes) this.#writeNext();
    else if (this.#timer === null) this.#armTimer();
  };

  #failed(err: NodeJS.ErrnoException, buf: Buffer): void {
    let lines = 0;
    for (let i = buf.indexOf(10); i !== -1; i = buf.indexOf(10, i + 1)) lines++;
    this.#droppedTotal += lines;
    if (this.#failing) return;
    this.#failing = true;
    try {
      // The log itself may be what is broken; stderr is the one place left to say so.
      writeSync(2, `mtls-gateway: log write to fd ${this.#fd} failed (${err.code ?? err.message}); ${lines} line(s) dropped, later lines are still tried\n`);
    } catch {
      // stderr is gone too: nothing left to tell.
    }
  }

  #settleWaiters(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }
}

/** Every open writer, so that what is buffered is written on exit (pino does this for sonic-boom only). */
const liveWriters = new Set<BufferedFdWriter>();
process.on('exit', () => {
  for (const w of liveWriters) w.flushSync();
});
