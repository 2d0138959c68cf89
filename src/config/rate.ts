/**
 * Rates as the config writes them ("100/s", "600/m", "10/h"), parsed to tokens per second for the
 * route rate limits (src/proxy/rate-limiter.ts).
 */

const RATE = /^(\d{1,10})(?:\.(\d{1,9}))?\/([smh])$/;
const MAX_COUNT = 1e9;

/**
 * "100/s", "6000/m", "10/h", "0.5/s" as tokens per second; null when malformed or not above zero.
 * The count is a plain decimal (no sign, exponent or blanks) of at most 1e9.
 */
export function parseRate(text: string): number | null {
  const m = RATE.exec(text);
  if (m === null) return null;
  const count = Number(m[2] === undefined ? m[1] : `${m[1]}.${m[2]}`);
  if (!(count > 0) || count > MAX_COUNT) return null;
  return count / (m[3] === 's' ? 1 : m[3] === 'm' ? 60 : 3600);
}
