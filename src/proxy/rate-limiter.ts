/**
 * Rate limiting: owns the token buckets, one per key (a client identity), and parsing the
 * configured rate. Pure: the caller passes the time, so tests need no waiting and a clock that
 * steps backwards is the caller's to report, never a gift of tokens.
 *
 * The map is bounded: beyond `maxKeys` the least recently used key is dropped, and a dropped key
 * comes back with a full bucket. That is a choice of memory over precision: to reset someone
 * else's bucket a client would have to present `maxKeys` distinct identities between two of their
 * requests, and each identity needs a certificate the gateway accepts.
 */

export interface RateLimitSettings {
  readonly ratePerSecond: number;
  /** Bucket size, at least 1 (the config schema checks that). */
  readonly burst: number;
  /** default 100_000 */
  readonly maxKeys?: number;
}

interface Bucket {
  tokens: number;
  /** The time the tokens were last brought up to date; never moves backwards. */
  at: number;
}

/**
 * Refill is computed in floating point: 0.5 + 0.49 tokens is 0.98999..., which would turn a 1 ms
 * wait into 2 and make waiting the reported time fall a hair short of a token. Admission forgives
 * this much of a token and the reported wait half of it, so the wait is exact for exact inputs and
 * always enough. A billionth of a token per request is not a loophole worth closing.
 */
const ROUNDING = 1e-9;

export class RateLimiter {
  readonly #ratePerSecond: number;
  readonly #burst: number;
  readonly #maxKeys: number;
  /** In least recently used first order: a key is re-inserted on each use. */
  readonly #buckets = new Map<string, Bucket>();

  constructor(settings: RateLimitSettings) {
    this.#ratePerSecond = settings.ratePerSecond;
    this.#burst = settings.burst;
    this.#maxKeys = Math.max(1, settings.maxKeys ?? 100_000);
  }

  get size(): number {
    return this.#buckets.size;
  }

  /**
   * Takes one token for `key` at `nowMs`. Returns 0 when admitted, otherwise the ms until one
   * token will be available (> 0), rounded up to a whole ms.
   */
  take(key: string, nowMs: number): number {
    let bucket = this.#buckets.get(key);
    if (bucket === undefined) {
      if (this.#buckets.size >= this.#maxKeys) {
        const oldest = this.#buckets.keys().next();
        if (oldest.done !== true) this.#buckets.delete(oldest.value);
      }
      bucket = { tokens: this.#burst, at: nowMs };
    } else {
      this.#buckets.delete(key);
      if (nowMs > bucket.at) {
        bucket.tokens = Math.min(this.#burst, bucket.tokens + ((nowMs - bucket.at) * this.#ratePerSecond) / 1000);
        bucket.at = nowMs;
      }
    }
    this.#buckets.set(key, bucket);
    if (bucket.tokens >= 1 - ROUNDING) {
      bucket.tokens = Math.max(0, bucket.tokens - 1);
      return 0;
    }
    return Math.ceil(((1 - ROUNDING / 2 - bucket.tokens) * 1000) / this.#ratePerSecond);
  }
}
