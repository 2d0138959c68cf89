/**
 * Revocation: fetching one CRL over http(s) and keeping its last good copy on disk. Owns the
 * conditional GET (ETag / Last-Modified), the size and time limits, the translation of undici
 * failures into stable codes, and the atomic disk cache. It never parses or trusts what it
 * downloads: the owner parses and validates, and only then calls saveCache(), which is also the
 * only thing that moves the validators sent with the next conditional request.
 */

import { createHash, randomUUID } from 'node:crypto';
import { open, rename, stat, unlink } from 'node:fs/promises';
import { readRegularFile } from '../config/read-regular-file.js';
import path from 'node:path';
import { Agent, type Dispatcher } from 'undici';

export interface CrlHttpSourceOptions {
  /** http:// or https:// */
  readonly url: string;
  /** Budget for the whole fetch: connect, headers and body. */
  readonly timeoutMs: number;
  /** Bodies larger than this are refused (Content-Length up front, and counted while streaming). */
  readonly maxBytes: number;
  /** Last good copy on disk, plus `<cacheFile>.meta.json` with its validators; null: no disk cache. */
  readonly cacheFile: string | null;
  /** Injectable for tests; default: a private undici Agent, closed by close(). */
  readonly dispatcher?: Dispatcher;
  readonly now?: () => number;
}

export type CrlFetchFailureCode = 'CRL_FETCH_TIMEOUT' | 'CRL_FETCH_TOO_LARGE' | 'CRL_FETCH_HTTP_STATUS' | 'CRL_FETCH_NETWORK';

export type FetchOutcome =
  | { readonly kind: 'updated'; readonly bytes: Buffer; readonly etag: string | null; readonly lastModified: string | null }
  | { readonly kind: 'not-modified' }
  | { readonly kind: 'failed'; readonly code: CrlFetchFailureCode; readonly reason: string };

export interface CachedCrl {
  readonly bytes: Buffer;
  readonly etag: string | null;
  readonly lastModified: string | null;
  readonly fetchedAt: Date;
}

export interface CrlValidators {
  readonly etag: string | null;
  readonly lastModified: string | null;
}

export type CrlHttpSourceErrorCode = 'CRL_SOURCE_CONFIG' | 'CRL_SOURCE_CLOSED';

/** Misuse of the source itself (bad options, use after close); fetch problems are FetchOutcomes. */
export class CrlHttpSourceError extends Error {
  readonly code: CrlHttpSourceErrorCode;

  constructor(code: CrlHttpSourceErrorCode, message: string) {
    super(message);
    this.name = 'CrlHttpSourceError';
    this.code = code;
  }
}

/** Sidecar format; `sha256` ties the validators to the exact bytes they describe. */
interface CacheMeta {
  readonly version: 1;
  readonly url: string;
  readonly etag: string | null;
  readonly lastModified: string | null;
  readonly fetchedAt: string;
  readonly sha256: string;
}

const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT']);

function sha256Hex(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

function firstHeader(v: string | string[] | undefined): string | null {
  const s = Array.isArray(v) ? v[0] : v;
  return s === undefined || s === '' ? null : s;
}

function stringOrNull(v: unknown): string | null {
  return typeof v === 'string' && v !== '' ? v : null;
}

function describeError(err: unknown): string {
  const e = err as { code?: unknown; message?: unknown } | null;
  const code = typeof e?.code === 'string' ? e.code : null;
  const message = typeof e?.message === 'string' ? e.message : String(err);
  return code ? `${code}: ${message}` : message;
}

/**
 * Drops a response body we will not read. Destroying an unfinished undici body makes it emit
 * 'error' (RequestAbortedError); without a listener that would be an uncaught exception.
 */
function discard(body: Dispatcher.ResponseData['body']): void {
  body.on('error', () => undefined);
  body.destroy();
}

/** Writes via a temp file in the same directory and a rename, so readers see the old or the new file, never a torn one. */
async function writeFileAtomic(file: string, data: Buffer | string): Promise<void> {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${randomUUID()}.tmp`);
  let renamed = false;
  try {
    const fh = await open(tmp, 'wx', 0o644);
    try {
      await fh.writeFile(data);
      // Without the sync, a crash soon after the rename can leave an empty file under the final name.
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
    renamed = true;
  } finally {
    if (!renamed) await unlink(tmp).catch(() => undefined);
  }
}

export class CrlHttpSource {
  private readonly url: URL;
  private readonly timeoutMs: number;
  private readonly maxBytes: number;
  private readonly cacheFile: string | null;
  private readonly dispatcher: Dispatcher;
  private readonly ownAgent: Agent | null;
  private readonly now: () => number;
  /**
   * Sent as If-None-Match / If-Modified-Since. Moved only by saveCache() and by a cache whose
   * sidecar matches its bytes, never by fetch(): adopting the validators of a body nobody has
   * validated would let one bad (or truncated) response with an ETag answer "not modified" to
   * every later poll, so the good copy the server holds would never be downloaded again.
   */
  private validators: CrlValidators = { etag: null, lastModified: null };
  private closed = false;

  constructor(opts: CrlHttpSourceOptions) {
    let url: URL;
    try {
      url = new URL(opts.url);
    } catch {
      throw new CrlHttpSourceError('CRL_SOURCE_CONFIG', `CRL URL is not a valid URL: ${opts.url}`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new CrlHttpSourceError('CRL_SOURCE_CONFIG', `CRL URL must be http:// or https://, got ${url.protocol}`);
    }
    if (url.username !== '' || url.password !== '') {
      // They would end up in logs with every failure reason; a CRL is public data anyway.
      throw new CrlHttpSourceError('CRL_SOURCE_CONFIG', 'CRL URL must not carry credentials');
    }
    if (!(Number.isFinite(opts.timeoutMs) && opts.timeoutMs > 0)) throw new CrlHttpSourceError('CRL_SOURCE_CONFIG', 'timeoutMs must be a positive number');
    if (!(Number.isSafeInteger(opts.maxBytes) && opts.maxBytes > 0)) throw new CrlHttpSourceError('CRL_SOURCE_CONFIG', 'maxBytes must be a positive integer');
    this.url = url;
    this.timeoutMs = opts.timeoutMs;
    this.maxBytes = opts.maxBytes;
    this.cacheFile = opts.cacheFile;
    this.now = opts.now ?? Date.now;
    if (opts.dispatcher) {
      this.dispatcher = opts.dispatcher;
      this.ownAgent = null;
    } else {
      // Default TLS options on purpose: Node's trust store and full verification. CRLs are signed,
      // but a CRL server we cannot authenticate is still a server we should not talk to.
      this.ownAgent = new Agent({ connect: { timeout: opts.timeoutMs }, headersTimeout: opts.timeoutMs, bodyTimeout: opts.timeoutMs });
      this.dispatcher = this.ownAgent;
    }
  }

  private get metaFile(): string | null {
    return this.cacheFile === null ? null : `${this.cacheFile}.meta.json`;
  }

  /**
   * The last good copy, for startup before the first fetch, so a gateway that starts while the CRL
   * server is down still has a CRL. Null when there is no cache or it cannot be read. Validators
   * come back (and are adopted for the next fetch) only when the sidecar names this URL and its
   * hash matches the bytes; otherwise the bytes come back alone and the next fetch is unconditional.
   */
  async loadCache(): Promise<CachedCrl | null> {
    if (this.cacheFile === null || this.metaFile === null) return null;
    let bytes: Buffer;
    let mtime: Date;
    try {
      // Bounded like the download itself: a cache path pointing at a device or FIFO must not hang
      // or exhaust the gateway at startup.
      bytes = await readRegularFile(this.cacheFile, { key: `${this.url.href} cache`, maxBytes: this.maxBytes, code: 'GW_ERR_TLS_MATERIAL' });
      mtime = (await stat(this.cacheFile)).mtime;
    } catch {
      return null;
    }
    let meta: Partial<CacheMeta> | null = null;
    try {
      const parsed: unknown = JSON.parse((await readRegularFile(this.metaFile, { key: `${this.url.href} cache metadata`, maxBytes: 64 * 1024, code: 'GW_ERR_TLS_MATERIAL' })).toString('utf8'));
      if (parsed !== null && typeof parsed === 'object') meta = parsed as Partial<CacheMeta>;
    } catch {
      meta = null;
    }
    const matches = meta !== null && meta.version === 1 && meta.url === this.url.href && meta.sha256 === sha256Hex(bytes);
    if (!matches || meta === null) return { bytes, etag: null, lastModified: null, fetchedAt: mtime };
    const etag = stringOrNull(meta.etag);
    const lastModified = stringOrNull(meta.lastModified);
    const fetchedAt = typeof meta.fetchedAt === 'string' && !Number.isNaN(Date.parse(meta.fetchedAt)) ? new Date(meta.fetchedAt) : mtime;
    this.validators = { etag, lastModified };
    return { bytes, etag, lastModified, fetchedAt };
  }

  /**
   * One conditional GET. Never throws for fetch problems (they are 'failed' outcomes with a code);
   * follows no redirects, since a CRL URL that redirects is a configuration problem.
   */
  async fetch(): Promise<FetchOutcome> {
    if (this.closed) throw new CrlHttpSourceError('CRL_SOURCE_CLOSED', 'CrlHttpSource used after close()');
    const headers: Record<string, string> = { accept: 'application/pkix-crl, application/x-pkcs7-crl;q=0.9, */*;q=0.5' };
    const { etag, lastModified } = this.validators;
    if (etag !== null) headers['if-none-match'] = etag;
    if (lastModified !== null) headers['if-modified-since'] = lastModified;
    const conditional = etag !== null || lastModified !== null;

    const ac = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      ac.abort(new Error(`CRL fetch exceeded ${this.timeoutMs} ms`));
    }, this.timeoutMs);
    let body: Dispatcher.ResponseData['body'] | null = null;
    try {
      const res = await this.dispatcher.request({
        origin: this.url.origin,
        path: `${this.url.pathname}${this.url.search}`,
        method: 'GET',
        headers,
        signal: ac.signal,
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.timeoutMs,
      });
      body = res.body;
      const status = res.statusCode;
      if (status === 304) {
        await body.dump();
        if (!conditional) return { kind: 'failed', code: 'CRL_FETCH_HTTP_STATUS', reason: 'HTTP 304 to an unconditional request' };
        return { kind: 'not-modified' };
      }
      if (status !== 200) {
        discard(body);
        const location = firstHeader(res.headers['location']);
        const where = status >= 300 && status < 400 && location !== null ? ` redirecting to ${location} (redirects are not followed: configure the final URL)` : '';
        return { kind: 'failed', code: 'CRL_FETCH_HTTP_STATUS', reason: `HTTP ${status}${where}` };
      }
      const declared = firstHeader(res.headers['content-length']);
      if (declared !== null && Number(declared) > this.maxBytes) {
        discard(body);
        return { kind: 'failed', code: 'CRL_FETCH_TOO_LARGE', reason: `Content-Length ${declared} exceeds maxBytes ${this.maxBytes}` };
      }
      const chunks: Buffer[] = [];
      let total = 0;
      for await (const chunk of body as AsyncIterable<Buffer>) {
        total += chunk.length;
        if (total > this.maxBytes) {
          discard(body);
          return { kind: 'failed', code: 'CRL_FETCH_TOO_LARGE', reason: `body exceeds maxBytes ${this.maxBytes}` };
        }
        chunks.push(chunk);
      }
      return {
        kind: 'updated',
        bytes: Buffer.concat(chunks, total),
        etag: firstHeader(res.headers['etag']),
        lastModified: firstHeader(res.headers['last-modified']),
      };
    } catch (err) {
      if (body) discard(body);
      const code = (err as { code?: unknown } | null)?.code;
      if (timedOut || (typeof code === 'string' && TIMEOUT_CODES.has(code))) {
        return { kind: 'failed', code: 'CRL_FETCH_TIMEOUT', reason: `no complete response within ${this.timeoutMs} ms` };
      }
      return { kind: 'failed', code: 'CRL_FETCH_NETWORK', reason: describeError(err) };
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Records `bytes` as the last good copy. Call it only after the CRL parsed and validated: it is
   * what the next conditional request will claim to hold. The in-memory validators move even when
   * the disk write fails (the owner does hold this CRL); the write error is still reported.
   */
  async saveCache(bytes: Buffer, validators: CrlValidators): Promise<void> {
    this.validators = { etag: validators.etag, lastModified: validators.lastModified };
    if (this.cacheFile === null || this.metaFile === null) return;
    const meta: CacheMeta = {
      version: 1,
      url: this.url.href,
      etag: validators.etag,
      lastModified: validators.lastModified,
      fetchedAt: new Date(this.now()).toISOString(),
      sha256: sha256Hex(bytes),
    };
    // Bytes first, then the sidecar; a crash in between leaves a sidecar whose hash no longer
    // matches, which loadCache treats as "no validators" rather than trusting them.
    await writeFileAtomic(this.cacheFile, bytes);
    await writeFileAtomic(this.metaFile, `${JSON.stringify(meta, null, 2)}\n`);
  }

  /**
   * Closes the private Agent, aborting a fetch in flight (a hanging CRL server must not hold up a
   * stop or a reload); an injected dispatcher belongs to the caller and stays open.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.ownAgent) await this.ownAgent.destroy();
  }
}
