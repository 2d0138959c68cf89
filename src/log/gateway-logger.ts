/**
 * The gateway's logger: pino, one JSON line per record, written to a file descriptor (stdout in
 * production) through an asynchronous buffered destination (sonic-boom, pino's own).
 *
 * An async destination keeps logging off the request's critical path. Lines are buffered up to
 * log.bufferBytes and written at least every log.flushInterval (like Envoy's access-log flush)
 * instead of one thread-pool write per line: at 4 KiB, strace counted about nine access records
 * per write. The buffer is flushed synchronously on exit.
 */
import { pino, type Logger } from 'pino';
import type { GatewayConfig } from '../config/schema.js';
import { cachedIsoTime } from './cached-iso-time.js';

/** sonic-boom's default largest single write; it refuses a buffer (minLength) that is not smaller. */
const SONIC_BOOM_MAX_WRITE = 16_384;

export function createGatewayLogger(log: GatewayConfig['log'], fd = 1): Logger {
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
