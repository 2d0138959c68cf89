/**
 * Revocation: one trust domain's OCSP answers, kept current. It owns the lookups (through an
 * injected OcspLookupFn, the socket side) and the refresh timers; what an answer means for a
 * connection is decided by combined-revocation.ts.
 *
 * - One answer per certificate (keyed by issuer and serial), kept until its nextUpdate, in a
 *   bounded LRU. A certificate asked for while its lookup runs joins that lookup: one request per
 *   certificate, however many connections arrive at once.
 * - Answers of certificates with live connections (hold()) are fetched again before they expire,
 *   at three quarters of their validity (or half the time left, for an answer already past that
 *   point), so a keep-alive connection never waits on a lookup and a revocation published by the
 *   responder reaches it within that time.
 * - A lookup that fails (network, timeout, HTTP status, an answer that does not verify) is
 *   remembered as `unavailable` for a short while, so a responder outage costs one timeout per
 *   certificate per RETRY_UNAVAILABLE_MS, not one per connection.
 * - Every stored answer moves `generation`, which is part of the per-connection verdict cache key
 *   (ConnectionAuthenticator); a refresh that turned a certificate bad calls onChange, which closes
 *   the live connections it no longer admits.
 */
import { randomBytes, type X509Certificate } from 'node:crypto';
import type { Logger } from 'pino';
import { certificateDn } from '../x509/dn.js';
import type { OcspLookupFn } from './ocsp-http-lookup.js';
import { certIdFor, encodeOcspRequest, type OcspCertId } from './ocsp-request.js';
import { verifyOcspResponse, type OcspAnswer, type OcspCheck } from './ocsp-response.js';

/** A responder answered, and its answer verified. */
export interface OcspAnswered {
  readonly kind: 'answer';
  readonly answer: OcspAnswer;
  readonly url: string;
  /** Epoch ms after which the answer is not used (its nextUpdate, or fetchedAt + NO_NEXT_UPDATE_TTL_MS). */
  readonly expiresAt: number;
}

/** No usable answer: the lookup failed or the answer did not verify. */
export interface OcspUnavailable {
  readonly kind: 'unavailable';
  readonly reason: string;
  readonly url: string;
  /** Epoch ms until which this is reported without asking again. */
  readonly until: number;
}

export type OcspState =
  | OcspAnswered
  | OcspUnavailable
  /** Neither a configured responder nor an AIA OCSP URL names one for this certificate. */
  | { readonly kind: 'no-responder' }
  /** A lookup is running; `done` settles (never rejects) when its result is stored. */
  | { readonly kind: 'pending'; readonly done: Promise<void> };

/** What the store reports for /metrics. */
export interface OcspMetricsSink {
  ocspCache(domain: string, result: 'hit' | 'miss'): void;
  ocspLookup(domain: string, result: 'good' | 'revoked' | 'unknown' | 'unavailable', seconds: number): void;
}

export interface OcspStoreOptions {
  /** Names the trust domain in logs and metrics: `clients` or `upstream orders`. */
  readonly domain: string;
  readonly timeoutMs: number;
  readonly maxBytes: number;
  readonly cacheSize: number;
  readonly nonce: boolean;
  /** The responder URL for a certificate: configured by issuer, else its AIA; null when none. */
  readonly responderFor: (leafDer: Buffer, issuer: X509Certificate) => string | null;
  readonly lookup: OcspLookupFn;
  readonly logger: Logger;
  readonly now: () => number;
  readonly metrics?: OcspMetricsSink | null | undefined;
  /** A refresh changed a held certificate's answer from good to anything else. */
  readonly onChange?: () => void;
}

/**
 * What a verified (or refused) response means as a state: an answer usable until its nextUpdate
 * (NO_NEXT_UPDATE_TTL_MS without one), or unavailable until `unavailableUntil` with the reason.
 * One conversion for lookups, upstream staples and `cert inspect`.
 */
export function stateFromCheck(check: OcspCheck, url: string, now: number, unavailableUntil: number): OcspAnswered | OcspUnavailable {
  if (!check.ok) return { kind: 'unavailable', reason: `${check.failure}: ${check.reason}`, url, until: unavailableUntil };
  const a = check.answer;
  return { kind: 'answer', answer: a, url, expiresAt: a.nextUpdate !== null ? a.nextUpdate.getTime() : now + NO_NEXT_UPDATE_TTL_MS };
}

/** How long a failed lookup is reported before the next connection asks again. */
export const RETRY_UNAVAILABLE_MS = 5_000;
/** How long an answer without nextUpdate is used (RFC 6960 2.4: newer information is always available). */
export const NO_NEXT_UPDATE_TTL_MS = 5 * 60_000;
/** A refresh is never scheduled sooner than this after the previous one. */
const MIN_REFRESH_MS = 1_000;

interface Entry {
  state: OcspAnswered | OcspUnavailable;
  readonly leafDer: Buffer;
  readonly issuer: X509Certificate;
  readonly subject: string;
  readonly serial: string;
  timer: NodeJS.Timeout | null;
}

/** One row of /status. */
export interface OcspEntryInfo {
  readonly serial: string;
  readonly subject: string;
  readonly status: 'good' | 'revoked' | 'unknown' | 'unavailable';
  readonly url: string;
  readonly expiresAt: string;
  readonly held: number;
}

export class OcspStore {
  readonly domain: string;
  #generation = 0;
  readonly #opts: OcspStoreOptions;
  /** LRU: Map iteration order is insertion order; a hit moves the entry to the end. */
  readonly #entries = new Map<string, Entry>();
  readonly #inflight = new Map<string, Promise<void>>();
  /** Live connections per certificate key. */
  readonly #held = new Map<string, number>();
  /** Per issuer object: its CertID hashes come from certIdFor once per issuer and serial. */
  readonly #issuerIds = new WeakMap<X509Certificate, string>();
  #nextIssuerId = 1;
  #stopped = false;
  readonly counts = { hits: 0, misses: 0, lookups: 0 };

  constructor(opts: OcspStoreOptions) {
    this.#opts = opts;
    this.domain = opts.domain;
  }

  /** Moves with every stored answer or failure: a verdict cached under another generation is recomputed. */
  get generation(): number {
    return this.#generation;
  }

  get size(): number {
    return this.#entries.size;
  }

  #key(issuer: X509Certificate, serial: string): string {
    let id = this.#issuerIds.get(issuer);
    if (id === undefined) this.#issuerIds.set(issuer, (id = String(this.#nextIssuerId++)));
    return `${id}:${serial}`;
  }

  /**
   * The certificate's state now, starting a lookup when there is no usable one. Never waits: a
   * cached answer or failure is returned as it is, and otherwise `pending` with the lookup's promise.
   */
  state(leafDer: Buffer, issuer: X509Certificate, serial: string, subject: string): OcspState {
    const key = this.#key(issuer, serial);
    const now = this.#opts.now();
    const e = this.#entries.get(key);
    if (e !== undefined) {
      const s = e.state;
      if ((s.kind === 'answer' && now < s.expiresAt) || (s.kind === 'unavailable' && now < s.until)) {
        this.#entries.delete(key);
        this.#entries.set(key, e);
        this.counts.hits++;
        this.#opts.metrics?.ocspCache(this.domain, 'hit');
        return s;
      }
    }
    const running = this.#inflight.get(key);
    if (running !== undefined) return { kind: 'pending', done: running };
    const url = this.#opts.responderFor(leafDer, issuer);
    if (url === null) return { kind: 'no-responder' };
    this.counts.misses++;
    this.#opts.metrics?.ocspCache(this.domain, 'miss');
    return { kind: 'pending', done: this.#fetch(key, url, leafDer, issuer, serial, subject) };
  }

  /**
   * Marks a certificate as in use by a live connection until the returned function is called: its
   * answer is refreshed before it expires while any such connection lives.
   */
  hold(issuer: X509Certificate, serial: string): () => void {
    const key = this.#key(issuer, serial);
    this.#held.set(key, (this.#held.get(key) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const n = (this.#held.get(key) ?? 1) - 1;
      if (n <= 0) this.#held.delete(key);
      else this.#held.set(key, n);
    };
  }

  #fetch(key: string, url: string, leafDer: Buffer, issuer: X509Certificate, serial: string, subject: string): Promise<void> {
    const p = this.#lookup(key, url, leafDer, issuer, serial, subject).finally(() => this.#inflight.delete(key));
    this.#inflight.set(key, p);
    return p;
  }

  async #lookup(key: string, url: string, leafDer: Buffer, issuer: X509Certificate, serial: string, subject: string): Promise<void> {
    const o = this.#opts;
    const started = performance.now();
    this.counts.lookups++;
    let certId: OcspCertId;
    let state: OcspAnswered | OcspUnavailable;
    try {
      certId = certIdFor(leafDer, issuer);
      const nonce = o.nonce ? randomBytes(16) : null;
      const res = await o.lookup({ url, request: encodeOcspRequest(certId, nonce), timeoutMs: o.timeoutMs, maxBytes: o.maxBytes });
      const now = o.now();
      if (!res.ok) {
        state = { kind: 'unavailable', reason: res.reason, url, until: now + RETRY_UNAVAILABLE_MS };
      } else {
        state = stateFromCheck(verifyOcspResponse(res.der, { certId, issuer, now, nonce }), url, now, now + RETRY_UNAVAILABLE_MS);
      }
    } catch (err) {
      // certIdFor on a certificate OpenSSL accepted should not throw; if it does, fail like a lookup.
      state = { kind: 'unavailable', reason: `lookup failed: ${(err as Error).message}`, url, until: o.now() + RETRY_UNAVAILABLE_MS };
    }
    const seconds = (performance.now() - started) / 1000;
    o.metrics?.ocspLookup(this.domain, state.kind === 'answer' ? state.answer.status : 'unavailable', seconds);
    if (this.#stopped) return;
    this.#store(key, state, leafDer, issuer, serial, subject, seconds);
  }

  #store(key: string, state: OcspAnswered | OcspUnavailable, leafDer: Buffer, issuer: X509Certificate, serial: string, subject: string, seconds: number): void {
    const o = this.#opts;
    const before = this.#entries.get(key);
    const now = o.now();
    const log = { event: 'ocsp-lookup', domain: this.domain, serial, subject, issuer: certificateDn(issuer), url: state.url, ms: Math.round(seconds * 1000) };
    if (state.kind === 'unavailable' && before !== undefined && before.state.kind === 'answer' && now < before.state.expiresAt) {
      // A refresh that failed while the answer in force is still valid: keep it, ask again soon.
      o.logger.warn({ ...log, status: 'unavailable', reason: state.reason, keeping: before.state.answer.status, expiresAt: new Date(before.state.expiresAt).toISOString() }, 'OCSP: refresh failed, the answer in force is kept until it expires');
      if (before.timer) clearTimeout(before.timer);
      this.#retryLater(key, before, Math.min(RETRY_UNAVAILABLE_MS, before.state.expiresAt - now));
      return;
    }
    if (before?.timer) clearTimeout(before.timer);
    this.#entries.delete(key);
    const entry: Entry = { state, leafDer, issuer, serial, subject, timer: null };
    this.#entries.set(key, entry);
    while (this.#entries.size > o.cacheSize) {
      const [oldKey, old] = this.#entries.entries().next().value!;
      if (old.timer) clearTimeout(old.timer);
      this.#entries.delete(oldKey);
    }
    this.#generation++;
    if (state.kind === 'answer') {
      const a = state.answer;
      o.logger[a.status === 'good' ? 'debug' : 'warn'](
        { ...log, status: a.status, thisUpdate: a.thisUpdate.toISOString(), nextUpdate: a.nextUpdate?.toISOString() ?? null, revokedAt: a.revokedAt?.toISOString() ?? null, reason: a.reason, signer: a.signer },
        `OCSP: certificate ${a.status}`,
      );
    } else {
      o.logger.warn({ ...log, status: 'unavailable', reason: state.reason }, 'OCSP: no usable answer');
    }
    this.#schedule(key, entry);
    const wasGood = before?.state.kind === 'answer' && before.state.answer.status === 'good';
    const isGood = state.kind === 'answer' && state.answer.status === 'good';
    if (before !== undefined && (this.#held.get(key) ?? 0) > 0 && wasGood !== isGood) o.onChange?.();
  }

  /** A held certificate's answer is fetched again at 3/4 of its validity (a failure after RETRY_UNAVAILABLE_MS). */
  #schedule(key: string, entry: Entry): void {
    const now = this.#opts.now();
    const s = entry.state;
    if (s.kind === 'unavailable') return this.#retryLater(key, entry, s.until - now);
    const due = s.answer.thisUpdate.getTime() + 0.75 * (s.expiresAt - s.answer.thisUpdate.getTime());
    // A responder that serves pre-signed answers can hand out one already past its 3/4 point;
    // asking again at once would get the same answer every second. Halve the time left instead.
    this.#retryLater(key, entry, due > now ? due - now : (s.expiresAt - now) / 2);
  }

  #retryLater(key: string, entry: Entry, inMs: number): void {
    const delay = Math.max(MIN_REFRESH_MS, Math.min(inMs, 2_147_000_000));
    entry.timer = setTimeout(() => {
      entry.timer = null;
      if (this.#stopped || this.#entries.get(key) !== entry) return;
      if ((this.#held.get(key) ?? 0) === 0 || this.#inflight.has(key)) return;
      void this.#fetch(key, entry.state.url, entry.leafDer, entry.issuer, entry.serial, entry.subject);
    }, delay);
    entry.timer.unref();
  }

  /** Cache rows for /status (bounded by the caller). */
  describe(limit = 100): OcspEntryInfo[] {
    const out: OcspEntryInfo[] = [];
    for (const [key, e] of this.#entries) {
      if (out.length >= limit) break;
      const s = e.state;
      out.push({
        serial: e.serial,
        subject: e.subject,
        status: s.kind === 'answer' ? s.answer.status : 'unavailable',
        url: s.url,
        expiresAt: new Date(s.kind === 'answer' ? s.expiresAt : s.until).toISOString(),
        held: this.#held.get(key) ?? 0,
      });
    }
    return out;
  }

  stop(): void {
    this.#stopped = true;
    for (const e of this.#entries.values()) if (e.timer) clearTimeout(e.timer);
  }
}
