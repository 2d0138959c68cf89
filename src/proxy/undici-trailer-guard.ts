/**
 * Closes an undici HTTP/1.1 connection whose answer ended with a trailer section that ends or
 * frames a connection, before undici pools it for another request.
 *
 * undici 7 decides from the response head whether a connection carries another request. Its
 * llhttp also reads the trailer section, and a trailer such as `Connection: close` or
 * `Transfer-Encoding: gzip` turns llhttp's own verdict: from then on it refuses every byte on that
 * connection ("Data after `Connection: close`"). undici pools the connection all the same, and the
 * next request sent on it, another client's, fails with 502 GW_ERR_UPSTREAM_PROTOCOL although its
 * answer arrived whole (found by the upstream fuzzer; test/security/upstream-answer-cannot-poison-
 * the-next-request-on-a-pooled-connection). A dispatch handler cannot reach the connection, so this
 * goes through undici's own diagnostics channels, its supported hook for instrumentation:
 * `undici:client:sendHeaders` says on which socket a request was written, and
 * `undici:request:trailers` runs as its answer completes, before undici decides to keep the
 * connection. A trailer section naming a field that frames or manages the connection (prohibited
 * in trailers, RFC 9110 6.5.1) closes the socket there; the answer itself was already relayed.
 * The gateway's own HTTP/1.1 client asks llhttp instead (llhttp-response-parser.ts).
 *
 * Process-wide, installed once by the first undici pool the gateway makes (upstream-target.ts).
 */
import dc from 'node:diagnostics_channel';

/** Trailer names after which the connection is not reused (lower-case). */
const ENDS_CONNECTION = new Set(['connection', 'transfer-encoding', 'content-length', 'keep-alive', 'upgrade', 'proxy-connection', 'te', 'trailer']);

interface Closable {
  destroy(): void;
}

/** The socket each request in flight was written on (dropped with the request). */
const socketOf = new WeakMap<object, Closable>();
let installed = false;

export function installUndiciTrailerGuard(): void {
  if (installed) return;
  installed = true;
  dc.subscribe('undici:client:sendHeaders', onSendHeaders);
  dc.subscribe('undici:request:trailers', onTrailers);
}

function onSendHeaders(message: unknown): void {
  const { request, socket } = message as { request?: unknown; socket?: unknown };
  if (typeof request === 'object' && request !== null && typeof (socket as Closable | undefined)?.destroy === 'function') socketOf.set(request, socket as Closable);
}

function onTrailers(message: unknown): void {
  const { request, trailers } = message as { request?: unknown; trailers?: unknown };
  if (!Array.isArray(trailers) || trailers.length === 0 || typeof request !== 'object' || request === null) return;
  for (let i = 0; i < trailers.length; i += 2) {
    const name = trailers[i] as unknown;
    const text = Buffer.isBuffer(name) ? name.toString('latin1') : typeof name === 'string' ? name : '';
    if (ENDS_CONNECTION.has(text.toLowerCase())) {
      socketOf.get(request)?.destroy();
      socketOf.delete(request);
      return;
    }
  }
}
