/**
 * Raw HTTP/1.1 over real TLS, for tests that must control every byte a client sends: the request
 * line, the target, each header (duplicates, odd spellings, bare LF, NUL) and the framing. It
 * writes the given bytes on a fresh `tls.connect` socket (the run's CA as `ca`, so the gateway's
 * certificate is verified), then parses what comes back into zero or more HTTP/1.1 responses,
 * and says how the exchange ended: the peer closed, the client stopped after the responses it
 * expected, or nothing more came before the timeout.
 */
import tls from 'node:tls';

export interface RawHeader {
  readonly name: string;
  readonly value: string;
}

export interface RawResponse {
  /** e.g. "HTTP/1.1" */
  readonly version: string;
  readonly status: number;
  readonly reason: string;
  /** Headers in wire order, names as sent. */
  readonly headers: readonly RawHeader[];
  readonly body: Buffer;
  /** 1xx responses other than 101 are interim: a final response follows on the same exchange. */
  readonly interim: boolean;
  /** The response answers a HEAD request, so it has no body whatever its headers say. */
  readonly forHead: boolean;
  /** All values of one header (name compared case-insensitively). */
  header(name: string): string[];
}

export type RawEnding =
  /** The peer closed the connection (TLS close_notify, FIN or reset). */
  | 'closed'
  /** The client stopped after receiving the number of final responses it was told to wait for. */
  | 'complete'
  /** Nothing ended the exchange before the timeout; the client destroyed the socket. */
  | 'timeout'
  /** The TLS handshake itself failed (the server refused the connection before any HTTP). */
  | 'tls-error';

export interface RawExchange {
  readonly responses: RawResponse[];
  readonly ending: RawEnding;
  /** Bytes received that are not part of a complete, well-formed response. */
  readonly leftover: Buffer;
  /** Why the bytes received did not parse as HTTP/1.1 responses, if they did not. */
  readonly parseError: string | null;
  /** Socket error message, if any (a reset after the responses is not unusual). */
  readonly socketError: string | null;
  /** Everything received, for failure messages. */
  readonly raw: Buffer;
  readonly ms: number;
}

export interface RawClientCredentials {
  /** PEM chain (leaf first) and key; omit both to send no certificate. */
  readonly cert?: string;
  readonly key?: string;
}

export interface RawExchangeOptions extends RawClientCredentials {
  readonly port: number;
  /** Trust for the gateway's certificate (the run's root). */
  readonly ca: string;
  readonly servername?: string;
  /** What to send: written in one piece, or in the given pieces with `pieceDelayMs` between them. */
  readonly payload: string | Buffer | ReadonlyArray<string | Buffer>;
  readonly pieceDelayMs?: number;
  /**
   * Methods of the requests sent, in order, so that responses to HEAD are parsed without a body.
   * Optional; by default every response is assumed to answer a request that is not HEAD.
   */
  readonly requestMethods?: readonly string[];
  /** Stop after this many final responses (then wait `graceMs` for anything more). Default: wait for close. */
  readonly expectResponses?: number;
  /** After the expected responses, how long to keep listening for unexpected extra bytes. */
  readonly graceMs?: number;
  /** Overall limit for the exchange (handshake included). */
  readonly timeoutMs?: number;
  /** Half-close after the last piece (a client that gives up mid-body, or sends a body and leaves). */
  readonly endAfterWrite?: boolean;
}

/** `b` cut at the given offsets (any order, repeats and out-of-range ones ignored): the pieces, none empty. */
export function cutAt(b: Buffer, offsets: readonly number[]): Buffer[] {
  const points = [...new Set(offsets)].filter((p) => p > 0 && p < b.length).sort((x, y) => x - y);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(b.subarray(prev, p));
    prev = p;
  }
  if (prev < b.length) out.push(b.subarray(prev));
  return out;
}

/** Strings are sent as latin1, so "\u00ff" is the single byte 0xff and any byte can be written. */
export function toBytes(s: string | Buffer): Buffer {
  return typeof s === 'string' ? Buffer.from(s, 'latin1') : s;
}

class ResponseParser {
  readonly responses: RawResponse[] = [];
  #buf: Buffer = Buffer.alloc(0);
  #error: string | null = null;
  #methods: readonly string[];
  #finalCount = 0;

  constructor(methods: readonly string[]) {
    this.#methods = methods;
  }

  get error(): string | null {
    return this.#error;
  }

  get leftover(): Buffer {
    return this.#buf;
  }

  get finalCount(): number {
    return this.#finalCount;
  }

  push(chunk: Buffer): void {
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    this.#drain(false);
  }

  /** The connection ended: a response delimited by close may now be complete. */
  end(): void {
    this.#drain(true);
  }

  #drain(atEnd: boolean): void {
    while (this.#error === null && this.#buf.length > 0) {
      const r = this.#parseOne(atEnd);
      if (r === null) return;
      this.responses.push(r.response);
      if (!r.response.interim) this.#finalCount++;
      this.#buf = this.#buf.subarray(r.consumed);
    }
  }

  #fail(msg: string): null {
    this.#error = msg;
    return null;
  }

  /** Parses one response from the start of the buffer, or returns null when more bytes are needed. */
  #parseOne(atEnd: boolean): { response: RawResponse; consumed: number } | null {
    const buf = this.#buf;
    const headEnd = buf.indexOf('\r\n\r\n');
    if (headEnd < 0) {
      if (buf.length > 65_536) return this.#fail('response head over 64 KiB');
      // A peer that is not speaking HTTP is reported as soon as the first line shows it.
      const firstLine = buf.indexOf('\r\n');
      const start = buf.subarray(0, Math.min(buf.length, 9)).toString('latin1');
      if (!'HTTP/1.1 '.startsWith(start) && !'HTTP/1.0 '.startsWith(start)) return this.#fail(`not an HTTP/1.x status line: ${JSON.stringify(buf.subarray(0, 80).toString('latin1'))}`);
      if (atEnd) return this.#fail(`connection closed inside a response head (${firstLine < 0 ? 'no status line' : 'headers unterminated'})`);
      return null;
    }
    const head = buf.subarray(0, headEnd).toString('latin1');
    const lines = head.split('\r\n');
    const statusLine = lines[0] ?? '';
    const m = /^(HTTP\/1\.[01]) (\d{3}) ?(.*)$/.exec(statusLine);
    if (!m) return this.#fail(`bad status line: ${JSON.stringify(statusLine.slice(0, 120))}`);
    const headers: RawHeader[] = [];
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      if (colon <= 0 || /[\s]/.test(line.slice(0, colon))) return this.#fail(`bad header line: ${JSON.stringify(line.slice(0, 120))}`);
      if (/[\r\n\0]/.test(line)) return this.#fail(`control character in header line: ${JSON.stringify(line.slice(0, 120))}`);
      headers.push({ name: line.slice(0, colon), value: line.slice(colon + 1).trim() });
    }
    const status = Number(m[2]);
    const values = (name: string) => headers.filter((h) => h.name.toLowerCase() === name).map((h) => h.value);
    const interim = status >= 100 && status < 200 && status !== 101;
    const bodyStart = headEnd + 4;
    const method = this.#methods[this.#finalCount]?.toUpperCase();
    const make = (body: Buffer, consumed: number) => ({
      response: {
        version: m[1]!,
        status,
        reason: m[3] ?? '',
        headers,
        body,
        interim,
        forHead: method === 'HEAD',
        header: (name: string) => values(name.toLowerCase()),
      },
      consumed,
    });
    if (interim || status === 204 || status === 304 || method === 'HEAD') return make(Buffer.alloc(0), bodyStart);
    const te = values('transfer-encoding');
    const cl = values('content-length');
    if (te.length > 0) {
      if (cl.length > 0) return this.#fail('response carries both Transfer-Encoding and Content-Length');
      if (te.join(',').trim().toLowerCase() !== 'chunked') return this.#fail(`unexpected response Transfer-Encoding: ${te.join(',')}`);
      return this.#parseChunked(bodyStart, atEnd, make);
    }
    if (cl.length > 0) {
      if (cl.length > 1 || !/^\d{1,15}$/.test(cl[0]!)) return this.#fail(`bad response Content-Length: ${cl.join(',')}`);
      const n = Number(cl[0]);
      if (buf.length - bodyStart < n) return atEnd ? this.#fail(`connection closed inside a body (${buf.length - bodyStart} of ${n} bytes)`) : null;
      return make(Buffer.from(buf.subarray(bodyStart, bodyStart + n)), bodyStart + n);
    }
    // Delimited by close.
    if (!atEnd) return null;
    return make(Buffer.from(buf.subarray(bodyStart)), buf.length);
  }

  #parseChunked(
    start: number,
    atEnd: boolean,
    make: (body: Buffer, consumed: number) => { response: RawResponse; consumed: number },
  ): { response: RawResponse; consumed: number } | null {
    const buf = this.#buf;
    const parts: Buffer[] = [];
    let at = start;
    for (;;) {
      const eol = buf.indexOf('\r\n', at);
      if (eol < 0) return atEnd ? this.#fail('connection closed inside a chunked body') : null;
      const sizeText = buf.subarray(at, eol).toString('latin1').split(';')[0]!.trim();
      if (!/^[0-9a-fA-F]{1,8}$/.test(sizeText)) return this.#fail(`bad chunk size: ${JSON.stringify(sizeText)}`);
      const size = parseInt(sizeText, 16);
      at = eol + 2;
      if (size === 0) {
        // Trailers (none expected), then the final CRLF.
        for (;;) {
          const e = buf.indexOf('\r\n', at);
          if (e < 0) return atEnd ? this.#fail('connection closed inside chunked trailers') : null;
          const line = buf.subarray(at, e);
          at = e + 2;
          if (line.length === 0) return make(Buffer.concat(parts), at);
        }
      }
      if (buf.length < at + size + 2) return atEnd ? this.#fail('connection closed inside a chunk') : null;
      parts.push(Buffer.from(buf.subarray(at, at + size)));
      if (buf[at + size] !== 0x0d || buf[at + size + 1] !== 0x0a) return this.#fail('chunk not followed by CRLF');
      at += size + 2;
    }
  }
}

/**
 * Parses received bytes again as responses to the given request methods (e.g. after a HEAD request
 * that the server refused before reading its method, and answered with a body).
 */
export function parseResponses(bytes: Buffer, requestMethods: readonly string[]): { responses: RawResponse[]; error: string | null; leftover: Buffer } {
  const p = new ResponseParser(requestMethods);
  p.push(Buffer.from(bytes));
  p.end();
  return { responses: p.responses, error: p.error, leftover: Buffer.from(p.leftover) };
}

/** Sends raw bytes on one fresh mTLS (or certificate-less) connection and reports what came back. */
export function rawTlsExchange(opts: RawExchangeOptions): Promise<RawExchange> {
  const started = Date.now();
  const timeoutMs = opts.timeoutMs ?? 2_000;
  const graceMs = opts.graceMs ?? 30;
  const pieces = (Array.isArray(opts.payload) ? opts.payload : [opts.payload]).map((p) => toBytes(p as string | Buffer));
  const parser = new ResponseParser(opts.requestMethods ?? []);
  const received: Buffer[] = [];
  return new Promise((resolve) => {
    let settled = false;
    let handshakeDone = false;
    let socketError: string | null = null;
    let graceTimer: NodeJS.Timeout | null = null;
    const sock = tls.connect({
      host: '127.0.0.1',
      port: opts.port,
      servername: opts.servername ?? 'localhost',
      ca: opts.ca,
      ...(opts.cert !== undefined && opts.key !== undefined ? { cert: opts.cert, key: opts.key } : {}),
    });
    const finish = (ending: RawEnding) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (graceTimer) clearTimeout(graceTimer);
      if (ending === 'closed' || ending === 'timeout') parser.end();
      sock.destroy();
      resolve({
        responses: parser.responses,
        ending: !handshakeDone && ending === 'closed' && received.length === 0 && socketError !== null ? 'tls-error' : ending,
        leftover: Buffer.from(parser.leftover),
        parseError: parser.error,
        socketError,
        raw: Buffer.concat(received),
        ms: Date.now() - started,
      });
    };
    const timer = setTimeout(() => finish('timeout'), timeoutMs);
    sock.once('secureConnect', () => {
      handshakeDone = true;
      void (async () => {
        for (let i = 0; i < pieces.length; i++) {
          if (settled || sock.destroyed) return;
          if (i > 0 && (opts.pieceDelayMs ?? 0) > 0) await new Promise((r) => setTimeout(r, opts.pieceDelayMs));
          if (settled || sock.destroyed) return;
          sock.write(pieces[i]!);
        }
        if (opts.endAfterWrite === true && !settled && !sock.destroyed) sock.end();
      })();
    });
    sock.on('data', (c: Buffer) => {
      received.push(c);
      parser.push(c);
      if (parser.error !== null) {
        // Unparseable: keep collecting until close or timeout, so the report shows everything.
        return;
      }
      if (opts.expectResponses !== undefined && parser.finalCount >= opts.expectResponses && graceTimer === null) {
        graceTimer = setTimeout(() => finish('complete'), graceMs);
      }
    });
    sock.on('error', (e: NodeJS.ErrnoException) => {
      socketError = e.code ?? e.message;
    });
    sock.on('close', () => finish('closed'));
  });
}

/** A short printable form of bytes for test messages. */
export function show(bytes: string | Buffer, max = 160): string {
  const s = typeof bytes === 'string' ? bytes : bytes.toString('latin1');
  const j = JSON.stringify(s.length > max ? s.slice(0, max) + `…(+${s.length - max})` : s);
  return j;
}
