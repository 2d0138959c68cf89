/**
 * Revocation: one OCSP exchange over HTTP (RFC 6960 appendix A), the only socket-owning part of
 * OCSP. POST of the DER request (GET, base64 in the path, for requests under 255 bytes as the RFC
 * allows and CDNs cache), one deadline for the whole exchange (connect to last byte), and a size
 * limit on the answer. It returns bytes or a failure reason; what the bytes say is decided by
 * ocsp-response.ts.
 */
import { Agent, type Dispatcher } from 'undici';

export type OcspLookupResult = { readonly ok: true; readonly der: Buffer } | { readonly ok: false; readonly reason: string };

export interface OcspLookupRequest {
  readonly url: string;
  readonly request: Buffer;
  readonly timeoutMs: number;
  readonly maxBytes: number;
}

/** One exchange; never throws. Injected into the stores so tests and benchmarks can count calls. */
export type OcspLookupFn = (req: OcspLookupRequest) => Promise<OcspLookupResult>;

/** What an OCSP URL must be before any byte is sent to it: http(s), no credentials, no oddities. */
export function ocspUrlProblem(text: string): string | null {
  if (text.length > 2048) return 'longer than 2048 characters';
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x20\x7f]/.test(text)) return 'contains a space or control character';
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return 'not a URL';
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return `scheme ${url.protocol} is not http: or https:`;
  if (url.username !== '' || url.password !== '') return 'carries credentials';
  return null;
}

/** RFC 6960 A.1: GET carries the request base64-encoded and then URL-encoded in the path. */
function getUrl(base: string, request: Buffer): string {
  const slash = base.endsWith('/') ? '' : '/';
  return `${base}${slash}${encodeURIComponent(request.toString('base64'))}`;
}

const GET_LIMIT = 255;

/**
 * The lookup the gateway uses: its own undici Agent (Node's trust store and full verification for
 * https responders; responses are signed, but a responder we cannot authenticate is still one we
 * should not talk to), no redirects, no retries: a failure is reported and the store decides.
 */
export function createOcspHttpLookup(dispatcher: Dispatcher = new Agent({ connections: 16, pipelining: 1 })): OcspLookupFn {
  return async ({ url, request, timeoutMs, maxBytes }) => {
    const problem = ocspUrlProblem(url);
    if (problem !== null) return { ok: false, reason: `OCSP URL refused: ${problem}` };
    const signal = AbortSignal.timeout(timeoutMs);
    const useGet = request.length < GET_LIMIT;
    try {
      const target = new URL(useGet ? getUrl(url, request) : url);
      const res = await dispatcher.request({
        origin: target.origin,
        path: target.pathname + target.search,
        method: useGet ? 'GET' : 'POST',
        headers: useGet ? { accept: 'application/ocsp-response' } : { 'content-type': 'application/ocsp-request', accept: 'application/ocsp-response' },
        ...(useGet ? {} : { body: request }),
        signal,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
      if (res.statusCode !== 200) {
        res.body.on('error', () => undefined);
        res.body.destroy();
        return { ok: false, reason: `responder answered HTTP ${res.statusCode}` };
      }
      const declared = Number(res.headers['content-length']);
      if (Number.isFinite(declared) && declared > maxBytes) {
        res.body.on('error', () => undefined);
        res.body.destroy();
        return { ok: false, reason: `response of ${declared} bytes is over the ${maxBytes}-byte limit` };
      }
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > maxBytes) {
          res.body.on('error', () => undefined);
          res.body.destroy();
          return { ok: false, reason: `response over the ${maxBytes}-byte limit` };
        }
        chunks.push(chunk);
      }
      return { ok: true, der: Buffer.concat(chunks, size) };
    } catch (err) {
      if (signal.aborted) return { ok: false, reason: `no answer within ${timeoutMs} ms` };
      const e = err as { code?: unknown; message?: unknown };
      return { ok: false, reason: `${typeof e.code === 'string' ? e.code + ': ' : ''}${typeof e.message === 'string' ? e.message : String(err)}` };
    }
  };
}
