/**
 * The gateway's own answers: every error the gateway itself produces goes out as
 * `{"error":{"code","message","requestId"}}` with the status fixed by the registry and helmet's
 * security headers. They are written on the raw response (or, for a request Node could not parse,
 * on the raw socket), never through a framework object, so an answer can be written from any
 * state: before any framework hook ran, on a connection without a certificate, after an upstream
 * failure. Causes, certificate details and stacks stay in the log.
 */
import type { ServerResponse } from 'node:http';
import { constants, Http2ServerResponse, type ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import { STATUS_CODES } from 'node:http';
import helmet from 'helmet';
import { ERRORS, type ErrorCode } from '../errors/registry.js';
import { responseGone } from '../proxy/client-response.js';
import { isGrpcRequest, respondGrpcError } from './respond-grpc-error.js';

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
  /**
   * Ask the client to close, and close once the answer is written (HTTP/1.1). In HTTP/2 framing
   * is never in doubt and a refused body is stopped by resetting its stream alone, so there it
   * means GOAWAY only when the connection itself is no longer trusted (a 401) or the gateway stops.
   */
  readonly close?: boolean;
  /** Extra headers (e.g. retry-after). */
  readonly headers?: Readonly<Record<string, string>>;
}

/** An HTTP/2 response, seen through node:http2's compatibility API. */
type Http2Response = ServerResponse & { readonly stream: ServerHttp2Stream };

function http2StreamOf(res: ServerResponse): ServerHttp2Stream | null {
  return (res as unknown) instanceof Http2ServerResponse ? (res as Http2Response).stream : null;
}


/**
 * Writes one error answer on a raw response. Returns the status written, or 0 when nothing could
 * be written (headers already sent, or the connection is gone: then the response is destroyed).
 */
export function respondError(res: ServerResponse, code: ErrorCode, requestId: string, opts: RespondOptions = {}): number {
  if (res.headersSent || responseGone(res) || res.writableEnded) {
    res.destroy();
    return 0;
  }
  const stream = http2StreamOf(res);
  if (isGrpcRequest(res.req)) {
    const status = respondGrpcError(res, code, requestId, opts);
    if (stream !== null) afterHttp2Answer(res, stream, opts.close === true && (status === 401 || code === 'GW_ERR_SHUTTING_DOWN'));
    return status;
  }
  const status = statusOf(code);
  const body = errorBody(code, requestId);
  const headers: string[] = [];
  for (const [name, value] of SECURITY_HEADERS) headers.push(name, value);
  headers.push('content-type', 'application/json; charset=utf-8', 'content-length', String(Buffer.byteLength(body)), 'cache-control', 'no-store', 'x-request-id', requestId);
  if (opts.headers) for (const [name, value] of Object.entries(opts.headers)) headers.push(name, value);
  if (stream !== null) {
    res.writeHead(status, headers);
    res.end(res.req.method === 'HEAD' ? undefined : body);
    afterHttp2Answer(res, stream, opts.close === true && (status === 401 || code === 'GW_ERR_SHUTTING_DOWN'));
    return status;
  }
  if (opts.close) {
    headers.push('connection', 'close');
    res.shouldKeepAlive = false;
  }
  res.writeHead(status, headers);
  res.end(res.req.method === 'HEAD' ? undefined : body);
  return status;
}

/**
 * After an HTTP/2 answer: a request body the gateway will not read is stopped with RST_STREAM
 * NO_ERROR (RFC 9113 8.1), and an untrusted connection gets GOAWAY once its streams are done.
 */
function afterHttp2Answer(res: ServerResponse, stream: ServerHttp2Stream, closeSession: boolean): void {
  // A closed stream lets go of its session: hold it now.
  const session = stream.session;
  if (!stream.endAfterHeaders && !stream.readableEnded) res.once('finish', () => stream.destroyed || stream.close(constants.NGHTTP2_NO_ERROR));
  if (closeSession && session !== undefined) res.once('close', () => session.destroyed || session.closed || session.close());
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
  // Closed once the answer is flushed: a client that keeps its half open cannot hold the connection.
  socket.destroySoon();
  return status;
}
