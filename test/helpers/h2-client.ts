/**
 * HTTP/2 clients for the tests: node:http2 sessions with a chosen client certificate (or none), and
 * a raw frame writer/reader for what node:http2 refuses to send (malformed streams, floods). Every
 * connection is real TLS on loopback with ALPN h2.
 */
import http2, { type ClientHttp2Session, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2';
import tls, { type TLSSocket } from 'node:tls';
import type { Issued } from '../../src/pki/dev-pki.js';

export function h2connect(port: number, client: Issued | null, ca: string): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`https://localhost:${port}`, {
      ca,
      servername: 'localhost',
      ...(client ? { cert: client.chainPem, key: client.keyPem } : {}),
    });
    session.once('connect', () => {
      session.off('error', reject);
      // A session error after connecting belongs to the test that waits for it.
      session.on('error', () => undefined);
      resolve(session);
    });
    session.once('error', reject);
  });
}

export interface H2Response {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly trailers: IncomingHttpHeaders | null;
  readonly body: string;
  readonly json: unknown;
  /** The RST_STREAM code when the stream ended in a reset, else 0. */
  readonly rstCode: number;
}

export function h2request(
  session: ClientHttp2Session,
  opts: { method?: string; path?: string; headers?: OutgoingHttpHeaders; body?: string | Buffer; timeoutMs?: number } = {},
): Promise<H2Response> {
  return new Promise((resolve, reject) => {
    const method = opts.method ?? 'GET';
    // CONNECT has no :path (RFC 9113 8.5).
    const req = session.request({ ':method': method, ...(method === 'CONNECT' ? {} : { ':path': opts.path ?? '/' }), ...(opts.headers ?? {}) }, { endStream: opts.body === undefined });
    let status = 0;
    let headers: IncomingHttpHeaders = {};
    let trailers: IncomingHttpHeaders | null = null;
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => req.close(http2.constants.NGHTTP2_CANCEL), opts.timeoutMs ?? 20_000);
    req.on('response', (h) => {
      headers = h;
      status = Number(h[':status']);
    });
    req.on('trailers', (h) => (trailers = h));
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('error', () => undefined);
    req.on('close', () => {
      clearTimeout(timer);
      const body = Buffer.concat(chunks).toString('utf8');
      let json: unknown;
      try {
        json = JSON.parse(body);
      } catch {
        json = undefined;
      }
      if (status === 0 && req.rstCode === undefined) return reject(new Error('stream closed without a response'));
      resolve({ status, headers, trailers, body, json, rstCode: req.rstCode ?? 0 });
    });
    if (opts.body !== undefined) req.end(opts.body);
  });
}

/** Resolves with the GOAWAY error code the server sent, or null when the session closed without one. */
export function goawayOf(session: ClientHttp2Session, timeoutMs = 10_000): Promise<number | null> {
  return new Promise((resolve) => {
    let code: number | null = null;
    const timer = setTimeout(() => resolve(code), timeoutMs);
    session.once('goaway', (c: number) => (code = c));
    session.once('close', () => {
      clearTimeout(timer);
      resolve(code);
    });
    if (session.destroyed) {
      clearTimeout(timer);
      resolve(code);
    }
  });
}

// ---- raw frames ----

export const FRAME = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9 } as const;
export const FLAG = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4 } as const;

export function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([head, payload]);
}

/** An HPACK length-prefixed string without Huffman coding. */
function hpackString(s: string): Buffer {
  const bytes = Buffer.from(s, 'latin1');
  if (bytes.length < 127) return Buffer.concat([Buffer.from([bytes.length]), bytes]);
  const out = [0x7f];
  let rest = bytes.length - 127;
  while (rest >= 128) {
    out.push((rest & 0x7f) | 0x80);
    rest >>= 7;
  }
  out.push(rest);
  return Buffer.concat([Buffer.from(out), bytes]);
}

/** A header block of literal fields without indexing (new names): nothing depends on the table. */
export function hpack(fields: readonly (readonly [string, string])[]): Buffer {
  return Buffer.concat(fields.map(([n, v]) => Buffer.concat([Buffer.from([0x00]), hpackString(n), hpackString(v)])));
}

export interface RawFrame {
  readonly type: number;
  readonly flags: number;
  readonly streamId: number;
  readonly payload: Buffer;
}

export interface RawH2 {
  readonly socket: TLSSocket;
  readonly frames: RawFrame[];
  send(bytes: Buffer): boolean;
  /** Resolves once a frame matches (or the connection closed: then null). */
  waitFor(match: (f: RawFrame) => boolean, timeoutMs?: number): Promise<RawFrame | null>;
  closed: Promise<void>;
  close(): void;
}

/** A raw TLS connection speaking h2: the preface and an empty SETTINGS are sent; frames are parsed. */
export function rawH2(port: number, client: Issued | null, ca: string): Promise<RawH2> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca, ALPNProtocols: ['h2'], ...(client ? { cert: client.chainPem, key: client.keyPem } : {}) });
    const frames: RawFrame[] = [];
    const waiters: { match: (f: RawFrame) => boolean; resolve: (f: RawFrame | null) => void }[] = [];
    let buf = Buffer.alloc(0);
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 9) {
        const len = buf.readUIntBE(0, 3);
        if (buf.length < 9 + len) break;
        const f = { type: buf[3]!, flags: buf[4]!, streamId: buf.readUInt32BE(5) & 0x7fffffff, payload: buf.subarray(9, 9 + len) };
        buf = buf.subarray(9 + len);
        frames.push(f);
        if (f.type === FRAME.SETTINGS && (f.flags & FLAG.ACK) === 0) socket.write(frame(FRAME.SETTINGS, FLAG.ACK, 0));
        for (const w of [...waiters]) if (w.match(f)) (waiters.splice(waiters.indexOf(w), 1), w.resolve(f));
      }
    });
    socket.on('error', () => undefined);
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    void closed.then(() => {
      for (const w of waiters.splice(0)) w.resolve(null);
    });
    socket.once('secureConnect', () => {
      if (socket.alpnProtocol !== 'h2') return reject(new Error(`ALPN gave ${String(socket.alpnProtocol)}`));
      socket.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1'), frame(FRAME.SETTINGS, 0, 0)]));
      resolve({
        socket,
        frames,
        send: (b) => (socket.destroyed ? false : socket.write(b)),
        waitFor(match, timeoutMs = 10_000) {
          const found = frames.find(match);
          if (found) return Promise.resolve(found);
          if (socket.destroyed) return Promise.resolve(null);
          return new Promise((res) => {
            const w = { match, resolve: (f: RawFrame | null) => (clearTimeout(timer), res(f)) };
            const timer = setTimeout(() => (waiters.splice(waiters.indexOf(w), 1), res(null)), timeoutMs);
            waiters.push(w);
          });
        },
        closed,
        close: () => socket.destroy(),
      });
    });
    socket.once('error', reject);
  });
}

/** The error code of a RST_STREAM or GOAWAY frame. */
export function errorCodeOf(f: RawFrame): number {
  return f.type === FRAME.GOAWAY ? f.payload.readUInt32BE(4) : f.payload.readUInt32BE(0);
}
