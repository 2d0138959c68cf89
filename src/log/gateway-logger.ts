/**
 * The gateway's logger: pino, one JSON line per record, written to a file descriptor (stdout in
 * production) through a buffered destination that writes on libuv's thread pool
 * (buffered-fd-writer.ts).
 *
 * Buffering keeps logging off the request's critical path. Lines are written once log.bufferBytes
 * are waiting and at least every log.flushInterval (like Envoy's access-log flush) instead of one
 * thread-pool write per line. The default of 64 KiB (Envoy's MIN_FLUSH_SIZE, about a hundred
 * access records per write) replaced 4 KiB in issue 14: at a paced load, where every write wakes a
 * thread-pool thread and then the event loop, 4 KiB cost 5 to 34 µs of CPU per request more
 * (bench/gateway-variants.mjs --rate, bench/README.md). What is buffered is written synchronously
 * on exit. A descriptor that does not keep up holds at most MAX_PENDING_BYTES in memory; lines
 * beyond it are dropped and a `log-lines-dropped` record says how many, where they are missing.
 */
import { pino, type LevelWithSilent, type Logger } from 'pino';
import { BufferedFdWriter } from './buffered-fd-writer.js';
import { cachedIsoTime } from './cached-iso-time.js';

/** Lines waiting for a slow descriptor beyond this are dropped (about 13,000 access records). */
export const MAX_PENDING_BYTES = 8 * 1024 * 1024;

/** The `log` section of the config, as far as the logger needs it (log comes before config in the layer order). */
export interface LoggerSettings {
  readonly level: LevelWithSilent;
  readonly bufferBytes: number;
  /** ms */
  readonly flushInterval: number;
}

export function createGatewayLogger(log: LoggerSettings, fd = 1, maxPendingBytes = MAX_PENDING_BYTES): Logger {
  const destination = new BufferedFdWriter({
    fd,
    bufferBytes: log.bufferBytes,
    flushInterval: log.flushInterval,
    maxPendingBytes,
    // A record in the log's own format (pino's fields, level as a label), built here because the
    // writer sits under pino and must not call back into it.
    droppedNotice: (dropped) =>
      `${JSON.stringify({
        level: 'warn',
        time: new Date().toISOString(),
        pid: process.pid,
        event: 'log-lines-dropped',
        dropped,
        msg: `${dropped} log line(s) dropped here: the log destination did not keep up`,
      })}\n`,
  });
  return pino({ level: log.level, base: { pid: process.pid }, timestamp: cachedIsoTime(), formatters: { level: (label) => ({ level: label }) } }, destination);
}

/** Writes what the logger has buffered, synchronously: before process.exit(), which runs no more I/O. */
export function flushLogSync(logger: Logger): void {
  const stream = (logger as unknown as Record<symbol, { flushSync?: () => void }>)[pino.symbols.streamSym];
  stream?.flushSync?.();
}
