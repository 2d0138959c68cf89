/**
 * The gateway's own answers: every error the gateway itself produces goes out as
 * `{"error":{"code","message","requestId"}}` with the status fixed by the registry and helmet's
 * security headers. They are written on the raw response (or, for a request Node could not parse,
 * on the raw socket), never through a framework object, so an answer can be written from any
 * state: before any framework hook ran, on a connection without a certificate, after an upstream
 * failure. Causes, certificate details and stacks stay in the log.
 */
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { STATUS_CODES } from 'node:http';
import helmet from 'helmet';
import { ERRORS, type ErrorCode } from '../errors/registry.js';

export function errorBody(code: ErrorCode, requestId: string): string {
  return JSON.stringify({ error: { code, message: ERRORS[code].message, requestId } });
}

/**
 * helmet's headers, computed once by running its middleware against a recorder: helmet stays the
 * source of truth for what a secure response carries, and no request pays for the computation.
 */
function helmetHeaders(): readonly (readonly [string, string])[] {
  const headers: [string, string][] = [];
  const recorder = { setHeader: (name: string, value: string) => headers.push([name.toLowerCase(), String(value)]), removeHeader: () => undefined };
  helmet()({} as never, recorder as never, () => undefined);
  return headers;
}

const SECURITY_HEADERS = helmetHeaders();

export function statusOf(code: ErrorCode): number {
  return ERRORS[code].status ?? 500;
}

export interface RespondOptions {
  /** Ask the client to close, and close once the answer is written. */
  readonly close?: boolean;
  /** Extra headers (e.g. retry-after). */
  readonly headers?: Readonly<Record<string, string>>;
}

/**
 * Writes one error answer on a raw response. Returns the status written, or 0 when nothing could
 * be written (headers already sent, or the connection is gone: then the response is destroyed).
 */
export function respondError(res: ServerResponse, code: ErrorCode, requestId: string, opts: RespondOptions = {}): number {
  if (res.headersSent || res.destroyed || res.writableEnded) {
    res.destroy();
    return 0;
  }
  const status = statusOf(code);
  const body = errorBody(code, requestId);
  const headers: string[] = [];
  for (const [name, value] of SECURITY_HEADERS) headers.push(name, value);
  headers.push('content-type', 'application/json; charset=utf-8', 'content-length', String(Buffer.byteLength(body)), 'cache-control', 'no-store', 'x-request-id', requestId);
  if (opts.headers) for (const [name, value] of Object.entries(opts.headers)) headers.push(name, value);
  if (opts.close) {
    headers.push('connection', 'close');
    res.shouldKeepAlive = false;
  }
  res.writeHead(status, headers);
  res.end(res.req.method === 'HEAD' ? undefined : body);
  return status;
}

/**
 * The same answer written straight onto a socket, for a request Node's parser refused (no
 * ServerResponse exists then). The connection is always closed afterwards.
 */
export function respondErrorOnSocket(socket: Socket, code: ErrorCode, requestId: string): number {
  const status = statusOf(code);
  const body = errorBody(code, requestId);
  let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n`;
  for (const [name, value] of SECURITY_HEADERS) head += `${name}: ${value}\r\n`;
  head += `content-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\ncache-control: no-store\r\nx-request-id: ${requestId}\r\nconnection: close\r\n\r\n`;
  socket.end(head + body);
  return status;
}
