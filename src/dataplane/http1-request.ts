/**
 * The request adapters: what admit() and the proxy read of a Node request, HTTP/1.1
 * (IncomingMessage) or HTTP/2 (the compatibility API's Http2ServerRequest, which has the same
 * shape; its `rawHeaders` include the pseudo-headers).
 */
import type { IncomingMessage } from 'node:http';
import { Http2ServerRequest } from 'node:http2';
import type { RequestHead } from './admit.js';

/** Whether a request arrived on an HTTP/2 stream. */
export function isHttp2Request(req: IncomingMessage): boolean {
  return (req as unknown) instanceof Http2ServerRequest;
}

/** The transport-neutral head of a request. */
export function requestHead(req: IncomingMessage): RequestHead {
  if (isHttp2Request(req)) return http2Head(req);
  const rawHeaders = req.rawHeaders;
  return {
    protocol: 'http/1.1',
    method: req.method ?? 'GET',
    target: req.url ?? '',
    httpVersionMajor: req.httpVersionMajor,
    httpVersionMinor: req.httpVersionMinor,
    host: req.headers.host,
    hostCount: countHost(rawHeaders),
    expect: req.headers.expect,
    headerLines: rawHeaders.length >> 1,
  };
}

/**
 * An HTTP/2 stream's head. nghttp2 has already checked the pseudo-headers (RFC 9113 8.3: exactly
 * one each of :method, :scheme and :path, no unknown or repeated ones, none after a regular
 * header), resets a stream with an upper-case or connection-specific field, and drops any other
 * field whose name or value is not valid (NUL, CR, LF, spaces: RFC 9113 8.2.1), as nginx's
 * ignore_invalid_headers does, so none can reach an HTTP/1.1 upstream. The authority is `:authority`, or Host when that is absent; a request that carries both
 * must carry the same value in each (RFC 9113 8.3.1), else it counts as two Hosts and is refused.
 */
function http2Head(req: IncomingMessage): RequestHead {
  const rawHeaders = req.rawHeaders;
  let authority: string | undefined;
  let authorities = 0;
  let hostLines = 0;
  let host: string | undefined;
  let pseudo = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    if (name.charCodeAt(0) === 0x3a /* : */) {
      pseudo++;
      if (name === ':authority') {
        authorities++;
        authority = rawHeaders[i + 1]!;
      }
    } else if (name.length === 4 && name.toLowerCase() === 'host') {
      hostLines++;
      host = rawHeaders[i + 1]!;
    }
  }
  let hostCount = authorities + hostLines;
  if (authorities === 1 && hostLines === 1 && authority!.toLowerCase() === host!.toLowerCase()) hostCount = 1;
  return {
    protocol: 'h2',
    method: req.method ?? 'GET',
    target: req.url ?? '',
    httpVersionMajor: 2,
    httpVersionMinor: 0,
    host: authority ?? host,
    hostCount,
    expect: req.headers.expect,
    headerLines: (rawHeaders.length >> 1) - pseudo,
  };
}

/** The authority the client addressed: Host, or in HTTP/2 `:authority` (admit() checked they agree). */
export function requestAuthority(req: IncomingMessage): string | null {
  const headers = req.headers as IncomingMessage['headers'] & { ':authority'?: string };
  return headers.host ?? headers[':authority'] ?? null;
}

/** Host header lines in a request (a request with more than one is refused, RFC 9112 3.2). */
function countHost(rawHeaders: readonly string[]): number {
  let n = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    if (name.length === 4 && name.toLowerCase() === 'host') n++;
  }
  return n;
}

/**
 * Whether the request announced a body: chunked or a non-zero Content-Length in HTTP/1.1; in
 * HTTP/2, a HEADERS frame without END_STREAM (the body's length need not be announced).
 */
export function hasBody(req: IncomingMessage): boolean {
  if (isHttp2Request(req)) return !(req as unknown as Http2ServerRequest).stream.endAfterHeaders;
  const te = req.headers['transfer-encoding'];
  if (te !== undefined) return true;
  const cl = req.headers['content-length'];
  return cl !== undefined && cl !== '0';
}
