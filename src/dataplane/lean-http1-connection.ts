/**
 * The lean listener's HTTP/1.1 connections (`server.engine: lean`): the TLS socket is read by the
 * gateway's own request parser (src/request/llhttp-request-parser.ts) instead of node:http's
 * connection handling, and every request is handed to the same listeners node:http would call
 * ('request', 'checkContinue', 'checkExpectation', 'upgrade', 'connect', 'clientError' on the
 * server), with node:http's own IncomingMessage and ServerResponse, so the handler, the proxy, the
 * error answers and the drain see no difference. What node:http's server does around them is
 * done here, the same way (lib/_http_server.js): one response at a time (bytes of a pipelined
 * request wait, unread, until the response before it finished), the keep-alive timer after a
 * response, the body of a request nobody read dumped so that the next one is found, `Expect` only
 * on HTTP/1.1, an upgrade or CONNECT handed over with the bytes after its head, a socket timeout
 * given to the request or the response first, a client's end or reset aborting the requests in
 * progress, and the head and request timeouts (ERR_HTTP_REQUEST_TIMEOUT to 'clientError', as
 * node:http's connection check does, but on time rather than at its sweep). The keep-alive timeout
 * of an idle connection is this connection's one deadline timer too (node:http sets the socket's
 * timeout after every response and clears it when the next request begins: a Timeout, a bound
 * function and two timer-list updates per request); the socket's own timer is used only for a
 * response that finished while its request's body was still arriving, where node:http's inactivity
 * semantics (every read restarts it) matter.
 */
import dc from 'node:diagnostics_channel';
import { EventEmitter } from 'node:events';
import { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { ConnectionDeadline } from '../proxy/connection-deadline.js';
import { RequestParser, type ParsedRequestHead, type RequestEvents, type RequestParseResult } from '../request/llhttp-request-parser.js';

/** The server limits a connection reads when a request starts (a reload may change them). */
export interface LeanHttp1Settings {
  readonly maxHeaderSize: number;
  /** Header lines the parser delivers; more is a 431 from the parser. */
  readonly maxHeaderLines: number;
  readonly headersTimeout: number;
  /** 0: none. */
  readonly requestTimeout: number;
  readonly keepAliveTimeout: number;
}

/**
 * What a lean exchange (lean-exchange.ts) sees of the connection its request arrived on: the
 * socket to answer on, and the two ways out of an exchange.
 */
export interface LeanExchangeConnection {
  readonly socket: TLSSocket;
  /** The answer may keep the connection (llhttp's verdict on the request, and the server is not closing). */
  readonly keepAlive: boolean;
  /**
   * The request as node:http's objects, nothing written yet: the exchange hands it over to them
   * (the proxy goes on from a failed first attempt). From here on the connection serves it as any other.
   */
  materialize(): { req: IncomingMessage; res: ServerResponse };
  /** The exchange wrote its whole answer (`last`: the connection closes after it), or gave up and destroyed the socket. */
  responded(last: boolean): void;
}

/**
 * The exchange in progress on a connection: told of the client's leaving, of a drained socket, of
 * its request's body as the parser reads it, and of the socket's inactivity timer.
 */
export interface LeanExchangeInProgress {
  clientGone(): void;
  drained(): void;
  /** Bytes of the request's body. If the exchange hands the request over to node:http's objects meanwhile, the chunk is theirs. */
  body(chunk: Buffer): void;
  /** The request's body is whole. */
  bodyEnd(): void;
  /** The connection closes after this answer (its head says so if not yet written). */
  closeAfter(): void;
  /** The socket's timeout fired; false: not the exchange's (the connection's own handling follows). */
  timeout(): boolean;
  /** Something of the answer may be on the wire (its head arrived from the upstream): no other answer can follow. */
  readonly answerStarted: boolean;
}

/**
 * Serves a request without node:http's objects when it can (lean-exchange.ts). `serve` returns
 * the exchange it started, or null having done nothing: node:http's objects then serve the request.
 */
export interface LeanExchangeServer {
  serve(conn: LeanExchangeConnection, head: ParsedRequestHead): LeanExchangeInProgress | null;
}

/** node:http's internals this module drives as node:http does (stable since Node 12). */
type NodeRequest = IncomingMessage & {
  _addHeaderLines(headers: string[], n: number): void;
  _dump(): void;
  _consuming: boolean;
  _dumped: boolean;
  _readableState: { resumeScheduled: boolean; ended: boolean; endEmitted: boolean; destroyed: boolean; closed: boolean; closeEmitted: boolean };
};
type NodeResponse = ServerResponse & { _last: boolean; _keepAliveTimeout: number; _expect_continue: boolean; _closed: boolean; destroyed: boolean };
type PausableSocket = TLSSocket & { _paused?: boolean };

/** node:http's HTTP_SERVER_KEEP_ALIVE_TIMEOUT_BUFFER (Node 24: server.keepAliveTimeoutBuffer's default). */
const KEEP_ALIVE_BUFFER_MS = 1_000;

const CONTINUE = /(?:^|\W)100-continue(?:$|\W)/i;

/**
 * node:http's diagnostics channels, published at the same points as lib/_http_server.js does
 * (parserOnIncoming, resOnFinish), so that tracing and APM tools subscribed to them see the lean
 * listener's requests as they see node:http's. ('http.server.response.created' is published by
 * ServerResponse's own constructor on Node 22+.)
 */
const requestStartChannel = dc.channel('http.server.request.start');
const responseFinishChannel = dc.channel('http.server.response.finish');

/**
 * OutgoingMessage's own "a write returned false" flag. node:http's server (socketOnDrain) turns a
 * drained socket into the response's 'drain' and clears the flag; the symbol is not exported, so
 * it is found by its description once, on a response object.
 */
let kNeedDrain: symbol | null | undefined;
function needDrainSymbol(res: object): symbol | null {
  if (kNeedDrain === undefined) kNeedDrain = Object.getOwnPropertySymbols(res).find((s) => s.description === 'kNeedDrain') ?? null;
  return kNeedDrain;
}

/**
 * A request without Content-Length or Transfer-Encoding has no body (RFC 9112 6.3): its stream is
 * ended, dumped and closed at once, as node:http does with `optimizeEmptyRequests` (Node 24,
 * `IncomingMessage._dumpAndCloseReadable`), instead of living through Readable's end, dump and
 * destroy, five process ticks and their allocations per request. Nothing in the gateway reads such
 * a request's stream (proxy-http.ts forwards a body only when `hasBody`), and it hears about a
 * client that leaves from the response's 'close'; the request itself emits no 'end' or 'close'.
 */
function endEmptyRequest(req: NodeRequest): void {
  req._dumped = true;
  const st = req._readableState;
  st.ended = true;
  st.endEmitted = true;
  st.destroyed = true;
  st.closed = true;
  st.closeEmitted = true;
}

function connReset(message: string): Error {
  return Object.assign(new Error(message), { code: 'ECONNRESET' });
}

/** node:http's emitCloseNT: a finished response is closed on the next tick. */
function emitClose(res: NodeResponse): void {
  if (res._closed) return;
  res.destroyed = true;
  res._closed = true;
  res.emit('close');
}

/** The lean connections of one listener: closes idle ones when the server closes. */
export class LeanHttp1Connections {
  readonly #server: EventEmitter;
  readonly #settings: () => LeanHttp1Settings;
  readonly #live = new Set<LeanHttp1Connection>();
  #closing = false;
  /** Serves what it can of bodiless requests without node:http's objects; null: none. */
  readonly exchanges: LeanExchangeServer | null;

  constructor(server: EventEmitter, settings: () => LeanHttp1Settings, exchanges: LeanExchangeServer | null = null) {
    this.#server = server;
    this.#settings = settings;
    this.exchanges = exchanges;
  }

  /** A TLS connection that negotiated HTTP/1.1 (or no ALPN): served here from now on. */
  readonly serve = (socket: TLSSocket): void => {
    const c = new LeanHttp1Connection(socket, this.#server, this.#settings, this);
    this.#live.add(c);
    socket.once('close', () => this.#live.delete(c));
  };

  get closing(): boolean {
    return this.#closing;
  }

  /** node:http's closeIdleConnections: idle connections close now, busy ones after their response. */
  closeIdle(): void {
    this.#closing = true;
    for (const c of this.#live) c.closeIfIdle();
  }

  closeAll(): void {
    this.#closing = true;
    for (const c of this.#live) c.destroy();
  }

  /** `c` was handed over (an upgrade, CONNECT): its socket is no longer an HTTP connection of this server, as in node:http. */
  release(c: LeanHttp1Connection): void {
    this.#live.delete(c);
  }

  get size(): number {
    return this.#live.size;
  }
}

/** The lean exchange may take a request only when no tracing tool expects node:http's objects for it. */
function tracedHttp(): boolean {
  return requestStartChannel.hasSubscribers || responseFinishChannel.hasSubscribers;
}

class LeanHttp1Connection implements RequestEvents, LeanExchangeConnection {
  readonly #socket: PausableSocket;
  readonly #server: EventEmitter;
  readonly #settings: () => LeanHttp1Settings;
  readonly #owner: LeanHttp1Connections;
  readonly #parser: RequestParser;
  /** The request being read or answered, and its response until it finished. */
  #req: NodeRequest | null = null;
  #res: NodeResponse | null = null;
  /** A lean exchange answering the current request (no #req or #res then), and its head. */
  #lean: LeanExchangeInProgress | null = null;
  #leanHead: ParsedRequestHead | null = null;
  #leanKeepAlive = false;
  /** The head of an upgrade or CONNECT, taken over once the parser stops at it. */
  #takeOver: ParsedRequestHead | null = null;
  /** Bytes after a complete request whose response has not finished: read once it has. */
  #held: Buffer | null = null;
  /** Bytes of a message not yet complete were read (a head or a body in progress). */
  #parserHasBytes = false;
  /** The request's body is still arriving. */
  #inBody = false;
  /**
   * llhttp's verdict at the end of the last request was "close" (its head said so, or its trailer
   * section took the head's keep-alive back): nothing after it is read, and the connection closes
   * once it is answered (RFC 9112 9.6).
   */
  #closeAfter = false;
  #keepAliveTimerSet = false;
  /** Idle between requests: the deadline running is the keep-alive timeout. */
  #idle = false;
  #done = false;
  /** When the current message's first byte arrived (the request timeout counts from it, as node:http's). */
  #messageStart = 0;
  /** The head or request deadline. */
  readonly #deadline = new ConnectionDeadline(() => this.#onDeadline());

  constructor(socket: TLSSocket, server: EventEmitter, settings: () => LeanHttp1Settings, owner: LeanHttp1Connections) {
    this.#socket = socket;
    this.#server = server;
    this.#settings = settings;
    this.#owner = owner;
    const s = settings();
    this.#parser = new RequestParser(this, { maxHeaderBytes: s.maxHeaderSize, maxHeaders: s.maxHeaderLines });
    socket.on('data', this.#onData);
    socket.on('end', this.#onEnd);
    socket.on('error', this.#onError);
    socket.on('close', this.#onClose);
    socket.on('timeout', this.#onTimeout);
    socket.on('drain', this.#onDrain);
    // As node:http: the head timer runs from the connection's start.
    this.#messageStart = Date.now();
    this.#arm(s.headersTimeout);
  }

  /** Closes the connection if no request is in progress on it (none read, answered or waiting). */
  closeIfIdle(): void {
    if (this.#done) return;
    if (this.#req === null && this.#res === null && this.#lean === null && !this.#parserHasBytes && this.#held === null) this.#socket.destroy();
  }

  destroy(): void {
    this.#socket.destroy();
  }

  // ---- socket events -------------------------------------------------------------------------

  readonly #onData = (data: Buffer): void => {
    if (this.#done || this.#closeAfter) return;
    if (this.#held !== null || (this.#lean !== null && !this.#inBody) || (this.#res !== null && !this.#inBody && this.#req?.complete === true)) {
      this.#hold(data);
      return;
    }
    this.#read(data, 0);
  };

  #hold(data: Buffer): void {
    // A view, not a copy (the socket's chunks are not reused; node:http's parser keeps views too):
    // requests pipelined behind a slow one are then read in linear time however many there are.
    this.#held = this.#held === null ? data : Buffer.concat([this.#held, data]);
    this.#socket._paused = true;
    this.#socket.pause();
  }

  #read(data: Buffer, offset: number): void {
    while (!this.#done) {
      if (!this.#parserHasBytes && offset < data.length) this.#messageBegins();
      let r: RequestParseResult;
      try {
        r = this.#parser.execute(data, offset);
      } catch (err) {
        r = { kind: 'error', error: err as Error };
      }
      if (r.kind === 'more') return;
      if (r.kind === 'error') return this.#clientError(r.error);
      if (r.kind === 'upgrade') return this.#upgrade(data.subarray(data.length - r.rest));
      // A request completed (its onComplete ran). What follows waits for its response.
      this.#parserHasBytes = false;
      this.#arm(0);
      if (r.rest === 0 || this.#closeAfter) return;
      offset = data.length - r.rest;
      if (this.#res !== null || this.#lean !== null) return this.#hold(data.subarray(offset));
    }
  }

  #messageBegins(): void {
    this.#parserHasBytes = true;
    this.#idle = false;
    if (this.#keepAliveTimerSet) {
      this.#socket.setTimeout(0);
      this.#keepAliveTimerSet = false;
    }
    const s = this.#settings();
    this.#messageStart = Date.now();
    this.#arm(s.headersTimeout);
  }

  /** node:http's socketOnDrain: a response that was told to wait hears 'drain'. */
  readonly #onDrain = (): void => {
    if (this.#lean !== null) return this.#lean.drained();
    const res = this.#res;
    if (res === null || res.writableFinished) return;
    const k = needDrainSymbol(res);
    const flagged = k === null ? res.writableNeedDrain : (res as unknown as Record<symbol, boolean>)[k] === true;
    if (!flagged) return;
    if (k !== null) (res as unknown as Record<symbol, boolean>)[k] = false;
    res.emit('drain');
  };

  readonly #onEnd = (): void => {
    if (this.#done) return;
    const r = this.#parser.finish();
    if (r.kind === 'error') return this.#clientError(r.error);
    // node:http without httpAllowHalfOpen: the requests in progress are aborted, the socket ended.
    this.#abortInProgress();
    if (this.#socket.writable) this.#socket.end();
  };

  readonly #onError = (err: Error): void => {
    if (this.#done) return;
    this.#clientError(err);
  };

  readonly #onClose = (): void => {
    this.#done = true;
    this.#deadline.stop();
    this.#abortInProgress();
    this.#parser.close();
  };

  /** node:http's socketOnTimeout: the request (while its body arrives), then the response, may take it; else the socket closes. */
  readonly #onTimeout = (): void => {
    if (this.#lean?.timeout() === true) return;
    const req = this.#req;
    const reqTook = req !== null && !req.complete && req.emit('timeout', this.#socket);
    const res = this.#res;
    const resTook = res !== null && res.emit('timeout', this.#socket);
    const serverTook = this.#server.emit('timeout', this.#socket);
    if (!reqTook && !resTook && !serverTook) this.#socket.destroy();
  };

  #abortInProgress(): void {
    const lean = this.#lean;
    if (lean !== null) {
      this.#lean = null;
      lean.clientGone();
      return;
    }
    const req = this.#req;
    if (req !== null && (this.#res !== null || !req.complete) && !req.destroyed) req.destroy(connReset('aborted'));
  }

  /** A request the parser (or a timeout) refused: node:http's socketOnError, through 'clientError'. */
  #clientError(err: Error): void {
    this.#done = true;
    this.#arm(0);
    this.#socket.removeListener('data', this.#onData);
    this.#socket.on('error', () => undefined);
    // A lean exchange whose answer started: no error answer can follow it (node:http's objects: the
    // handler sees the response's headersSent and closes). Before that, the error is answered as it
    // is with node:http's objects in progress (a request timeout in the middle of a body is a 408),
    // and the exchange hears that its client is gone when the socket closes.
    if (this.#lean?.answerStarted === true) {
      this.#socket.destroy();
      return;
    }
    if (!this.#server.emit('clientError', err, this.#socket)) this.#socket.destroy();
  }

  // ---- the one deadline (head, then request) ---------------------------------------------------

  #arm(ms: number): void {
    this.#deadline.arm(ms);
  }

  /**
   * node:http's onRequestTimeout: a 408 unless the response already started (the handler checks).
   * On an idle connection, its keep-alive timeout: node:http's socketOnTimeout with no request or
   * response in progress (the server's 'timeout' listeners may take the socket, else it closes).
   */
  #onDeadline(): void {
    if (this.#done) return;
    if (this.#idle) {
      this.#idle = false;
      if (!this.#server.emit('timeout', this.#socket)) this.#socket.destroy();
      return;
    }
    this.#clientError(Object.assign(new Error('Request timeout'), { code: 'ERR_HTTP_REQUEST_TIMEOUT' }));
  }

  // ---- parser events -------------------------------------------------------------------------

  onRequest(head: ParsedRequestHead): boolean {
    const socket = this.#socket;
    if (head.upgrade && (head.method === 'CONNECT' || this.#server.listenerCount('upgrade') > 0)) {
      this.#takeOver = head;
      return true;
    }
    const s = this.#settings();
    // The head is in: the request timeout (if any), counted from the message's first byte, runs on
    // to the end of the body.
    this.#arm(s.requestTimeout === 0 ? 0 : Math.max(1, this.#messageStart + s.requestTimeout - Date.now()));
    this.#inBody = true;
    const exchanges = this.#owner.exchanges;
    if (exchanges !== null && !head.upgrade && !tracedHttp()) {
      this.#leanKeepAlive = head.keepAlive && !this.#owner.closing;
      this.#leanHead = head;
      const lean = exchanges.serve(this, head);
      if (lean !== null) {
        // Unless it already answered (materialized or responded within serve).
        if (this.#leanHead !== null) this.#lean = lean;
        return false;
      }
      this.#leanHead = null;
    }
    const { req, res } = this.#objects(head, s);
    const server = this.#server;
    if (requestStartChannel.hasSubscribers) requestStartChannel.publish({ request: req, response: res, socket, server });
    if (req.httpVersionMajor === 1 && req.httpVersionMinor === 1 && req.headers.expect !== undefined) {
      if (CONTINUE.test(req.headers.expect)) {
        res._expect_continue = true;
        if (server.listenerCount('checkContinue') > 0) server.emit('checkContinue', req, res);
        else {
          res.writeContinue();
          server.emit('request', req, res);
        }
      } else if (server.listenerCount('checkExpectation') > 0) server.emit('checkExpectation', req, res);
      else {
        res.writeHead(417);
        res.end();
      }
      return false;
    }
    server.emit('request', req, res);
    return false;
  }

  /** node:http's request and response for `head`, the response on this socket; the current request from now on. */
  #objects(head: ParsedRequestHead, s: LeanHttp1Settings): { req: NodeRequest; res: NodeResponse } {
    const socket = this.#socket;
    const req = this.#request(head);
    const res = new (ServerResponse as unknown as new (req: IncomingMessage, opts: { highWaterMark: number }) => NodeResponse)(req, { highWaterMark: socket.writableHighWaterMark });
    res._keepAliveTimeout = s.keepAliveTimeout;
    res.shouldKeepAlive = head.keepAlive && !this.#owner.closing;
    res.assignSocket(socket);
    res.once('finish', () => this.#onFinish(req, res));
    this.#req = req;
    this.#res = res;
    if (req.headers['content-length'] === undefined && req.headers['transfer-encoding'] === undefined) endEmptyRequest(req);
    return { req, res };
  }

  // ---- the lean exchange's view (LeanExchangeConnection) -----------------------------------------

  get socket(): TLSSocket {
    return this.#socket;
  }

  get keepAlive(): boolean {
    return this.#leanKeepAlive;
  }

  materialize(): { req: IncomingMessage; res: ServerResponse } {
    const head = this.#leanHead!;
    this.#leanHead = null;
    this.#lean = null;
    const made = this.#objects(head, this.#settings());
    // The lean exchange takes only bodiless requests. Read whole already, unless this runs within
    // the exchange's start (the parser's onComplete, still to come, completes it then).
    if (!this.#inBody) made.req.complete = true;
    return made;
  }

  responded(last: boolean): void {
    this.#lean = null;
    this.#leanHead = null;
    this.#afterResponse(last);
  }

  #request(head: ParsedRequestHead): NodeRequest {
    const req = new IncomingMessage(this.#socket) as NodeRequest;
    req.httpVersionMajor = head.versionMajor;
    req.httpVersionMinor = head.versionMinor;
    req.httpVersion = `${head.versionMajor}.${head.versionMinor}`;
    req.method = head.method;
    req.url = head.url;
    (req as { upgrade?: boolean }).upgrade = head.upgrade;
    req._addHeaderLines(head.headers, head.headers.length);
    return req;
  }

  onBody(chunk: Buffer): void {
    const lean = this.#lean;
    if (lean !== null) {
      lean.body(chunk);
      // Unless the exchange handed the request over to node:http's objects (then the chunk is its
      // request's), it took the chunk, or has answered and the rest of the body is dropped.
      if (this.#req === null) return;
    }
    const req = this.#req;
    if (req === null || req.destroyed || (req as { _dumped?: boolean })._dumped === true) return;
    if (!req.push(chunk)) {
      // node:http's readStop: the socket pauses until the request is read (IncomingMessage._read resumes it).
      this.#socket.pause();
    }
  }

  onComplete(trailers: string[], keepAlive: boolean): void {
    this.#inBody = false;
    if (!keepAlive) this.#closeAfterAnswer();
    this.#lean?.bodyEnd();
    const req = this.#req;
    if (req === null) return;
    req.complete = true;
    if (trailers.length > 0) req._addHeaderLines(trailers, trailers.length);
    if (!req._readableState.ended) req.push(null);
    // The request read to its end: nothing of it holds the connection any more once answered.
    if (this.#res === null) this.#req = null;
  }

  /**
   * The request's own trailer section closed the connection (its head kept it): llhttp refuses
   * anything after it, so a request read next would be a 400, and the answer to this one, said
   * kept alive, would leave the client to reuse a connection that refuses it. The answer says
   * close when its head is still to be written; an answer already whole closes the connection now.
   */
  #closeAfterAnswer(): void {
    this.#closeAfter = true;
    this.#leanKeepAlive = false;
    this.#lean?.closeAfter();
    const res = this.#res;
    if (res !== null && !res.headersSent) res.shouldKeepAlive = false;
    if (this.#lean === null && res === null && this.#leanHead === null) this.#socket.destroySoon();
  }

  #upgrade(rest: Buffer): void {
    const head = this.#takeOver!;
    this.#done = true;
    this.#deadline.stop();
    this.#owner.release(this);
    const socket = this.#socket;
    socket.removeListener('data', this.#onData);
    socket.removeListener('end', this.#onEnd);
    socket.removeListener('error', this.#onError);
    socket.removeListener('timeout', this.#onTimeout);
    socket.removeListener('drain', this.#onDrain);
    if (this.#keepAliveTimerSet) socket.setTimeout(0);
    const req = this.#request(head);
    req.complete = true;
    // The bytes after the head are the new protocol's, as node:http hands them over (a copy: the
    // chunk they are a view of is the socket's).
    const bodyHead = Buffer.from(rest);
    this.#server.emit(head.method === 'CONNECT' ? 'connect' : 'upgrade', req, socket, bodyHead);
  }

  // ---- the response ------------------------------------------------------------------------

  /** node:http's resOnFinish. */
  #onFinish(req: NodeRequest, res: NodeResponse): void {
    if (responseFinishChannel.hasSubscribers) responseFinishChannel.publish({ request: req, response: res, socket: this.#socket, server: this.#server });
    // A body nobody read is read to its end and dropped, so that the next request is found.
    if (!req._consuming && !req._readableState.resumeScheduled) req._dump();
    res.detachSocket(this.#socket);
    process.nextTick(emitClose, res);
    this.#res = null;
    if (req.complete) this.#req = null;
    this.#afterResponse(res._last);
  }

  /** node:http's resOnFinish after the response let go of the socket: close, or wait for the next request. */
  #afterResponse(last: boolean): void {
    const socket = this.#socket;
    if (last || this.#closeAfter || this.#owner.closing) {
      socket.destroySoon();
      return;
    }
    const ka = this.#settings().keepAliveTimeout;
    if (ka > 0) {
      // node:http waits a second longer than the Keep-Alive: timeout= it announced, so that the
      // client, which closes at that time, is the one to close.
      if (this.#parserHasBytes) {
        // The request's body is still arriving (answered early): the socket's inactivity timer, as
        // node:http, restarted by every read of it.
        socket.setTimeout(ka + KEEP_ALIVE_BUFFER_MS);
        this.#keepAliveTimerSet = true;
      } else {
        this.#idle = true;
        this.#arm(ka + KEEP_ALIVE_BUFFER_MS);
      }
    }
    const held = this.#held;
    if (held !== null) {
      this.#held = null;
      socket._paused = false;
      this.#read(held, 0);
    }
    if (this.#held === null && !this.#done && socket.isPaused()) {
      socket._paused = false;
      socket.resume();
    }
  }
}
