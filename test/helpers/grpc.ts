/**
 * gRPC over HTTP/2 for tests, without protobuf: messages are opaque bytes in gRPC's 5-byte-prefixed
 * frames (flag byte, 4-byte big-endian length). An echo service on a node:http2 server that
 * requires the gateway's client certificate, and a client call that reads headers, messages and
 * trailers the way a gRPC client does.
 */
import http2, { type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { Issued } from '../../src/pki/dev-pki.js';

export function frame(message: Buffer | string): Buffer {
  const body = Buffer.from(message);
  const head = Buffer.alloc(5);
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
}

/** Splits a byte stream into gRPC messages as it arrives. */
export class FrameReader {
  #buf = Buffer.alloc(0);
  push(chunk: Buffer): Buffer[] {
    this.#buf = Buffer.concat([this.#buf, chunk]);
    const out: Buffer[] = [];
    while (this.#buf.length >= 5) {
      const len = this.#buf.readUInt32BE(1);
      if (this.#buf.length < 5 + len) break;
      out.push(this.#buf.subarray(5, 5 + len));
      this.#buf = this.#buf.subarray(5 + len);
    }
    return out;
  }
}

export const BIG_MESSAGES = 64;
export const BIG_MESSAGE_BYTES = 64 * 1024;

/** A server-streaming response far larger than HTTP/2's flow-control windows, then trailers. */
async function bigResponse(stream: ServerHttp2Stream): Promise<void> {
  stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
  stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
  stream.resume();
  for (let i = 0; i < BIG_MESSAGES && !stream.destroyed; i++) {
    if (!stream.write(frame(Buffer.alloc(BIG_MESSAGE_BYTES, i)))) await new Promise((r) => stream.once('drain', r));
  }
  stream.end();
}

export interface GrpcUpstream {
  readonly port: number;
  /** Request headers of every call, in arrival order. */
  readonly seen: IncomingHttpHeaders[];
  close(): Promise<void>;
}

/**
 * `/echo.Echo/Unary` and `/echo.Echo/Bidi` echo every message as it arrives and end with
 * grpc-status 0; `/echo.Echo/Fail` answers one message and then grpc-status 9 with a
 * percent-encoded message; `/echo.Echo/Big` sends BIG_MESSAGES messages of BIG_MESSAGE_BYTES,
 * waiting for each write to drain, then grpc-status 0; `/echo.Echo/Hang` never answers. Anything
 * else is UNIMPLEMENTED.
 */
export async function startGrpcUpstream(opts: { server: Issued; ca: string }): Promise<GrpcUpstream> {
  const seen: IncomingHttpHeaders[] = [];
  const srv = http2.createSecureServer({ key: opts.server.keyPem, cert: opts.server.chainPem, ca: opts.ca, requestCert: true, rejectUnauthorized: true, ALPNProtocols: ['h2'] });
  const sessions = new Set<http2.ServerHttp2Session>();
  srv.on('session', (s) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
  });
  srv.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
    seen.push(headers);
    stream.on('error', () => undefined);
    const path = headers[':path'];
    if (path === '/echo.Echo/Hang') return;
    if (path === '/echo.Echo/Big') return void bigResponse(stream);
    if (path !== '/echo.Echo/Unary' && path !== '/echo.Echo/Bidi' && path !== '/echo.Echo/Fail') {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '12', 'grpc-message': 'unknown method' }, { endStream: true });
      return;
    }
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    const reader = new FrameReader();
    stream.on('data', (chunk: Buffer) => {
      for (const m of reader.push(chunk)) stream.write(frame(Buffer.concat([Buffer.from('echo:'), m])));
    });
    stream.on('wantTrailers', () => {
      stream.sendTrailers(path === '/echo.Echo/Fail' ? { 'grpc-status': '9', 'grpc-message': 'not%20ready: caf%C3%A9', 'x-detail': 'kept' } : { 'grpc-status': '0', 'grpc-message': '' });
    });
    stream.on('end', () => stream.end());
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  return {
    port: (srv.address() as AddressInfo).port,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sessions) s.destroy();
        srv.close(() => resolve());
      }),
  };
}

export function connectH2(port: number, client: Issued | null, ca: string): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`https://127.0.0.1:${port}`, { ca, servername: 'localhost', ...(client ? { cert: client.chainPem, key: client.keyPem } : {}) });
    session.once('connect', () => resolve(session));
    session.once('error', reject);
  });
}

export interface CallResult {
  headers: IncomingHttpHeaders;
  /** The response HEADERS frame ended the stream: a Trailers-Only answer. */
  trailersOnly: boolean;
  messages: string[];
  trailers: IncomingHttpHeaders | null;
  /** The stream was reset instead of ending (RST_STREAM code), or null. */
  rstCode: number | null;
}

/** Opens a gRPC call; `send` writes one message, `next` waits for the next one, `finish` half-closes and waits for the end. */
export function openCall(session: ClientHttp2Session, path: string, headers: Record<string, string> = {}) {
  const stream: ClientHttp2Stream = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', ...headers });
  const result: CallResult = { headers: {}, trailersOnly: false, messages: [], trailers: null, rstCode: null };
  const reader = new FrameReader();
  const waiting: ((m: string) => void)[] = [];
  const queued: string[] = [];
  stream.on('response', (h, flags) => {
    result.headers = h;
    result.trailersOnly = (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0;
  });
  stream.on('data', (chunk: Buffer) => {
    for (const m of reader.push(chunk)) {
      const s = m.toString();
      result.messages.push(s);
      const w = waiting.shift();
      if (w) w(s);
      else queued.push(s);
    }
  });
  stream.on('trailers', (t) => (result.trailers = t));
  const done = new Promise<CallResult>((resolve) => {
    stream.on('close', () => {
      if (stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR) result.rstCode = stream.rstCode ?? null;
      resolve(result);
    });
    stream.on('error', () => undefined);
  });
  return {
    stream,
    send: (message: string) => stream.write(frame(message)),
    next: () => new Promise<string>((resolve) => (queued.length > 0 ? resolve(queued.shift()!) : waiting.push(resolve))),
    finish: () => {
      stream.end();
      return done;
    },
    done,
  };
}

/** A unary call: one message, half-close, wait for the end. */
export function unary(session: ClientHttp2Session, path: string, message: string, headers: Record<string, string> = {}): Promise<CallResult> {
  const call = openCall(session, path, headers);
  call.send(message);
  return call.finish();
}
