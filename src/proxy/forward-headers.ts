/**
 * Header rewriting on both legs. Hop-by-hop headers never cross the gateway, and the headers that
 * carry identity or client address upstream are always the gateway's own: whatever the client sent
 * under those names is removed before the gateway's values are added.
 */
import { undiciCodedError } from './upstream-errors.js';

/** Request headers the client may never pass upstream (lower-case, "_" read as "-"). */
const DROP_ON_REQUEST: ReadonlySet<string> = new Set([
  // hop-by-hop, and what the gateway sets itself
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
  'expect',
  'http2-settings',
  'forwarded',
  'x-request-id',
  // client address headers other proxies set: an upstream may trust any of them
  'x-real-ip',
  'true-client-ip',
  'x-client-ip',
  'x-cluster-client-ip',
  'x-original-forwarded-for',
  // client-certificate headers of RFC 9440 and of other proxies: only the gateway vouches for identity
  'client-cert',
  'client-cert-chain',
  'ssl-client-cert',
  'x-client-cert',
  'x-client-certificate',
  'x-client-verify',
  'x-client-dn',
  'x-ssl-cert',
  'x-arr-clientcert',
  'x-amzn-mtls-clientcert',
  'x-amzn-mtls-clientcert-leaf',
  'x-amzn-mtls-clientcert-chain',
]);

/**
 * Name prefixes dropped whole: every X-Forwarded-* (the gateway sets its own For, Proto, Host and
 * Client-Cert; any other, such as oauth2-proxy's X-Forwarded-User/-Email/-Groups or Traefik's
 * X-Forwarded-Tls-Client-Cert, would claim something only a proxy may say), and the client-
 * certificate headers of nginx and HAProxy recipes.
 */
const DROP_PREFIXES = ['x-forwarded-', 'x-ssl-client-', 'x-client-cert-'];

/**
 * The form a header name is compared in: lower-case with "_" read as "-", because CGI-style stacks
 * (PHP, WSGI, many frameworks) merge `X_Forwarded_For` with `X-Forwarded-For`.
 */
export function canonicalHeaderName(name: string): string {
  const lower = name.toLowerCase();
  return lower.indexOf('_') < 0 ? lower : lower.replaceAll('_', '-');
}

/** Decides which client request headers are removed before forwarding. Built once per config. */
export class RequestHeaderFilter {
  readonly #extra: ReadonlySet<string>;

  /** `extra`: `server.stripRequestHeaders`, on top of the built-in list. */
  constructor(extra: readonly string[] = []) {
    this.#extra = new Set(extra.map(canonicalHeaderName));
  }

  drops(canonical: string): boolean {
    // HTTP/2 pseudo-headers (:method, :path, :authority, :scheme) are the request line, not headers.
    if (canonical.charCodeAt(0) === 0x3a) return true;
    if (DROP_ON_REQUEST.has(canonical) || this.#extra.has(canonical)) return true;
    for (const p of DROP_PREFIXES) if (canonical.startsWith(p)) return true;
    return false;
  }
}

const DEFAULT_FILTER = new RequestHeaderFilter();

const DROP_ON_RESPONSE = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

export interface ForwardContext {
  readonly filter?: RequestHeaderFilter;
  readonly clientAddress: string;
  readonly originalHost: string | null;
  readonly requestId: string;
  /** x-forwarded-client-cert, or null when the route does not send it. */
  readonly xfcc: string | null;
  /** RFC 9440 Client-Cert, when the route sends it. */
  readonly clientCert?: string | null;
  /** RFC 9440 Client-Cert-Chain, when the route sends it and the chain has an intermediate. */
  readonly clientCertChain?: string | null;
}

/** Names listed in a Connection header are hop-by-hop too (RFC 9110 7.6.1). */
function connectionTokens(rawHeaders: readonly string[]): Set<string> | null {
  let tokens: Set<string> | null = null;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.length === 10 && rawHeaders[i]!.toLowerCase() === 'connection') {
      for (const t of rawHeaders[i + 1]!.split(',')) {
        const name = canonicalHeaderName(t.trim());
        if (name) (tokens ??= new Set()).add(name);
      }
    }
  }
  return tokens;
}

/** Builds the flat [name, value, ...] header list for the upstream request. */
export function buildUpstreamRequestHeaders(rawHeaders: readonly string[], ctx: ForwardContext): string[] {
  const extra = connectionTokens(rawHeaders);
  const filter = ctx.filter ?? DEFAULT_FILTER;
  // The gateway's own headers go first: an upstream that keeps only its first N header lines
  // (Node's server drops lines past maxHeadersCount silently) must still see the identity the
  // gateway vouches for, however many headers the client sent. Whether or not the gateway sends
  // an identity header, the client's copies of it are dropped below (DROP_ON_REQUEST).
  const out: string[] = [];
  if (ctx.xfcc !== null) out.push('x-forwarded-client-cert', ctx.xfcc);
  if (ctx.clientCert != null) out.push('client-cert', ctx.clientCert);
  if (ctx.clientCertChain != null) out.push('client-cert-chain', ctx.clientCertChain);
  out.push('x-request-id', ctx.requestId, 'x-forwarded-for', ctx.clientAddress, 'x-forwarded-proto', 'https');
  if (ctx.originalHost !== null) out.push('x-forwarded-host', ctx.originalHost);
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    const canonical = canonicalHeaderName(name);
    if (filter.drops(canonical) || (extra !== null && extra.has(canonical))) continue;
    out.push(name, rawHeaders[i + 1]!);
  }
  return out;
}

/** DROPPED_LENGTH[n]: some name dropped from responses (or x-request-id, replaced) is n long. */
const DROPPED_LENGTH: readonly boolean[] = (() => {
  const lengths: boolean[] = [];
  for (const name of [...DROP_ON_RESPONSE, 'x-request-id']) lengths[name.length] = true;
  return lengths;
})();

const KEEP_ALIVE = Buffer.from('keep-alive');

/**
 * A Connection value of exactly `keep-alive`, in any case: it names only Keep-Alive, which is
 * dropped anyway. (`close` is not short-cut: RFC 9110 7.6.1 drops a field named Close with it.)
 */
function isKeepAliveOnly(value: Buffer | string): boolean {
  if (value.length !== KEEP_ALIVE.length) return false;
  for (let i = 0; i < value.length; i++) {
    const c = typeof value === 'string' ? value.charCodeAt(i) : value[i]!;
    const p = KEEP_ALIVE[i]!;
    // Exactly the letter, or its upper case; every other byte as it is.
    if (c !== p && !(p >= 0x61 && p <= 0x7a && c === p - 0x20)) return false;
  }
  return true;
}

/** A raw header name or value as a string: undici hands Buffers, the gateway's own client latin1 strings. */
function latin1(v: Buffer | string): string {
  return typeof v === 'string' ? v : v.toString('latin1');
}

/**
 * The answer's Content-Length is beyond 2^53 - 1: llhttp takes up to 2^64 - 1, but no client can
 * hold that as a number (node:http's and undici's refuse such an answer), so relayed, it reaches
 * the client as a broken answer. Both HTTP/1.1 relays refuse the answer with this error instead,
 * before its head is written: 502 GW_ERR_UPSTREAM_PROTOCOL (found by the upstream fuzzer,
 * FUZZ_SEED=8080; test/integration/malformed-upstream-response-is-502-protocol). Null otherwise.
 */
export function unreadableContentLength(rawHeaders: readonly (Buffer | string)[]): Error | null {
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const value = rawHeaders[i + 1]!;
    if (value.length > 15 && rawHeaders[i]!.length === 14 && latin1(rawHeaders[i]!).toLowerCase() === 'content-length' && Number(latin1(value).trim()) > Number.MAX_SAFE_INTEGER) {
      return undiciCodedError('the upstream answered a Content-Length beyond 2^53 - 1', 'HPE_INVALID_CONTENT_LENGTH');
    }
  }
  return null;
}

/** Builds the client response header list from the upstream client's raw headers (Buffers or latin1 strings). */
export function buildClientResponseHeaders(rawHeaders: readonly (Buffer | string)[], requestId: string): string[] {
  let extra: Set<string> | null = null;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.length === 10 && latin1(rawHeaders[i]!).toLowerCase() === 'connection') {
      const value = rawHeaders[i + 1]!;
      // What nearly every keep-alive response says, and it names nothing that is not dropped anyway.
      if (isKeepAliveOnly(value)) continue;
      for (const t of latin1(value).split(',')) {
        const name = t.trim().toLowerCase();
        if (name) (extra ??= new Set()).add(name);
      }
    }
  }
  const out: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = latin1(rawHeaders[i]!);
    // Lower-cased only when its length is one of the dropped names' (Date, Server, Content-Length...
    // are not): most responses then allocate no lower-case copy at all.
    if (extra !== null || DROPPED_LENGTH[name.length] === true) {
      const lower = name.toLowerCase();
      if (DROP_ON_RESPONSE.has(lower) || lower === 'x-request-id' || (extra !== null && extra.has(lower))) continue;
    }
    out.push(name, latin1(rawHeaders[i + 1]!));
  }
  out.push('x-request-id', requestId);
  return out;
}
