/**
 * A pull-based upload or download of `bytes` bytes of 'x' in 64 KiB chunks: nothing is made until
 * the consumer reads, and `pulled` counts what it has asked for so far. For tests that bound what
 * a slow or absent reader lets the gateway hold: with a push-based source the count would measure
 * the test's own buffering.
 */
import { Readable } from 'node:stream';

/** The chunk every pulled source sends (the last one cut to size). */
export const PULLED_CHUNK = Buffer.alloc(64 * 1024, 'x');

export type PulledSource = Readable & { pulled: number };

export function pulledSource(bytes: number): PulledSource {
  let left = bytes;
  const r = new Readable({
    read() {
      if (left <= 0) return void this.push(null);
      const n = Math.min(left, PULLED_CHUNK.length);
      left -= n;
      r.pulled += n;
      this.push(n === PULLED_CHUNK.length ? PULLED_CHUNK : PULLED_CHUNK.subarray(0, n));
    },
  }) as PulledSource;
  r.pulled = 0;
  return r;
}
