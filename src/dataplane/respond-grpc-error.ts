/**
 * The gateway's own answers to gRPC calls. A gRPC client reads the call's outcome from
 * `grpc-status` and `grpc-message` only; the JSON body and HTTP status respondError writes would
 * reach it as UNKNOWN or UNAVAILABLE with the reason lost. So a request whose content-type is
 * gRPC's gets a Trailers-Only response (PROTOCOL-HTTP2.md): HTTP 200 and one HEADERS frame that
 * ends the stream and carries the status, with the code from src/errors/grpc-status.ts. An
 * HTTP/1.1 client gets the same headers and an empty body.
 *
 * gRPC-Web (application/grpc-web, application/grpc-web-text) is not treated as gRPC: it is a
 * browser protocol with its own framing and CORS needs that the gateway does not translate; its
 * requests pass through like any other HTTP request and get the JSON errors.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { GRPC_STATUS } from '../errors/grpc-status.js';
import { ERRORS, type ErrorCode } from '../errors/registry.js';

/** What both ServerResponse and Http2ServerResponse offer, which is all this writer needs. */
export interface GrpcErrorResponse {
  readonly req: { readonly headers: IncomingHttpHeaders; readonly httpVersionMajor: number };
  readonly headersSent: boolean;
  readonly destroyed: boolean;
  readonly writableEnded: boolean;
  setHeader(name: string, value: string): unknown;
  end(): unknown;
  destroy(): unknown;
}

export interface GrpcErrorOptions {
  /** HTTP/1.1 only: ask the client to close, and close once the answer is written. */
  readonly close?: boolean;
  /** Extra headers (e.g. retry-after). */
  readonly headers?: Readonly<Record<string, string>>;
}

/**
 * `application/grpc` alone, or followed by `+subtype` (application/grpc+proto, +json) or
 * parameters; case-insensitive as media types are. Not application/grpc-web (see above).
 */
export function isGrpcRequest(req: { readonly headers: IncomingHttpHeaders }): boolean {
  const ct = req.headers['content-type'];
  if (typeof ct !== 'string' || ct.length < 16 || ct.slice(0, 16).toLowerCase() !== 'application/grpc') return false;
  const next = ct.charCodeAt(16);
  // end, '+', ';', space or tab
  return Number.isNaN(next) || next === 0x2b || next === 0x3b || next === 0x20 || next === 0x09;
}

/**
 * grpc-message encoding (PROTOCOL-HTTP2.md): the UTF-8 bytes outside printable ASCII 0x20-0x7E,
 * and '%' itself, are written as %XX.
 */
export function encodeGrpcMessage(message: string): string {
  let out = '';
  for (const byte of Buffer.from(message, 'utf8')) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** Encoded once per code: the messages are fixed. */
const ENCODED_MESSAGE = new Map<ErrorCode, string>((Object.keys(ERRORS) as ErrorCode[]).map((code) => [code, encodeGrpcMessage(ERRORS[code].message)]));

/**
 * Writes a gateway error as a gRPC Trailers-Only answer. Returns the registry's HTTP status for
 * the code (what metrics and logs record, as for every other answer), or 0 when nothing could be
 * written (headers already sent, or the connection is gone: then the response is destroyed).
 *
 * The headers are set and `end()` is called without `writeHead`: on an Http2ServerResponse that
 * sends them in one HEADERS frame with END_STREAM, the Trailers-Only form a gRPC client needs
 * (a HEADERS frame without END_STREAM followed by an empty end would be read as a response whose
 * trailers never came).
 */
export function respondGrpcError(res: GrpcErrorResponse, code: ErrorCode, requestId: string, opts: GrpcErrorOptions = {}): number {
  if (res.headersSent || res.destroyed || res.writableEnded) {
    res.destroy();
    return 0;
  }
  res.setHeader('content-type', 'application/grpc');
  res.setHeader('grpc-status', String(GRPC_STATUS[code]));
  res.setHeader('grpc-message', ENCODED_MESSAGE.get(code)!);
  res.setHeader('x-request-id', requestId);
  if (opts.headers) for (const [name, value] of Object.entries(opts.headers)) res.setHeader(name, value);
  // HTTP/2 has no Connection header (the stream ends; the connection stays).
  if (opts.close && res.req.httpVersionMajor < 2) {
    res.setHeader('connection', 'close');
    (res as { shouldKeepAlive?: boolean }).shouldKeepAlive = false;
  }
  res.end();
  return ERRORS[code].status ?? 500;
}
