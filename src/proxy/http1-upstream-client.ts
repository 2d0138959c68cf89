/**
 * The gateway's own HTTP/1.1 client (sockets, timers) for one target of a `protocol: http1`
 * upstream, used in place of undici's Pool when `server.engine` is `lean`: a pool of keep-alive
 * mTLS connections opened by the target's connector (resuming-target-connect.ts: the same TLS
 * settings, identity check, revocation and OCSP verdicts, and session cache as the Pool's), one
 * request at a time on each, responses read by llhttp (llhttp-response-parser.ts). Seen by the
 * rest of the gateway as an undici Dispatcher, as the HTTP/2 client is: forwardRequest dispatches
 * on it with the raw-header handler of forward-request.ts, health checks call its `request`.
 *
 * Why: undici's Client machinery costs about a fifth of the node floor's CPU per keep-alive
 * request on top of the parse and the socket I/O (bench/README.md, "The lean floor, measured
 * again"); this client does what the gateway needs of it and no more. What it keeps of undici's
 * behaviour, so that the rest of the gateway (error codes, retries, ForwardError.sent) sees no
 * difference:
 *  - the error codes of undici's errors (UND_ERR_SOCKET, UND_ERR_HEADERS_TIMEOUT,
 *    UND_ERR_BODY_TIMEOUT, UND_ERR_CLOSED, UND_ERR_HEADERS_OVERFLOW, HPE_* parse errors...), which
 *    upstream-errors.ts maps to gateway codes;
 *  - onConnect just before the request's first byte is written (nothing sent before it);
 *  - the request checks undici makes: method a token, path without controls or spaces, header
 *    names tokens and values without CR, LF or NUL, and no hop-by-hop or Expect header (the
 *    gateway removes them before it dispatches; a request that still has one is refused here);
 *  - framing: Content-Length as given (a body that does not match it fails the request), chunked
 *    when a streamed body has none, `content-length: 0` for a POST, PUT or PATCH without a body;
 *    a streamed body's head written with its first bytes (or its end), in one write, and a body
 *    with a Content-Length of at most HELD_BODY_BYTES held with it to the end of that event-loop
 *    turn (or to the body's end), so that what one read brought goes up in one write
 *    (relay-buffer.ts);
 *  - timeouts: the response head within headersTimeout of the request being written, each body
 *    chunk within bodyTimeout of the last (not counted while the relay is paused for a slow
 *    client), idle connections closed after keepAlive (shortened by an upstream's
 *    `Keep-Alive: timeout=N`, less a 2 s margin, as undici does).
 * A connection is reused only after a complete response to a completely sent request, when both
 * sides keep it alive (llhttp's verdict once the trailers are read too), and not before the end of
 * that turn of the event loop, the upstream having sent nothing more meanwhile; anything else
 * closes it. Interim (1xx)
 * answers are dropped (101 is a protocol error: nothing here asks to switch protocols).
 * One thing undici does not do: an idempotent request without a body that a kept-alive connection
 * closed under before any byte of its answer (the keep-alive race) is sent once more on a new
 * connection (Connection#failOrReplay), and a connection closed without an answer says in its error
 * whether it was new or reused and how long it had idled.
 */
import type { TLSSocket } from 'node:tls';
import { Dispatcher } from 'undici';
import { TargetConnector } from './resuming-target-connect.js';
import { ConnectionDeadline } from './connection-deadline.js';
import { HELD_BODY_BYTES, headWithBody, ONE_WRITE_BYTES, RELAY_BUFFER_BYTES } from './relay-buffer.js';
import { loadResponseParser, ResponseParser, type ParseResult, type ResponseEvents } from './llhttp-response-parser.js';
import { undiciCodedError } from './upstream-errors.js';
import type { TargetPoolSettings } from './upstream-target.js';

/** Largest response head: undici's default (Node's http.maxHeaderSize). */
const MAX_RESPONSE_HEAD_BYTES = 16 * 1024;
/** Taken off an upstream's Keep-Alive: timeout=N hint (undici's keepAliveTimeoutThreshold). */
const KEEP_ALIVE_HINT_MARGIN_MS = 2_000;

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const INVALID_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
const INVALID_PATH = /[^\u0021-\u00ff]/;
/** Header names the client frames itself or that would change the connection: refused in a request. */
const REFUSED = new Set(['transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'expect', 'te', 'proxy-connection']);
const EXPECTS_BODY = new Set(['POST', 'PUT', 'PATCH', 'QUERY']);
/** RFC 9110 9.2.2: what may be sent again after a connection closed under it (see Connection#failOrReplay). */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);
const LAST_CHUNK = '0\r\n\r\n';

type Body = NodeJS.ReadableStream & { readableEnded?: boolean };

const NAME_PLAIN = 0;
const NAME_HOST = 1;
const NAME_CONTENT_LENGTH = 2;
const NAME_REFUSED = 3;
const NAME_INVALID = 4;
/**
 * What a header name is, remembered: a gateway sends the same few dozen names on every request,
 * so each is checked (a token, and which of the names that matter here) once. Bounded: names a
 * client invents beyond it are checked every time.
 */
const nameKinds = new Map<string, number>();
const NAME_KINDS_MAX = 1024;

function nameKind(name: string): number {
  let kind = nameKinds.get(name);
  if (kind !== undefined) return kind;
  if (!TOKEN.test(name)) return NAME_INVALID;
  const lower = name.toLowerCase();
  kind = REFUSED.has(lower) ? NAME_REFUSED : lower === 'host' ? NAME_HOST : lower === 'content-length' ? NAME_CONTENT_LENGTH : NAME_PLAIN;
  if (nameKinds.size < NAME_KINDS_MAX) nameKinds.set(name, kind);
  return kind;
}

/** The request head as written, or the reason the request is refused. */
function requestHead(opts: Dispatcher.DispatchOptions, authority: string): { head: string; length: number | null; chunked: boolean } | Error {
  const method = opts.method;
  if (typeof method !== 'string' || !TOKEN.test(method)) return undiciCodedError('invalid request method', 'UND_ERR_INVALID_ARG');
  const path = opts.path;
  if (typeof path !== 'string' || (path[0] !== '/' && path !== '*') || INVALID_PATH.test(path)) return undiciCodedError('invalid request path', 'UND_ERR_INVALID_ARG');
  if (opts.upgrade) return undiciCodedError('upgrades are not sent on pooled connections', 'UND_ERR_NOT_SUPPORTED');
  const given = opts.headers;
  const list: readonly string[] = Array.isArray(given) ? (given as string[]) : given == null ? [] : Object.entries(given as Record<string, string | string[]>).flatMap(([k, v]) => (Array.isArray(v) ? v.flatMap((x) => [k, x]) : [k, String(v)]));
  let lines = '';
  let host = false;
  let length: number | null = null;
  for (let i = 0; i + 1 < list.length; i += 2) {
    const name = list[i]!;
    const value = list[i + 1]!;
    if (typeof name !== 'string' || typeof value !== 'string' || INVALID_VALUE.test(value)) return undiciCodedError(`invalid request header ${JSON.stringify(String(name))}`, 'UND_ERR_INVALID_ARG');
    const kind = nameKind(name);
    if (kind === NAME_INVALID) return undiciCodedError(`invalid request header name ${JSON.stringify(name)}`, 'UND_ERR_INVALID_ARG');
    if (kind === NAME_REFUSED) return undiciCodedError(`request header ${name} is not sent by the client`, 'UND_ERR_INVALID_ARG');
    if (kind === NAME_HOST) host = true;
    else if (kind === NAME_CONTENT_LENGTH) {
      if (length !== null || !/^\d{1,15}$/.test(value)) return undiciCodedError('invalid content-length', 'UND_ERR_INVALID_ARG');
      length = Number(value);
    }
    lines += `${name}: ${value}\r\n`;
  }
  const body = opts.body as Body | Buffer | string | null | undefined;
  let chunked = false;
  if (body == null) {
    if (length === null && EXPECTS_BODY.has(method)) lines += 'content-length: 0\r\n';
  } else if (typeof body === 'string' || Buffer.isBuffer(body)) {
    const n = Buffer.byteLength(body);
    if (length !== null && length !== n) return undiciCodedError('request body does not match its content-length', 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH');
    if (length === null) lines += `content-length: ${n}\r\n`;
    length = n;
  } else if (length === null) {
    chunked = true;
    lines += 'transfer-encoding: chunked\r\n';
  }
  return { head: `${method} ${path} HTTP/1.1\r\n${host ? '' : `host: ${authority}\r\n`}${lines}\r\n`, length, chunked };
}

/** Keep-Alive: timeout=N of a response, in ms, or null. */
function keepAliveHint(headers: readonly string[]): number | null {
  for (let i = 0; i + 1 < headers.length; i += 2) {
    if (headers[i]!.length !== 10 || headers[i]!.toLowerCase() !== 'keep-alive') continue;
    const m = /(?:^|[,;\s])timeout\s*=\s*(\d{1,9})/i.exec(headers[i + 1]!);
    if (m) return Number(m[1]) * 1000;
  }
  return null;
}

export class Http1UpstreamClient extends Dispatcher {
  readonly #url: URL;
  readonly #settings: TargetPoolSettings;
  readonly #connector: TargetConnector;
  /** Every connection, open or opening. */
  readonly #connections = new Set<Connection>();
  /** Idle keep-alive connections, the most recently used last (taken first: the others may time out). */
  readonly #idle: Connection[] = [];
  /** Requests waiting for a connection, in order. */
  #queue: Exchange[] = [];
  /**
   * Connections whose answer completed in this turn of the event loop: they carry no request
   * before its check phase (#settled). An upstream that writes more after its answer (a second
   * response: a desync attempt, or a bug that answers twice) has it read in the same turn as a
   * rule, often from the same socket read, since TLS hands each record over as its own chunk. On
   * a connection that waits here those bytes are bytes nobody asked for, which close it; handed to
   * a waiting request at once, they were taken for that request's answer, another client's
   * (test/security/response-written-after-an-answer-is-not-taken-for-the-next-request). undici
   * waits a turn before it reuses a connection for the same reason.
   */
  readonly #settling: Connection[] = [];
  #settleScheduled = false;
  /** Connections serving an exchange now. */
  #busy = 0;
  /** Requests sent again on a new connection after a kept-alive one closed under them (see Connection#failOrReplay). */
  #replayed = 0;
  #closed = false;
  #closing: { promise: Promise<void>; resolve: () => void } | null = null;

  constructor(origin: string, settings: TargetPoolSettings) {
    super();
    this.#url = new URL(origin);
    this.#settings = settings;
    this.#connector = settings.connector ?? new TargetConnector(settings);
    loadResponseParser();
  }

  get settings(): TargetPoolSettings {
    return this.#settings;
  }

  /** Closed or destroyed: takes no more requests (as undici's Pool#closed). */
  get closed(): boolean {
    return this.#closed;
  }

  /** Connections open or opening, idle ones among them, and requests waiting (tests, status). */
  get stats(): { readonly connections: number; readonly idle: number; readonly queued: number; readonly replayed: number } {
    return { connections: this.#connections.size, idle: this.#idle.length + this.#settling.length, queued: this.#queue.length, replayed: this.#replayed };
  }

  override dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    if (this.#closed) {
      handler.onError?.(undiciCodedError('the upstream client is closed', 'UND_ERR_CLOSED'));
      return false;
    }
    const head = requestHead(opts, this.#url.host);
    if (head instanceof Error) {
      handler.onError?.(head);
      return false;
    }
    const x = new Exchange(this, opts, handler, head.head, head.length, head.chunked);
    const idle = this.#takeIdle();
    if (idle !== undefined) this.#start(idle, x);
    // A connection that answered in this turn serves one waiting request at the turn's end, rather
    // than a new connection now; requests beyond those open connections as before.
    else if (this.#connections.size < this.#settings.connections && this.#queue.length >= this.#settling.length) this.#connect(x);
    else this.#queue.push(x);
    return true;
  }

  /** The most recently used idle connection that can still carry a request (one that cannot is closed). */
  #takeIdle(): Connection | undefined {
    let c: Connection | undefined;
    while ((c = this.#idle.pop()) !== undefined && !c.usable) c.destroy(null);
    return c;
  }

  #start(c: Connection, x: Exchange): void {
    this.#busy++;
    c.start(x);
  }

  /** A new connection, opened for `x`; if it fails before it is up, `x` fails with it. */
  #connect(x: Exchange): void {
    const c = new Connection(this, this.#settings, x);
    this.#connections.add(c);
    const url = this.#url;
    this.#connector.undici({ hostname: url.hostname.replace(/^\[|\]$/g, ''), host: url.host, protocol: 'https:', port: url.port || '443', servername: this.#settings.servername }, (err, socket) => {
      if (err !== null || socket === null) c.connectFailed(err ?? undiciCodedError('connect failed', 'UND_ERR_SOCKET'));
      else c.connected(socket as TLSSocket);
    });
  }

  /**
   * `c` is free: its exchange ended with the connection kept (busy: it had one), or it came up
   * (for `openedFor`, which may have left meanwhile). It takes that request, or the next waiting
   * one, or waits on the idle list.
   */
  free(c: Connection, busy: boolean, openedFor: Exchange | null = null): void {
    if (busy) this.#busy--;
    const next = openedFor !== null && !openedFor.done ? openedFor : this.#nextWaiting();
    if (next !== undefined) return this.#start(c, next);
    if (this.#closed) {
      c.destroy(null);
      return;
    }
    this.#idle.push(c);
    c.idle();
  }

  /** `c` answered and stays open: it serves again from the end of this turn (#settling). */
  answered(c: Connection): void {
    this.#busy--;
    this.#settling.push(c);
    if (this.#settleScheduled) return;
    this.#settleScheduled = true;
    setImmediate(this.#settled);
  }

  readonly #settled = (): void => {
    this.#settleScheduled = false;
    for (const c of this.#settling.splice(0)) this.free(c, false);
  };

  /** `c` closed (busy: in the middle of an exchange, which failed or completed without reuse). */
  gone(c: Connection, busy: boolean): void {
    if (busy) this.#busy--;
    this.#connections.delete(c);
    const i = this.#idle.indexOf(c);
    if (i >= 0) this.#idle.splice(i, 1);
    const j = this.#settling.indexOf(c);
    if (j >= 0) this.#settling.splice(j, 1);
    // A request that waits gets a connection in place of this one.
    if (this.#queue.length > 0 && this.#connections.size < this.#settings.connections) {
      const next = this.#nextWaiting();
      if (next !== undefined) this.#connect(next);
    }
    this.#settle();
  }

  /**
   * `x` goes first in line again, to be sent on the connection that replaces the one it was on
   * (gone() opens it): called just before that connection is counted out.
   */
  replay(x: Exchange): void {
    this.#replayed++;
    this.#queue.unshift(x);
  }

  #nextWaiting(): Exchange | undefined {
    let x: Exchange | undefined;
    while ((x = this.#queue.shift()) !== undefined && x.done);
    return x;
  }

  #settle(): void {
    if (this.#closing === null || this.#busy > 0 || this.#queue.length > 0) return;
    for (const c of this.#idle.splice(0)) c.destroy(null);
    if (this.#connections.size === 0) this.#closing.resolve();
  }

  /** Takes no more requests; resolves once the requests in flight and waiting finished and the connections closed. */
  override close(): Promise<void> {
    this.#closed = true;
    if (this.#closing === null) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      this.#closing = { promise, resolve };
    }
    this.#settle();
    return this.#closing.promise;
  }
}

/** One keep-alive mTLS connection and its response parser; one exchange at a time. */
class Connection implements ResponseEvents {
  readonly #client: Http1UpstreamClient;
  readonly #settings: TargetPoolSettings;
  readonly #parser: ResponseParser;
  #socket: TLSSocket | null = null;
  /** The exchange on this connection now. */
  #x: Exchange | null = null;
  /** The exchange this connection is being opened for, until it is up. */
  #opening: Exchange | null;
  #closed = false;
  #error: Error | null = null;
  /** The last response asked to keep the connection, and how long it may then idle. */
  #keepAlive = false;
  #idleMs: number;
  /** The head just parsed was an interim (1xx) one: the message that completes is not the answer. */
  #interim = false;
  #paused = false;
  #trailers: string[] = [];
  /** The one deadline of the connection: headers, body, or keep-alive idle. */
  readonly #deadline = new ConnectionDeadline(() => this.#onTimeout());
  /** Exchanges completed on it, and when it last went idle: what a failure says about the connection. */
  #served = 0;
  #idleSince = 0;
  #idleBefore = 0;
  /** A byte of the answer to the exchange on it arrived. */
  #answered = false;

  constructor(client: Http1UpstreamClient, settings: TargetPoolSettings, opening: Exchange) {
    this.#client = client;
    this.#settings = settings;
    this.#idleMs = settings.keepAlive;
    this.#opening = opening;
    this.#parser = new ResponseParser(this, MAX_RESPONSE_HEAD_BYTES);
  }

  connectFailed(err: Error): void {
    const x = this.#opening;
    this.#opening = null;
    this.#shut(false);
    x?.fail(err);
  }

  connected(socket: TLSSocket): void {
    const x = this.#opening;
    this.#opening = null;
    this.#socket = socket;
    socket.on('data', this.#onData);
    socket.on('end', this.#onEnd);
    socket.on('error', this.#onError);
    socket.on('close', this.#onClose);
    socket.on('drain', this.#onDrain);
    if (socket.destroyed) {
      x?.fail(undiciCodedError('the upstream connection closed as it opened', 'UND_ERR_SOCKET'));
      return this.#shut(false);
    }
    this.#client.free(this, false, x);
  }

  start(x: Exchange): void {
    this.#x = x;
    this.#idleBefore = this.#served > 0 ? Date.now() - this.#idleSince : 0;
    this.#answered = false;
    this.arm(0);
    this.#interim = false;
    this.#paused = false;
    x.run(this);
  }

  /** `x` ended before it wrote anything (aborted in onConnect): the connection serves the next one. */
  unused(x: Exchange): void {
    if (this.#x !== x) return;
    this.#x = null;
    this.#client.free(this, true);
  }

  /** Waits for the next request; closes after the idle time. */
  idle(): void {
    this.arm(this.#idleMs);
  }

  /** The connection's deadline set to `ms` from now (0: none); see connection-deadline.ts. */
  arm(ms: number): void {
    this.#deadline.arm(ms);
  }

  write(data: string | Buffer, encoding?: BufferEncoding): boolean {
    const s = this.#socket!;
    return encoding === undefined ? s.write(data) : s.write(data as string, encoding);
  }

  cork(): void {
    this.#socket?.cork();
  }

  /** Bytes written and not yet handed to the kernel. */
  get writableLength(): number {
    return this.#socket?.writableLength ?? 0;
  }

  uncork(): void {
    this.#socket?.uncork();
  }

  /** The relay cannot take more now: no more is read until resume (and no body timeout meanwhile). */
  pause(): void {
    if (this.#paused) return;
    this.#paused = true;
    this.#socket?.pause();
    this.arm(0);
  }

  resume(x: Exchange): void {
    if (this.#x !== x || !this.#paused) return;
    this.#paused = false;
    this.arm(x.bodyTimeout);
    this.#socket?.resume();
  }

  /**
   * Closes the connection; `err` fails the exchange on it, if any, once it closed. A connection
   * without an exchange leaves the pool now, not at its socket's 'close': that event comes at the
   * end of the event-loop turn, and a request dispatched meanwhile (its bytes read in the same
   * turn as the idle timer fired) would be written on a destroyed socket and fail
   * (test/integration/a-request-never-goes-out-on-an-upstream-connection-its-idle-timeout-closed).
   */
  destroy(err: Error | null): void {
    if (err !== null) this.#error ??= err;
    if (this.#x === null && this.#opening === null) return this.#close(false);
    if (this.#socket !== null) this.#socket.destroy();
  }

  /** Can carry a request now: up, not closed, its socket not destroyed. */
  get usable(): boolean {
    return !this.#closed && this.#socket !== null && !this.#socket.destroyed;
  }

  // ---- socket events -------------------------------------------------------------------------

  readonly #onData = (data: Buffer): void => {
    const x = this.#x;
    if (x === null) return this.#fail(undiciCodedError('the upstream sent bytes nobody asked for', 'UND_ERR_SOCKET'));
    this.#answered = true;
    if (x.responding && !this.#paused) this.arm(x.bodyTimeout);
    let r: ParseResult = this.#parser.execute(data);
    for (;;) {
      if (r.kind === 'more') return;
      if (r.kind === 'error') return this.#fail(r.error);
      // A message completed. An interim answer: the final one follows (maybe in the same bytes).
      if (this.#interim) {
        this.#interim = false;
        if (r.rest === 0) return;
        r = this.#parser.execute(data, data.length - r.rest);
        continue;
      }
      return this.#completed(r.rest);
    }
  };

  readonly #onEnd = (): void => {
    const x = this.#x;
    if (x !== null && x.responding) {
      // A body delimited by the end of the connection is complete now; anything else was cut.
      const r = this.#parser.finish();
      if (r.kind === 'complete') return this.#completed(0);
      if (r.kind === 'error') return this.#fail(undiciCodedError(`the upstream closed the connection in the middle of the response (${(r.error as { code?: string }).code ?? r.error.message})`, 'UND_ERR_SOCKET'));
    }
    this.#failOrReplay(this.#closedError('end'));
  };

  readonly #onError = (err: Error): void => {
    this.#error ??= err;
  };

  readonly #onClose = (): void => {
    this.#failOrReplay(this.#closedError('close'));
  };

  /**
   * The keep-alive race: an upstream may close a connection it has kept idle (its own idle
   * timeout, a restart) just as a request goes out on it, and it then closes without answering.
   * Such a request is sent once more on a new connection when that is safe: the connection had
   * served an exchange before (a new one that closes is a refusal, not a race), not a byte of the
   * answer arrived, the close was a FIN, a plain close or a reset, and the request is idempotent
   * and has no body (RFC 9110 9.2.2; Go's Transport and nginx's cached upstream connections do the
   * same). Only once per request; the second close is the answer.
   */
  #failOrReplay(err: Error): void {
    const x = this.#x;
    const code = (this.#error as { code?: string } | null)?.code;
    const raced = this.#error === null || code === 'ECONNRESET' || code === 'EPIPE';
    if (x === null || this.#served === 0 || this.#answered || !raced || !x.replayable()) return this.#fail(err);
    this.#x = null;
    x.rewind();
    this.#client.replay(x);
    this.#close(true);
  }

  /**
   * undici's "other side closed", with what tells a keep-alive race (a reused connection the
   * upstream closed as the request went out) from an upstream refusing a new one (a bare close
   * after the handshake is how Node's TLS server refuses a client certificate).
   */
  #closedError(how: 'end' | 'close'): Error {
    if (this.#x === null) return undiciCodedError('other side closed', 'UND_ERR_SOCKET');
    const s = this.#socket;
    const conn = this.#served === 0 ? 'a new connection' : `request ${this.#served + 1} on a kept-alive connection idle ${this.#idleBefore} ms before it`;
    const tls = s !== null && s.isSessionReused() ? 'TLS session resumed; ' : '';
    return undiciCodedError(`other side closed (${how === 'end' ? 'FIN' : 'closed'} on ${conn}; ${tls}request ${this.#x.requestSent ? 'sent' : 'partly sent'})`, 'UND_ERR_SOCKET');
  }

  #onTimeout(): void {
    const x = this.#x;
    if (x === null) return this.destroy(null); // idle past keepAlive
    this.#fail(x.responding ? undiciCodedError(`body timeout after ${x.bodyTimeout}ms`, 'UND_ERR_BODY_TIMEOUT') : undiciCodedError(`headers timeout after ${x.headersTimeout}ms`, 'UND_ERR_HEADERS_TIMEOUT'));
  }

  readonly #onDrain = (): void => {
    this.#x?.drained();
  };

  // ---- parser events -------------------------------------------------------------------------

  onHeaders(status: number, headers: string[], keepAlive: boolean): boolean {
    const x = this.#x!;
    if (status < 200) {
      if (status === 101 || status < 100) throw Object.assign(undiciCodedError(`the upstream answered ${status} to a request that asked for no protocol switch`, 'UND_ERR_INFO'), { name: 'HTTPParserError' });
      this.#interim = true;
      return false;
    }
    this.#keepAlive = keepAlive;
    const hint = keepAlive ? keepAliveHint(headers) : null;
    this.#idleMs = hint === null ? this.#settings.keepAlive : Math.min(this.#settings.keepAlive, hint - KEEP_ALIVE_HINT_MARGIN_MS);
    if (this.#idleMs <= 0) this.#keepAlive = false;
    this.arm(x.bodyTimeout);
    return x.head(status, headers);
  }

  onBody(chunk: Buffer): void {
    this.#x?.data(chunk);
  }

  onComplete(trailers: string[], keepAlive: boolean): void {
    this.#trailers = trailers;
    // The head said keep-alive and the trailer section took it back: the parser now refuses the
    // next answer, which would fail another client's request (test/security/upstream-answer-
    // cannot-poison-the-next-request-on-a-pooled-connection).
    if (!keepAlive) this.#keepAlive = false;
  }

  #completed(rest: number): void {
    const x = this.#x!;
    this.#x = null;
    this.#served++;
    this.#idleSince = Date.now();
    const trailers = this.#trailers;
    this.#trailers = [];
    // Reused only when both sides keep it, the whole request went up, and the upstream sent
    // nothing after its answer (bytes nobody asked for: the connection is out of step).
    const reuse = this.#keepAlive && x.requestSent && rest === 0 && !this.#closed && this.#socket !== null && !this.#socket.destroyed;
    if (this.#paused) {
      this.#paused = false;
      this.#socket?.resume();
    }
    x.complete(trailers);
    if (reuse) {
      this.#client.answered(this);
      return;
    }
    this.#close(true);
  }

  #fail(err: Error): void {
    const x = this.#x;
    this.#x = null;
    x?.fail(this.#error ?? err);
    this.#close(x !== null);
  }

  #close(busy: boolean): void {
    this.#socket?.destroy();
    this.#shut(busy);
  }

  /** The connection is gone: counted out once. */
  #shut(busy: boolean): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#deadline.stop();
    this.#parser.close();
    this.#client.gone(this, busy);
  }
}

/** One request and its response, driving an undici handler with the raw callbacks forward-request.ts implements. */
class Exchange {
  readonly #opts: Dispatcher.DispatchOptions;
  readonly #handler: Dispatcher.DispatchHandler;
  readonly #head: string;
  readonly #length: number | null;
  readonly #chunked: boolean;
  readonly headersTimeout: number;
  readonly bodyTimeout: number;
  /** The connection it runs on. */
  #conn: Connection | null = null;
  /** Aborted from onConnect, before the request's first byte: nothing is sent, the connection stays. */
  #abortedEarly: Error | null = null;
  #wrote = false;
  #body: Body | null = null;
  #sentBytes = 0;
  #done = false;
  #responding = false;
  #requestSent = false;
  /** A streamed body's request head waits for the body's first bytes (or its end). */
  #headPending = false;
  /**
   * The head and the body so far wait corked (a Content-Length of at most HELD_BODY_BYTES): until
   * the body's end or the end of the event-loop turn that read its first bytes (#release),
   * whichever comes first. An abort meanwhile closes the connection (the request was begun), and
   * what waited goes with it.
   */
  #holding = false;
  /** onConnect was called (once per request, also when it is sent again). */
  #connectCalled = false;
  #replayed = false;

  constructor(client: Http1UpstreamClient, opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler, head: string, length: number | null, chunked: boolean) {
    this.#opts = opts;
    this.#handler = handler;
    this.#head = head;
    this.#length = length;
    this.#chunked = chunked;
    this.headersTimeout = opts.headersTimeout ?? client.settings.responseTimeout;
    this.bodyTimeout = opts.bodyTimeout ?? client.settings.idleTimeout;
    // As undici's Request: a streamed body's error is heard from the start, also while the request
    // waits for a connection (kept, it fails the request when it runs: #abortedEarly).
    const body = opts.body as Body | Buffer | string | null | undefined;
    if (body != null && typeof body !== 'string' && !Buffer.isBuffer(body)) body.on('error', this.#onBodyError);
  }

  get done(): boolean {
    return this.#done;
  }

  /** The response head arrived (an interim one does not count). */
  get responding(): boolean {
    return this.#responding;
  }

  get requestSent(): boolean {
    return this.#requestSent;
  }

  /** On connection `c`: onConnect, then the request's bytes. */
  run(c: Connection): void {
    this.#conn = c;
    if (!this.#connectCalled) {
      this.#connectCalled = true;
      try {
        this.#handler.onConnect?.((err?: Error) => this.#abort(err ?? undiciCodedError('request aborted', 'UND_ERR_ABORTED')));
      } catch (err) {
        this.#abort(err as Error);
      }
    }
    if (this.#abortedEarly !== null) {
      this.fail(this.#abortedEarly);
      c.unused(this);
      return;
    }
    this.#wrote = true;
    const body = this.#opts.body as Body | Buffer | string | null | undefined;
    if (body == null) {
      c.write(this.#head, 'latin1');
      this.#sent();
      return;
    }
    if (typeof body === 'string' || Buffer.isBuffer(body)) {
      if (typeof body !== 'string' && body.length <= ONE_WRITE_BYTES) c.write(headWithBody(this.#head, body, false));
      else {
        c.cork();
        c.write(this.#head, 'latin1');
        c.write(body);
        c.uncork();
      }
      this.#sent();
      return;
    }
    // As undici: the head goes out with the body's first bytes (or its end), in one write, rather
    // than in a write of its own just before them (the body of a request read with its head is
    // pushed right after the request was handed over).
    this.#headPending = true;
    this.#body = body;
    body.on('data', this.#onBodyData);
    body.once('end', this.#onBodyEnd);
    body.once('close', this.#onBodyClose);
    // A body that ended before it was handed over has no 'end' to come.
    if (body.readableEnded === true) this.#onBodyEnd();
  }

  /** May be sent again on another connection: idempotent, without a body, sent whole, not yet sent twice (Connection#failOrReplay). */
  replayable(): boolean {
    if (this.#done || this.#replayed || !this.#requestSent || this.#responding || !IDEMPOTENT.has(this.#opts.method)) return false;
    const body = this.#opts.body as unknown;
    return body == null || ((typeof body === 'string' || Buffer.isBuffer(body)) && body.length === 0);
  }

  /** Back to "not sent", to be run on a new connection. */
  rewind(): void {
    this.#replayed = true;
    this.#conn = null;
    this.#wrote = false;
    this.#requestSent = false;
  }

  /** The whole request is written: the response head is now waited for (undici's headersTimeout). */
  #sent(): void {
    this.#requestSent = true;
    if (!this.#responding) this.#conn?.arm(this.headersTimeout);
  }

  readonly #onBodyData = (chunk: Buffer | string): void => {
    const c = this.#conn;
    if (c === null || this.#done) return;
    const b = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    if (b.length === 0) return;
    this.#sentBytes += b.length;
    if (this.#length !== null && this.#sentBytes > this.#length) return this.#abort(undiciCodedError('request body longer than its content-length', 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH'));
    let ok: boolean;
    const head = this.#headPending;
    const hold = head && this.#length !== null && this.#length <= HELD_BODY_BYTES && this.#sentBytes < this.#length;
    if (head && !hold && b.length <= ONE_WRITE_BYTES) {
      // The head with the body's first bytes (a chunk with its framing), in one buffer.
      this.#headPending = false;
      ok = c.write(headWithBody(this.#head, b, this.#chunked));
    } else {
      // Corked for this piece alone (the head with the first bytes, a chunk with its framing), or
      // from the head to #release (#holding).
      const corked = (head || this.#chunked) && !this.#holding;
      if (corked) c.cork();
      if (head) {
        this.#headPending = false;
        if (hold) {
          this.#holding = true;
          setImmediate(this.#release);
        }
        c.write(this.#head, 'latin1');
      }
      if (this.#chunked) {
        c.write(`${b.length.toString(16)}\r\n`, 'latin1');
        c.write(b);
        ok = c.write('\r\n', 'latin1');
      } else {
        ok = c.write(b);
      }
      if (corked && !this.#holding) c.uncork();
    }
    // The body keeps flowing while less than RELAY_BUFFER_BYTES wait for the upstream; 'drain' resumes it.
    if (!ok && c.writableLength >= RELAY_BUFFER_BYTES) this.#body?.pause();
  };

  /** What was held goes up: the body is whole, or the turn that read its first bytes is over. */
  readonly #release = (): void => {
    if (!this.#holding) return;
    this.#holding = false;
    this.#conn?.uncork();
  };

  readonly #onBodyEnd = (): void => {
    const c = this.#conn;
    if (c === null || this.#done || this.#requestSent) return;
    if (this.#length !== null && this.#sentBytes !== this.#length) return this.#abort(undiciCodedError('request body shorter than its content-length', 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH'));
    if (this.#headPending) {
      // A body that ended without a byte: the head alone (with the last chunk when chunked).
      this.#headPending = false;
      c.write(this.#chunked ? this.#head + LAST_CHUNK : this.#head, 'latin1');
    } else if (this.#chunked) c.write(LAST_CHUNK, 'latin1');
    this.#release();
    this.#detachBody();
    this.#sent();
  };

  readonly #onBodyError = (err: Error): void => {
    this.#abort(err);
  };

  readonly #onBodyClose = (): void => {
    if (!this.#requestSent) this.#abort(undiciCodedError('the request body was closed before it ended', 'UND_ERR_ABORTED'));
  };

  drained(): void {
    if (!this.#requestSent) this.#body?.resume();
  }

  #detachBody(): void {
    const body = this.#body;
    if (body === null) return;
    this.#body = null;
    body.off('data', this.#onBodyData);
    body.off('end', this.#onBodyEnd);
    body.off('error', this.#onBodyError);
    body.off('close', this.#onBodyClose);
  }

  /**
   * The handler's abort (handed over in onConnect, so only once the exchange runs), or a failure
   * of the request's own body. Before the first byte is written (an abort from onConnect itself)
   * nothing is sent and the connection stays; after it, the connection closes, and its close fails
   * the exchange with `err`.
   */
  #abort(err: Error): void {
    if (this.#done) return;
    if (!this.#wrote) {
      this.#abortedEarly ??= err;
      return;
    }
    this.#conn!.destroy(err);
  }

  /**
   * The answer's head; returns true when no body follows (the answer to a HEAD). The handler gets
   * the raw list as latin1 strings, not undici's Buffers: the relay and undici's own handlers
   * (health checks) read both alike.
   */
  head(status: number, headers: string[]): boolean {
    this.#responding = true;
    const c = this.#conn!;
    if (this.#handler.onHeaders?.(status, headers as unknown as Buffer[], () => c.resume(this), '') === false) c.pause();
    return this.#opts.method === 'HEAD';
  }

  data(chunk: Buffer): void {
    if (this.#done) return;
    if (this.#handler.onData?.(chunk) === false) this.#conn?.pause();
  }

  complete(trailers: string[]): void {
    if (this.#done) return;
    this.#done = true;
    // An answer that came before the whole request body went up: the rest is not sent.
    this.#detachBody();
    try {
      this.#handler.onComplete?.(trailers as unknown as string[]);
    } catch (err) {
      this.#handler.onError?.(err as Error);
    }
  }

  fail(err: Error): void {
    if (this.#done) return;
    this.#done = true;
    this.#detachBody();
    try {
      this.#handler.onError?.(err);
    } catch {
      // A handler that throws from onError has nothing left to be told.
    }
  }
}
