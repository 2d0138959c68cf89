/**
 * Revocation: one trust domain's CRLs (the inbound clients', or one upstream's), kept current.
 * Sources are read, every CRL is parsed and validated against the domain's CA certificates, and
 * the accepted ones become a new immutable RevocationIndex that replaces the old one in a single
 * assignment. A source that cannot be read, or a CRL that fails validation (bad signature,
 * unknown issuer, older than the one in force, ...), changes nothing: the last good CRL stays in
 * force and the refusal is logged. Files are polled (and watched) so Kubernetes secret updates
 * and replaced files are picked up; URLs are fetched again on their refresh interval; reload()
 * does everything at once (SIGHUP).
 */
import type { X509Certificate } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { unreadableReason } from '../config/read-regular-file.js';
import { GatewayError, isGatewayError } from '../errors/registry.js';
import type { ChainLink } from '../x509/chain-links.js';
import { certificateDn } from '../x509/dn.js';
import { CrlHttpSource } from './crl-http-source.js';
import { describeSource, pathSourceSignature, readPathSource, type CrlSourceSpec } from './crl-sources.js';
import type { ParsedCrl } from './parse-crl.js';
import { issuerKeyOf, RevocationIndex, type IndexedCrl } from './revocation-index.js';
import { checkChain, type RevocationSettings, type RevocationVerdict } from './revocation-policy.js';
import { isStale, validateCrl } from './verify-crl.js';

export type ParseCrlsFn = (bytes: Buffer) => Promise<ParsedCrl[]>;

export interface RevocationStoreOptions {
  /** Names the trust domain in logs: `clients` or `upstream orders`. */
  readonly domain: string;
  readonly sources: readonly CrlSourceSpec[];
  /** CA certificates that may sign the CRLs (the domain's trust bundle). */
  readonly trust: readonly X509Certificate[];
  readonly logger: Logger;
  readonly now: () => number;
  readonly parse: ParseCrlsFn;
  readonly warnBeforeMs: number;
  readonly pollIntervalMs: number;
  /** Called after every swap to a new index (generation changed). */
  readonly onChange?: (index: RevocationIndex) => void;
}

interface SourceState {
  readonly spec: CrlSourceSpec;
  /** CRLs this source contributes now (last good). */
  crls: IndexedCrl[];
  signature: string | null;
  http: CrlHttpSource | null;
  timer: NodeJS.Timeout | null;
}

function isOlder(a: ParsedCrl, b: ParsedCrl): boolean {
  if (a.crlNumber !== null && b.crlNumber !== null && a.crlNumber !== b.crlNumber) return a.crlNumber < b.crlNumber;
  return a.thisUpdate.getTime() < b.thisUpdate.getTime();
}

function crlLog(c: IndexedCrl, now: Date) {
  return {
    issuer: certificateDn(c.issuer),
    crlNumber: c.crl.crlNumber === null ? null : c.crl.crlNumber.toString(),
    thisUpdate: c.crl.thisUpdate.toISOString(),
    nextUpdate: c.crl.nextUpdate ? c.crl.nextUpdate.toISOString() : null,
    entries: c.crl.revokedCount,
    stale: isStale(c.crl, now),
    source: c.source,
  };
}

export class RevocationStore {
  readonly domain: string;
  #index = RevocationIndex.empty();
  readonly #opts: RevocationStoreOptions;
  readonly #sources: SourceState[];
  #pollTimer: NodeJS.Timeout | null = null;
  #freshnessTimer: NodeJS.Timeout | null = null;
  #watchers: FSWatcher[] = [];
  #reloading: Promise<void> | null = null;
  #reloadAgain = false;
  #warned = new Set<string>();
  #stopped = false;

  constructor(opts: RevocationStoreOptions) {
    this.#opts = opts;
    this.domain = opts.domain;
    this.#sources = opts.sources.map((spec) => ({
      spec,
      crls: [],
      signature: null,
      http:
        spec.kind === 'url'
          ? new CrlHttpSource({ url: spec.url, timeoutMs: spec.timeoutMs, maxBytes: spec.maxBytes, cacheFile: spec.cacheFile })
          : null,
      timer: null,
    }));
  }

  /** The index in force; replaced as a whole on every change. */
  get index(): RevocationIndex {
    return this.#index;
  }

  /** Generation of the index in force: a verdict cached under another generation is stale. */
  get generation(): number {
    return this.#index.generation;
  }

  /**
   * checkChain() against the index in force. This and `generation` are what identity's
   * ConnectionAuthenticator consults (its ChainRevocationSource), so identity needs no import of
   * revocation.
   */
  checkChain(links: readonly ChainLink[], settings: RevocationSettings, now: number): RevocationVerdict {
    return checkChain(this.#index, links, settings, now);
  }

  /** Revocation is enforced for this domain only when it has CRL sources. */
  get enabled(): boolean {
    return this.#sources.length > 0;
  }

  /**
   * First load, before anything listens. A file source that cannot be read, or whose CRLs are
   * refused, stops startup with an error naming its config key: a gateway must not come up with a
   * revocation set that silently lacks what its config names. URL sources fall back to their disk
   * cache and otherwise start empty (the `missing` policy then applies), with an error in the log.
   */
  async loadInitial(): Promise<void> {
    for (const s of this.#sources) {
      if (s.spec.kind === 'url') {
        await this.#loadUrlInitial(s);
        continue;
      }
      let read;
      try {
        read = await readPathSource(s.spec);
      } catch (err) {
        // The reader's refusals (not a regular file, too large) already name the key and the file.
        if (isGatewayError(err)) throw err;
        throw new GatewayError('GW_ERR_TLS_MATERIAL', {
          message: `${s.spec.key}: cannot read CRL source ${s.spec.path}: ${unreadableReason(err)}`,
          cause: err,
        });
      }
      const refusals: string[] = [];
      const accepted = await this.#acceptFiles(s, read.files, refusals);
      if (refusals.length > 0) {
        throw new GatewayError('GW_ERR_TLS_MATERIAL', { message: `${s.spec.key}: CRL refused: ${refusals.join('; ')}` });
      }
      if (read.files.length === 0) this.#opts.logger.warn({ event: 'crl-source-empty', domain: this.domain, source: s.spec.path, key: s.spec.key }, 'CRL directory holds no CRL files');
      s.crls = accepted;
      s.signature = read.signature;
    }
    this.#swap('startup');
  }

  /** Starts polling, file watches, URL refreshes and freshness warnings. */
  start(): void {
    if (!this.enabled) return;
    const pollable = this.#sources.filter((s) => s.spec.kind !== 'url');
    if (pollable.length > 0) {
      this.#pollTimer = setInterval(() => void this.#poll(), this.#opts.pollIntervalMs);
      this.#pollTimer.unref();
      const dirs = new Set(pollable.map((s) => (s.spec.kind === 'dir' ? (s.spec as { path: string }).path : path.dirname((s.spec as { path: string }).path))));
      for (const dir of dirs) {
        try {
          // A watch only shortens the delay; polling stays the mechanism of record, since watches
          // miss events on some filesystems and across symlink swaps.
          const w = watch(dir, { persistent: false }, () => this.#debouncedPoll());
          w.on('error', () => undefined);
          this.#watchers.push(w);
        } catch {
          /* polling covers it */
        }
      }
    }
    for (const s of this.#sources) {
      if (s.spec.kind !== 'url') continue;
      const spec = s.spec;
      s.timer = setInterval(() => void this.#refreshUrl(s), spec.refreshMs);
      s.timer.unref();
    }
    this.#checkFreshness();
    this.#freshnessTimer = setInterval(() => this.#checkFreshness(), 60_000);
    this.#freshnessTimer.unref();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#pollTimer) clearInterval(this.#pollTimer);
    if (this.#freshnessTimer) clearInterval(this.#freshnessTimer);
    if (this.#debounce) clearTimeout(this.#debounce);
    for (const w of this.#watchers) w.close();
    for (const s of this.#sources) {
      if (s.timer) clearInterval(s.timer);
      await s.http?.close();
    }
    await this.#reloading;
  }

  /** Re-reads every source now (SIGHUP). Concurrent calls coalesce into one more pass. */
  reload(reason: string): Promise<void> {
    if (this.#reloading) {
      this.#reloadAgain = true;
      return this.#reloading;
    }
    this.#reloading = (async () => {
      try {
        do {
          this.#reloadAgain = false;
          for (const s of this.#sources) {
            if (s.spec.kind === 'url') await this.#refreshUrl(s, false);
            else await this.#reloadPath(s, true);
          }
          this.#swap(reason);
        } while (this.#reloadAgain && !this.#stopped);
      } finally {
        this.#reloading = null;
      }
    })();
    return this.#reloading;
  }

  describe() {
    return this.#index.describe(new Date(this.#opts.now()));
  }

  #debounce: NodeJS.Timeout | null = null;
  #debouncedPoll(): void {
    if (this.#debounce || this.#stopped) return;
    this.#debounce = setTimeout(() => {
      this.#debounce = null;
      void this.#poll();
    }, 150);
    this.#debounce.unref();
  }

  async #poll(): Promise<void> {
    if (this.#reloading || this.#stopped) return;
    let changed = false;
    for (const s of this.#sources) {
      if (s.spec.kind === 'url') continue;
      let sig: string | null;
      try {
        sig = await pathSourceSignature(s.spec);
      } catch {
        sig = null;
      }
      if (sig !== s.signature) changed = true;
    }
    if (changed) await this.reload('file-change');
  }

  /** Reads one path source and updates its CRLs; returns whether anything was accepted. */
  async #reloadPath(s: SourceState, force: boolean): Promise<void> {
    const spec = s.spec as Exclude<CrlSourceSpec, { kind: 'url' }>;
    let read;
    try {
      read = await readPathSource(spec);
    } catch (err) {
      // `file` differs from `source` when one file of a directory was refused (a FIFO, say).
      const file = isGatewayError(err) && typeof err.detail?.['file'] === 'string' ? err.detail['file'] : spec.path;
      this.#opts.logger.error(
        { event: 'crl-refused', domain: this.domain, key: spec.key, source: spec.path, file, code: 'CRL_SOURCE_UNREADABLE', reason: unreadableReason(err) },
        'CRL source unreadable; the last good CRLs stay in force',
      );
      return;
    }
    if (!force && read.signature === s.signature) return;
    const refusals: string[] = [];
    const accepted = await this.#acceptFiles(s, read.files, refusals);
    s.crls = this.#mergeKeepingLastGood(s.crls, accepted, refusals.length > 0);
    s.signature = read.signature;
  }

  /**
   * CRLs a source now contributes: everything accepted, plus, for issuers whose new CRL was
   * refused, the last good one. A source that simply no longer lists an issuer drops it.
   */
  #mergeKeepingLastGood(previous: IndexedCrl[], accepted: IndexedCrl[], hadRefusals: boolean): IndexedCrl[] {
    if (!hadRefusals) return accepted;
    const have = new Set(accepted.map((c) => issuerKeyOf(c.issuer)));
    return [...accepted, ...previous.filter((c) => !have.has(issuerKeyOf(c.issuer)))];
  }

  async #acceptFiles(s: SourceState, files: ReadonlyArray<{ file: string; bytes: Buffer }>, refusals: string[]): Promise<IndexedCrl[]> {
    const accepted: IndexedCrl[] = [];
    for (const f of files) {
      let parsed: ParsedCrl[];
      try {
        parsed = await this.#opts.parse(f.bytes);
      } catch (err) {
        const reason = (err as Error).message;
        refusals.push(`${f.file}: ${reason}`);
        this.#opts.logger.error({ event: 'crl-refused', domain: this.domain, key: s.spec.key, source: f.file, code: 'CRL_MALFORMED', reason }, 'CRL refused; the last good CRL stays in force');
        continue;
      }
      for (const crl of parsed) {
        const ok = this.#validate(crl, f.file, s.spec.key);
        if (typeof ok === 'string') refusals.push(`${f.file}: ${ok}`);
        else accepted.push(ok);
      }
    }
    return accepted;
  }

  /** Validates one CRL against the trust and the CRL in force for the same issuer. */
  #validate(crl: ParsedCrl, source: string, key: string): IndexedCrl | string {
    const now = new Date(this.#opts.now());
    const v = validateCrl(crl, { issuers: this.#opts.trust, now });
    let code: string | null = null;
    let reason = '';
    let issuer: X509Certificate | null = null;
    if (!v.ok) {
      code = v.code;
      reason = v.reason;
    } else {
      issuer = v.issuer;
      const current = this.#index.get(issuer)?.crl;
      if (current && isOlder(crl, current)) {
        code = 'CRL_OLDER_THAN_CURRENT';
        reason = `CRL number ${crl.crlNumber ?? '-'} / thisUpdate ${crl.thisUpdate.toISOString()} is older than the one in force (number ${current.crlNumber ?? '-'}, thisUpdate ${current.thisUpdate.toISOString()})`;
      }
    }
    if (code !== null || issuer === null) {
      this.#opts.logger.error({ event: 'crl-refused', domain: this.domain, key, source, code, reason }, 'CRL refused; the last good CRL stays in force');
      return `${code}: ${reason}`;
    }
    return { crl, issuer, source };
  }

  async #loadUrlInitial(s: SourceState): Promise<void> {
    const http = s.http!;
    const cached = await http.loadCache();
    if (cached) {
      const refusals: string[] = [];
      s.crls = await this.#acceptFiles(s, [{ file: `${describeSource(s.spec)} (disk cache)`, bytes: cached.bytes }], refusals);
    }
    await this.#refreshUrl(s, false);
    if (s.crls.length === 0) {
      this.#opts.logger.error({ event: 'crl-source-unavailable', domain: this.domain, key: s.spec.key, source: describeSource(s.spec) }, 'no CRL from this URL yet and no disk cache; the missing policy applies');
    }
  }

  /** One conditional fetch; a new, valid CRL replaces this source's CRLs and is cached on disk. */
  async #refreshUrl(s: SourceState, swap = true): Promise<void> {
    const http = s.http!;
    const url = describeSource(s.spec);
    const out = await http.fetch();
    if (out.kind === 'not-modified') return;
    if (out.kind === 'failed') {
      this.#opts.logger.warn({ event: 'crl-fetch-failed', domain: this.domain, key: s.spec.key, source: url, code: out.code, reason: out.reason }, 'CRL fetch failed; the last good CRL stays in force');
      return;
    }
    const refusals: string[] = [];
    const accepted = await this.#acceptFiles(s, [{ file: url, bytes: out.bytes }], refusals);
    if (accepted.length > 0 && refusals.length === 0) {
      s.crls = accepted;
      const cacheFile = (s.spec as Extract<CrlSourceSpec, { kind: 'url' }>).cacheFile;
      if (cacheFile !== null) await mkdir(path.dirname(cacheFile), { recursive: true }).catch(() => undefined);
      await http.saveCache(out.bytes, { etag: out.etag, lastModified: out.lastModified }).catch((err: unknown) => {
        this.#opts.logger.warn({ event: 'crl-cache-write-failed', domain: this.domain, source: url, reason: String(err) }, 'could not write the CRL disk cache');
      });
    } else {
      s.crls = this.#mergeKeepingLastGood(s.crls, accepted, true);
    }
    if (swap) this.#swap('url-refresh');
  }

  /** Builds the next index from every source's current CRLs; swaps only when something changed. */
  #swap(reason: string): void {
    const all = this.#sources.flatMap((s) => s.crls);
    const fingerprint = (list: readonly { crl: ParsedCrl; source: string }[]) =>
      list.map((c) => `${c.crl.issuerKey}:${c.crl.crlNumber ?? ''}:${c.crl.thisUpdate.getTime()}:${c.crl.revokedCount}:${c.source}`).sort().join('|');
    const next = this.#index.replace(all);
    const before = this.#index.describe();
    if (this.#index.generation > 0 && fingerprint(all) === this.#lastFingerprint) return;
    this.#lastFingerprint = fingerprint(all);
    this.#index = next;
    const now = new Date(this.#opts.now());
    for (const s of this.#sources) {
      for (const c of s.crls) this.#opts.logger.info({ event: 'crl-loaded', domain: this.domain, reason, ...crlLog(c, now) }, 'CRL in force');
    }
    this.#opts.logger.info({ event: 'revocation-index-swapped', domain: this.domain, reason, generation: next.generation, crls: next.size, before: before.length }, 'revocation index updated');
    this.#warned.clear();
    this.#checkFreshness();
    this.#opts.onChange?.(next);
  }
  #lastFingerprint = '';

  /** Warns ahead of nextUpdate and, loudly, after it. */
  #checkFreshness(): void {
    const now = this.#opts.now();
    for (const info of this.#index.describe(new Date(now))) {
      if (info.nextUpdate === null) continue;
      const next = Date.parse(info.nextUpdate);
      const state = now > next ? 'stale' : next - now <= this.#opts.warnBeforeMs ? 'expiring' : null;
      if (state === null) continue;
      const key = `${info.issuerKey}:${info.crlNumber}:${state}`;
      if (this.#warned.has(key)) continue;
      this.#warned.add(key);
      this.#opts.logger.warn(
        { event: state === 'stale' ? 'crl-stale' : 'crl-expiring', domain: this.domain, issuer: info.issuer, crlNumber: info.crlNumber, nextUpdate: info.nextUpdate, source: info.source },
        state === 'stale' ? 'CRL is past its nextUpdate; the stale policy now decides' : 'CRL reaches its nextUpdate soon; publish a new one',
      );
    }
  }
}
