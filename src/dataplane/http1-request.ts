/**
 * The HTTP/1 adapter: what admit() and the proxy read of a Node IncomingMessage.
 */
import type { IncomingMessage } from 'node:http';
import type { RequestHead } from './admit.js';

/** The transport-neutral head of an HTTP/1 request. */
export function requestHead(req: IncomingMessage): RequestHead {
  const rawHeaders = req.rawHeaders;
  return {
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

/** Host header lines in a request (a request with more than one is refused, RFC 9112 3.2). */
function countHost(rawHeaders: readonly string[]): number {
  let n = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    if (name.length === 4 && name.toLowerCase() === 'host') n++;
  }
  return n;
}

/** Whether the request announced a body (chunked, or a non-zero Content-Length). */
export function hasBody(req: IncomingMessage): boolean {
  const te = req.headers['transfer-encoding'];
  if (te !== undefined) return true;
  const cl = req.headers['content-length'];
  return cl !== undefined && cl !== '0';
}
