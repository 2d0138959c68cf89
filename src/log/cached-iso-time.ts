/**
 * pino's `isoTime` timestamp, formatted once per millisecond instead of once per line (nginx caches
 * its time the same way). At thousands of access records per second most lines share a
 * millisecond; measured with pino alone, this takes about 1 µs (about a fifth) off each line.
 */
export function cachedIsoTime(now: () => number = Date.now): () => string {
  let last = Number.NaN;
  let cached = '';
  return () => {
    const t = now();
    if (t !== last) {
      last = t;
      cached = `,"time":"${new Date(t).toISOString()}"`;
    }
    return cached;
  };
}
