/**
 * Revocation: OCSP stapling of the gateway's own server certificate (tls.stapling). Owns a timer:
 * it fetches the answer for the server leaf from the leaf's AIA OCSP responder (through the
 * injected OcspLookupFn, the socket side), verifies it against the leaf's issuer (the next
 * certificate of tls.cert's chain), and keeps the DER of the last answer that verified and says
 * `good`. The listener hands that DER to clients that ask (status_request, Node's 'OCSPRequest'
 * server event) only while its thisUpdate..nextUpdate window holds: a stale, revoked or unknown
 * answer is never stapled; without one, nothing is (clients then fall back to their own checks).
 *
 * Refreshed every `refresh`, or at three quarters of the answer's validity when that comes first;
 * a failed fetch is retried after RETRY_MS (never later than `refresh`), keeping the answer in
 * force until it expires. It reads the settings and certificate in force at each refresh (a
 * getter over the runtime snapshot), and `reconsider()` after a reload applies a new certificate
 * or new settings at once.
 */
import type { X509Certificate } from 'node:crypto';
import type { Logger } from 'pino';
import { certificateDn } from '../x509/dn.js';
import { ocspUrlProblem, type OcspLookupFn } from './ocsp-http-lookup.js';
import { certIdFor, encodeOcspRequest, ocspUrlsOf } from './ocsp-request.js';
import { verifyOcspResponse } from './ocsp-response.js';
import { NO_NEXT_UPDATE_TTL_MS } from './ocsp-store.js';
import { DEFAULT_CLOCK_SKEW_MS } from './verify-crl.js';

/** What the stapler reads from the configuration in force, at each refresh. */
export interface StaplingSource {
  /** tls.stapling.enabled */
  readonly enabled: boolean;
  /** tls.stapling.refresh, ms. */
  readonly refreshMs: number;
  /** tls.cert as loaded: the leaf first, then the certificates sent with it. */
  readonly chain: readonly X509Certificate[];
}

export type StapleResult = 'good' | 'revoked' | 'unknown' | 'unavailable';

export interface OcspStaplerDeps {
  readonly source: () => StaplingSource;
  readonly lookup: OcspLookupFn;
  readonly logger: Logger;
  readonly now: () => number;
  readonly metrics?: { ocspStapleRefreshed(result: StapleResult): void } | null | undefined;
}

/** What /status shows. */
export interface StaplingState {
  readonly enabled: boolean;
  readonly url: string | null;
  /** disabled, no-issuer, no-responder, pending (first fetch running), or the last fetch's result. */
  readonly status: 'disabled' | 'no-issuer' | 'no-responder' | 'pending' | StapleResult;
  /** Of the answer being stapled, or null when none is. */
  readonly thisUpdate: string | null;
  readonly nextUpdate: string | null;
  readonly lastError: string | null;
}

/** A failed fetch is tried again this soon (or at `refresh`, when shorter). */
export const RETRY_MS = 30_000;
/** One fetch, connection to last byte: off the handshake path, so more generous than client lookups. */
const LOOKUP_TIMEOUT_MS = 5_000;
const MAX_RESPONSE_BYTES = 65_536;
/** Never refetch sooner than this, whatever an answer's window says. */
const MIN_REFRESH_MS = 1_000;
const MAX_TIMER_MS = 2_147_000_000;

interface Staple {
  readonly der: Buffer;
  /** The certificate it is for: stapled only on handshakes that present exactly this one. */
  readonly leafDer: Buffer;
  readonly thisUpdate: number;
  readonly expiresAt: number;
  readonly nextUpdate: Date | null;
}

/** The stapling target of one certificate chain: its issuer and responder, or why there is none. */
type Target =
  | { readonly kind: 'ok'; readonly leaf: X509Certificate; readonly issuer: X509Certificate; readonly url: string }
  | { readonly kind: 'no-issuer' | 'no-responder'; readonly leaf: X509Certificate; readonly why: string };

function targetOf(chain: readonly X509Certificate[]): Target | null {
  const leaf = chain[0];
  if (leaf === undefined) return null;
  const issuer = chain[1];
  if (issuer === undefined || !leaf.checkIssued(issuer) || !leaf.verify(issuer.publicKey)) {
    return { kind: 'no-issuer', leaf, why: 'tls.cert does not carry the certificate\'s issuer right after it (the OCSP request names the issuer by its key)' };
  }
  const problems: string[] = [];
  for (const url of ocspUrlsOf(leaf.raw)) {
    const problem = ocspUrlProblem(url);
    if (problem === null) return { kind: 'ok', leaf, issuer, url };
    problems.push(`${url}: ${problem}`);
  }
  return { kind: 'no-responder', leaf, why: problems.length ? `no usable AIA OCSP URL (${problems.join('; ')})` : 'the certificate names no OCSP responder (Authority Information Access)' };
}

export class OcspStapler {
  readonly #deps: OcspStaplerDeps;
  #staple: Staple | null = null;
  #status: StaplingState['status'] = 'disabled';
  #url: string | null = null;
  #lastError: string | null = null;
  #timer: NodeJS.Timeout | null = null;
  /** The certificate and settings the current schedule was made for. */
  #basis: string | null = null;
  /** Leaf fingerprints already warned about, so an impossible stapling is logged once. */
  readonly #warned = new Set<string>();
  /** Bumped by every (re)start: a fetch that finishes after a newer one began is ignored. */
  #run = 0;
  #stopped = false;

  constructor(deps: OcspStaplerDeps) {
    this.#deps = deps;
  }

  /** Starts (after the initial load): the first fetch runs now. */
  start(): void {
    this.reconsider();
  }

  /**
   * After a reload: when the certificate or the stapling settings changed, drops an answer that is
   * not for the new certificate and fetches again now. Otherwise the schedule stands.
   */
  reconsider(): void {
    if (this.#stopped) return;
    const src = this.#deps.source();
    const basis = JSON.stringify([src.enabled, src.refreshMs, src.chain.map((c) => c.fingerprint256)]);
    if (basis === this.#basis) return;
    this.#basis = basis;
    this.#clearTimer();
    const run = ++this.#run;
    if (this.#staple !== null && !this.#staple.leafDer.equals(src.chain[0]?.raw ?? Buffer.alloc(0))) this.#staple = null;
    if (!src.enabled) {
      this.#staple = null;
      this.#status = 'disabled';
      this.#url = null;
      this.#lastError = null;
      return;
    }
    void this.#refresh(run);
  }

  /** The DER to staple on a handshake presenting `certDer`, or undefined: never a stale answer. */
  current(certDer: Buffer | null = null, now = this.#deps.now()): Buffer | undefined {
    const s = this.#staple;
    if (s === null) return undefined;
    if (certDer !== null && !s.leafDer.equals(certDer)) return undefined;
    if (now < s.thisUpdate - DEFAULT_CLOCK_SKEW_MS || now >= s.expiresAt) return undefined;
    return s.der;
  }

  state(now = this.#deps.now()): StaplingState {
    const s = this.current(null, now) === undefined ? null : this.#staple;
    return {
      enabled: this.#status !== 'disabled',
      url: this.#url,
      status: this.#status,
      thisUpdate: s ? new Date(s.thisUpdate).toISOString() : null,
      nextUpdate: s?.nextUpdate?.toISOString() ?? null,
      lastError: this.#lastError,
    };
  }

  stop(): void {
    this.#stopped = true;
    this.#clearTimer();
  }

  async #refresh(run: number): Promise<void> {
    const d = this.#deps;
    const src = d.source();
    const target = targetOf(src.chain);
    if (target === null || target.kind !== 'ok') {
      this.#staple = null;
      this.#url = null;
      if (target !== null) {
        this.#status = target.kind;
        this.#lastError = target.why;
        if (!this.#warned.has(target.leaf.fingerprint256)) {
          this.#warned.add(target.leaf.fingerprint256);
          d.logger.warn({ event: 'ocsp-stapling-unavailable', reason: target.kind, detail: target.why, subject: certificateDn(target.leaf), serial: target.leaf.serialNumber }, 'OCSP stapling is enabled but impossible for the server certificate; nothing is stapled');
        }
      }
      // Nothing to fetch until a reload changes the certificate (reconsider()).
      return;
    }
    this.#url = target.url;
    if (this.#staple === null && this.#status !== 'unavailable') this.#status = 'pending';
    const { result, error, staple } = await this.#fetch(target);
    if (this.#stopped || run !== this.#run) return;
    d.metrics?.ocspStapleRefreshed(result);
    this.#status = result;
    this.#lastError = error;
    const now = d.now();
    if (staple !== null) this.#staple = staple;
    else if (result !== 'unavailable') this.#staple = null; // revoked or unknown: stop stapling the old good answer
    const log = { event: 'ocsp-staple-refreshed', result, url: target.url, serial: target.leaf.serialNumber };
    if (result === 'good') d.logger.debug({ ...log, thisUpdate: new Date(staple!.thisUpdate).toISOString(), nextUpdate: staple!.nextUpdate?.toISOString() ?? null }, 'OCSP staple refreshed');
    else d.logger.warn({ ...log, reason: error, stapling: this.current(null, now) !== undefined }, result === 'unavailable' ? 'OCSP staple refresh failed; the answer in force (if any) is stapled until it expires' : `OCSP responder says the server certificate is ${result}; nothing is stapled`);
    this.#schedule(run, src.refreshMs, now, staple);
  }

  async #fetch(target: Extract<Target, { kind: 'ok' }>): Promise<{ result: StapleResult; error: string | null; staple: Staple | null }> {
    const d = this.#deps;
    try {
      const certId = certIdFor(target.leaf.raw, target.issuer);
      const res = await d.lookup({ url: target.url, request: encodeOcspRequest(certId, null), timeoutMs: LOOKUP_TIMEOUT_MS, maxBytes: MAX_RESPONSE_BYTES });
      if (!res.ok) return { result: 'unavailable', error: res.reason, staple: null };
      const now = d.now();
      const check = verifyOcspResponse(res.der, { certId, issuer: target.issuer, now, nonce: null });
      if (!check.ok) return { result: 'unavailable', error: `${check.failure}: ${check.reason}`, staple: null };
      const a = check.answer;
      if (a.status !== 'good') return { result: a.status, error: `the responder answered ${a.status}${a.reason ? ` (${a.reason})` : ''}`, staple: null };
      const thisUpdate = a.thisUpdate.getTime();
      const expiresAt = a.nextUpdate?.getTime() ?? now + NO_NEXT_UPDATE_TTL_MS;
      return { result: 'good', error: null, staple: { der: res.der, leafDer: target.leaf.raw, thisUpdate, expiresAt, nextUpdate: a.nextUpdate } };
    } catch (err) {
      return { result: 'unavailable', error: `fetch failed: ${(err as Error).message}`, staple: null };
    }
  }

  /**
   * Next fetch: `refresh`, or 3/4 into the new answer's window, or RETRY_MS after a failure;
   * whichever is first. A responder serving pre-signed answers can hand out one already past its
   * 3/4 point: then halfway to its expiry, but not sooner than RETRY_MS, so it is not asked in a loop.
   */
  #schedule(run: number, refreshMs: number, now: number, fresh: Staple | null): void {
    let delay = Math.min(refreshMs, RETRY_MS);
    if (fresh !== null) {
      const threeQuarters = fresh.thisUpdate + 0.75 * (fresh.expiresAt - fresh.thisUpdate) - now;
      delay = Math.min(refreshMs, threeQuarters >= RETRY_MS ? threeQuarters : Math.max(RETRY_MS, (fresh.expiresAt - now) / 2));
    }
    this.#clearTimer();
    this.#timer = setTimeout(() => {
      this.#timer = null;
      if (!this.#stopped && run === this.#run) void this.#refresh(run);
    }, Math.max(MIN_REFRESH_MS, Math.min(delay, MAX_TIMER_MS)));
    this.#timer.unref();
  }

  #clearTimer(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }
}
