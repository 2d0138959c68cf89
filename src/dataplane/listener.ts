/**
 * The listener: one TLS port for HTTP/2 and HTTP/1.1, chosen by ALPN (listen.http2; node:http2's
 * secure server with allowHTTP1, whose HTTP/1.1 connections are the lean connection handling's at
 * the default server.engine: lean, see leanHttp1, and node:http's own at server.engine: node). It
 * is created through Fastify's serverFactory, so Fastify owns listen, close and idle-connection
 * handling while every request, of either protocol, goes straight to the data plane through the
 * compatibility API (the same request and response shapes as node:http). Also the server's
 * Node-level limits, and the TLS connection events: each connection is registered and judged once
 * when its handshake completes, so a refusal is logged even if the client never sends a request.
 * With listen.http2 false it is node:https, as before HTTP/2.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createSecureServer as createHttp2Server, type Http2ServerRequest, type Http2ServerResponse, type ServerHttp2Session } from 'node:http2';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import Fastify, { LogController, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { GatewayConfig } from '../config/schema.js';
import type { Runtime } from '../runtime/runtime.js';
import type { RuntimeSnapshot } from '../runtime/snapshot.js';
import type { GatewayMetrics } from '../telemetry/metrics.js';
import { clientSocketOf, markClientSocket } from './client-socket.js';
import type { AcceptedConnection } from './connection-context.js';
import type { ConnectionRegistry } from './connection-registry.js';
import type { Http1Handler } from './http1-handler.js';
import { guardSession } from './http2-sessions.js';
import { LeanHttp1Connections, type LeanHttp1Settings } from './lean-http1-connection.js';
import { identityLog, revocationCode, revocationLog } from './log-records.js';

export type GatewayApp = FastifyInstance<HttpsServer, IncomingMessage, ServerResponse, Logger>;

export interface ListenerDeps {
  readonly config: GatewayConfig;
  readonly logger: Logger;
  readonly runtime: Runtime;
  readonly registry: ConnectionRegistry;
  readonly handler: Http1Handler;
  readonly metrics: GatewayMetrics;
  /** The OCSP answer to staple for the server certificate a handshake presents (tls.stapling), if any. */
  readonly staple?: ((certDer: Buffer) => Buffer | undefined) | undefined;
}

/**
 * The head must arrive within the whole request's limit too. node:http, given a requestTimeout
 * below headersTimeout, silently swaps the two (its connections check), so that `requestTimeout:
 * 10s` with the default 30 s head limit bounded the request at 30 s; the gateway caps the head
 * limit at the request limit instead, for both engines.
 */
export function effectiveHeadersTimeout(server: { readonly headersTimeout: number; readonly requestTimeout: number }): number {
  return server.requestTimeout > 0 ? Math.min(server.headersTimeout, server.requestTimeout) : server.headersTimeout;
}

/** The Node server settings a reload may change on a running listener. */
function applyServerSettings(srv: HttpsServer, config: GatewayConfig): void {
  srv.keepAliveTimeout = config.server.keepAliveTimeout;
  srv.requestTimeout = config.server.requestTimeout;
  srv.headersTimeout = effectiveHeadersTimeout(config.server);
  // One more than the limit, so that a request over it is seen (and refused with 431) rather
  // than silently truncated: Node drops header lines past maxHeadersCount, Content-Length
  // included.
  srv.maxHeadersCount = config.server.maxHeaders + 1;
}

/**
 * Puts a new snapshot's listener-level state in force: the TLS context for new handshakes (server
 * certificate and key, client CA bundle, minimum version, ticket keys) and the server timeouts.
 * setSecureContext replaces the whole context, so it always gets the complete option set
 * (docs/architecture.md, "TLS facts"); live connections keep the context they were made with.
 */
export function applySnapshotToServer(srv: HttpsServer, next: RuntimeSnapshot, previous: RuntimeSnapshot): void {
  // buildSnapshot() keeps the previous options object when nothing in it changed.
  if (next.serverTls !== previous.serverTls) srv.setSecureContext({ ...next.serverTls });
  applyServerSettings(srv, next.config);
  applyStapling(srv, next.config.tls.stapling.enabled);
}

type OcspRequestListener = (cert: Buffer, issuer: Buffer | null, done: (err: Error | null, response?: Buffer) => void) => void;

/** The 'OCSPRequest' listener of each listener's server (createListener). */
const ocspListeners = new WeakMap<object, OcspRequestListener>();

/**
 * The server has an 'OCSPRequest' listener only while tls.stapling is enabled. Node turns on
 * OpenSSL's certificate callback for every connection of a server that has one (lib/internal/tls/
 * wrap.js: `enableCertCb()` when `listenerCount('OCSPRequest') > 0`, read as each connection
 * starts), and that callback pauses every handshake for a round trip into JavaScript
 * (`oncertcb` → `requestOCSP` → `certCbDone`), whether the client asked for a staple or not. With
 * stapling off (the default) that was a cost per handshake for nothing (bench/README.md, "What a
 * handshake costs the gateway"). A reload that turns stapling on or off adds or removes the
 * listener; connections made from then on follow it.
 */
function applyStapling(srv: HttpsServer, enabled: boolean): void {
  const listener = ocspListeners.get(srv);
  if (listener === undefined) return;
  const attached = srv.listeners('OCSPRequest').includes(listener);
  if (enabled && !attached) srv.on('OCSPRequest', listener);
  else if (!enabled && attached) srv.off('OCSPRequest', listener);
}

/** node:http2's secure server for both protocols, or node:https when listen.http2 is false. */
function createServer(config: GatewayConfig, runtime: Runtime, handler: Http1Handler): HttpsServer {
  const common = {
    ...runtime.current.serverTls,
    handshakeTimeout: config.tls.handshakeTimeout,
    maxHeaderSize: config.server.maxHeaderSize,
    // The gateway refuses a missing Host itself (admit()), in its own format; Node's answer is bare.
    requireHostHeader: false,
    // Nagle's algorithm off on every client connection. node:https does this by default; node:http2's
    // secure server does not, and there a response larger than a few TLS records waited for the
    // client's delayed ACK (about 40 ms on Linux): 64 KiB GETs through the gateway ran at a third of
    // the node floor's rate with the gateway idle half the time (bench/README.md, issue 14).
    noDelay: true,
  };
  if (!config.listen.http2) return leanHttp1(config, runtime, checkedEverySecond(createHttpsServer(common, handler.onRequest)), handler);
  const limits = config.server.http2;
  const srv = createHttp2Server(
    {
      ...common,
      allowHTTP1: true,
      settings: {
        maxConcurrentStreams: limits.maxConcurrentStreams,
        maxHeaderListSize: config.server.maxHeaderSize,
        enablePush: false,
      },
      // Pairs beyond server.maxHeaders (plus the four pseudo-headers and one more, so that a list
      // just over the limit gets the 431 answer of admit()) are refused by nghttp2 itself.
      maxHeaderListPairs: config.server.maxHeaders + 5,
    },
    handler.onRequest as unknown as (req: Http2ServerRequest, res: Http2ServerResponse) => void,
  );
  // Its HTTP/1.1 side is node:http's connection handling, which reads these limits from the server
  // object; on Node 20 node:http2 does not copy them there from the options (Node 24 does).
  const http1 = srv as typeof srv & { maxHeaderSize: number; requireHostHeader: boolean };
  http1.maxHeaderSize = config.server.maxHeaderSize;
  http1.requireHostHeader = false;
  // The gateway's handlers use node:http's API, which the HTTP/2 compatibility layer mirrors. The
  // type is the one both sides' handlers are written against.
  return leanHttp1(config, runtime, checkedEverySecond(srv as unknown as HttpsServer), handler);
}

/**
 * node:http enforces server.headersTimeout and server.requestTimeout by sweeping its connections
 * every connectionsCheckingInterval (30 s by default, read when the server starts listening), so
 * a head that never ends was held up to 30 s past headersTimeout. Every second instead: the sweep
 * is node:http's own walk over its list of connections in C++.
 */
function checkedEverySecond(srv: HttpsServer): HttpsServer {
  (srv as HttpsServer & { connectionsCheckingInterval: number }).connectionsCheckingInterval = 1_000;
  return srv;
}

/**
 * With `server.engine: lean` (the default), HTTP/1.1 connections (ALPN http/1.1, or none) are served by the lean
 * connection handling (lean-http1-connection.ts) instead of node:http's: Node's own
 * 'secureConnection' listeners keep the h2 ones. The server's closeIdleConnections and
 * closeAllConnections (Fastify's close, the drain's timeout) reach the lean connections too.
 */
function leanHttp1(config: GatewayConfig, runtime: Runtime, srv: HttpsServer, handler: Http1Handler): HttpsServer {
  if (config.server.engine !== 'lean') return srv;
  // Read several times per request: derived once per configuration in force, not per call.
  let from: GatewayConfig['server'] | null = null;
  let settings!: LeanHttp1Settings;
  const lean = new LeanHttp1Connections(srv, () => {
    const s = runtime.current.config.server;
    if (s !== from) {
      from = s;
      // One line over server.maxHeaders is delivered, so that admit() answers it (as with node:http).
      settings = { maxHeaderSize: s.maxHeaderSize, maxHeaderLines: s.maxHeaders + 1, headersTimeout: effectiveHeadersTimeout(s), requestTimeout: s.requestTimeout, keepAliveTimeout: s.keepAliveTimeout };
    }
    return settings;
  }, handler.lean);
  const nodeListeners = srv.listeners('secureConnection') as ((socket: TLSSocket) => void)[];
  srv.removeAllListeners('secureConnection');
  srv.on('secureConnection', (socket: TLSSocket) => {
    if (socket.alpnProtocol === 'h2') for (const l of nodeListeners) l.call(srv, socket);
    else lean.serve(socket);
  });
  const closeIdle = srv.closeIdleConnections?.bind(srv);
  const closeAll = srv.closeAllConnections?.bind(srv);
  srv.closeIdleConnections = () => {
    closeIdle?.();
    lean.closeIdle();
  };
  srv.closeAllConnections = () => {
    closeAll?.();
    lean.closeAll();
  };
  return srv;
}

export function createListener(deps: ListenerDeps): GatewayApp {
  const { config, logger, runtime, registry, handler, metrics } = deps;
  const app: GatewayApp = Fastify<HttpsServer, IncomingMessage, ServerResponse, Logger>({
    loggerInstance: logger,
    logController: new LogController({ disableRequestLogging: true }),
    serverFactory: () => {
      const srv = createServer(config, runtime, handler);
      applyServerSettings(srv, config);
      // Without these listeners Node answers `Expect: 100-continue` before the gateway has
      // decided, and any other expectation with a bare 417.
      srv.on('checkContinue', handler.onCheckContinue);
      srv.on('checkExpectation', handler.onRequest);
      srv.on('connect', handler.onConnect);
      return srv;
    },
    // Requests Node's parser refuses (framing errors, oversized heads, header timeouts) get the
    // gateway's own answer instead of Fastify's or Node's bare one.
    clientErrorHandler: handler.onClientError,
  });

  // Every TCP connection, from before its handshake: a drain that times out cuts these too.
  app.server.on('connection', (socket: Socket) => registry.addTransport(socket));
  // Before node:http2's own listener creates the session: requests and sessions find the socket.
  app.server.prependListener('secureConnection', markClientSocket);
  app.server.on('session', (session: ServerHttp2Session) => {
    const limits = runtime.current.config.server;
    registry.attachSession(clientSocketOf(session), session);
    guardSession(session, { resetBurst: limits.http2.resetBurst, resetRate: limits.http2.resetRate, idleTimeout: limits.keepAliveTimeout }, logger, metrics);
  });
  app.server.on('secureConnection', (socket: TLSSocket) => {
    registry.add(socket);
    // A bug while judging one connection costs that connection, never the process.
    handler.guarded(socket, () => judgeConnection(socket));
  });

  /** While the connection lives, its certificate's OCSP answer is refreshed before it expires. */
  function holdOcspAnswer(snapshot: RuntimeSnapshot, socket: TLSSocket, links: AcceptedConnection['links']): void {
    const store = snapshot.ocsp.clients;
    const leaf = links[0];
    if (store === null || leaf === undefined || leaf.issuer === null) return;
    socket.once('close', store.hold(leaf.issuer, leaf.serial));
  }

  function judgeConnection(socket: TLSSocket): void {
    const snapshot = runtime.current;
    const verdict = snapshot.auth.verdict(socket);
    const peer = { address: socket.remoteAddress, port: socket.remotePort };
    if (!verdict.ok) {
      metrics.clientCertRejected(verdict.code);
      logger.warn({ event: 'client-rejected', code: verdict.code, reason: verdict.reason, peer: { ...peer, subject: verdict.peerSubject, serial: verdict.peerSerial } }, 'client certificate refused');
      return;
    }
    if (snapshot.revocation.clients !== null || snapshot.ocsp.clients !== null) {
      const r = snapshot.auth.revocation(socket, verdict);
      holdOcspAnswer(snapshot, socket, verdict.links);
      // An OCSP lookup started here; the connection's first request waits for it.
      if (!r.ok && r.pending !== undefined) {
        logger.debug({ event: 'ocsp-pending', when: 'handshake', peer, identity: identityLog(verdict.identity) }, 'client certificate awaits its OCSP answer');
      } else if (!r.ok) {
        metrics.clientCertRejected(revocationCode(r));
        logger.warn({ event: 'client-revoked', code: revocationCode(r), when: 'handshake', resumed: verdict.resumed, peer, ...revocationLog(r) }, 'client certificate refused by revocation');
      } else if (r.failOpen) {
        logger.warn({ event: 'revocation-fail-open', reason: r.failOpen, peer, identity: identityLog(verdict.identity) }, 'client admitted without a current revocation status');
      }
    }
    logger.debug({ event: 'client-connected', peer, identity: identityLog(verdict.identity), resumed: verdict.resumed }, 'client connected');
  }
  // Clients that ask (status_request) get the stapler's current answer; undefined staples nothing.
  const staple = deps.staple;
  if (staple !== undefined) {
    ocspListeners.set(app.server, (cert, _issuer, done) => done(null, staple(cert)));
    applyStapling(app.server, runtime.current.config.tls.stapling.enabled);
  }
  app.server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: TLSSocket) => {
    // A peer that connects and leaves without a ClientHello (TCP health checks, port scans) shows
    // up as ECONNRESET; that is debug noise, not a handshake failure worth an info line.
    const reason = err.code ?? err.message;
    const level = reason === 'ECONNRESET' ? 'debug' : 'info';
    logger[level]({ event: 'tls-handshake-failed', reason, peer: { address: socket.remoteAddress, port: socket.remotePort } }, 'TLS handshake failed');
  });

  app.addHook('preClose', (done) => {
    handler.startClosing();
    // Fastify closes idle HTTP/1.1 connections; HTTP/2 sessions are told with GOAWAY.
    registry.closeSessionsGracefully();
    done();
  });
  return app;
}
