/**
 * The gateway's logger: pino, one JSON line per record, written to a file descriptor (stdout in
 * production) through an asynchronous buffered destination (sonic-boom, pino's own).
 *
 * An async destination keeps logging off the request's critical path. Lines are buffered up to
 * log.bufferBytes and written at least every log.flushInterval (like Envoy's access-log flush)
 * instead of one thread-pool write per line: at 4 KiB, strace counted about nine access records
 * per write. The buffer is flushed synchronously on exit.
 */
import { pino, type LevelWithSilent, type Logger } from 'pino';
import { cachedIsoTime } from './cached-iso-time.js';

/** sonic-boom's default largest single write; it refuses a buffer (minLength) that is not smaller. */
const SONIC_BOOM_MAX_WRITE = 16_384;

/** The `log` section of the config, as far as the logger needs it (log comes before config in the layer order). */
export interface LoggerSettings {
  readonly level: LevelWithSilent;
  readonly bufferBytes: number;
  /** ms */
  readonly flushInterval: number;
}

export function createGatewayLogger(log: LoggerSettings, fd = 1): Logger {
  return pino(
    { level: log.level, base: { pid: process.pid }, timestamp: cachedIsoTime(), formatters: { level: (label) => ({ level: label }) } },
    pino.destination({
      dest: fd,
      sync: false,
      minLength: log.bufferBytes,
      // Every log.bufferBytes the schema allows (up to 64 KiB) must start: sonic-boom throws at
      // construction when minLength is not below maxWrite.
      maxWrite: Math.max(SONIC_BOOM_MAX_WRITE, 2 * log.bufferBytes),
      ...(log.bufferBytes > 0 ? { periodicFlush: log.flushInterval } : {}),
    }),
  );
}
