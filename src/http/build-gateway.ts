/**
 * The HTTP layer: assembles the gateway (TLS listener, client authentication, path normalization,
 * policy, forwarding, access log) without listening, so that tests and the CLI share one wiring.
 * One request's path: authenticate the connection -> re-check validity -> normalize the target ->
 * decide by policy -> forward to the upstream pool -> one access-log record.
 */
import { randomUUID } from 'node:crypto';
import type { AddressInfo, Socket } from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer, type ServerOptions as HttpsServerOptions } from 'node:https';
import type { TLSSocket } from 'node:tls';
import Fastify, { LogController, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { GatewayConfig } from '../config/schema.js';
import { ERRORS, type ErrorCode } from '../errors/registry.js';
import { ConnectionAuthenticator, type ConnectionVerdict } from '../identity/authenticate-connection.js';
import type { PeerIdentity } from '../identity/peer-identity.js';
import { formatXfcc } from '../identity/xfcc.js';
import { identityFromDer } from '../identity/identity-from-certificate.js';
import { recordPresentedChainLengths } from '../identity/presented-chain.js';
import { compilePolicy } from '../policy/compile-policy.js';
import { decide } from '../policy/decide.js';
import { explain } from '../policy/explain.js';
import { loadGatewayMaterial } from '../pki/gateway-material.js';
import { readFileFromDisk, type ReadFileFn, type TrustBundle } from '../pki/tls-material.js';
import { buildUpstreamRequestHeaders, RequestHeaderFilter } from '../proxy/forward-headers.js';
import { ForwardError, forwardRequest } from '../proxy/forward-request.js';
import { translateUpstreamError } from '../proxy/upstream-errors.js';
import type { Release } from '../proxy/upstream-gate.js';
import { createUpstream, type Upstream } from '../proxy/upstream-pool.js';
import type { RevocationConfig } from '../config/schema.js';
import { normalizeCrlSources } from '../revocation/crl-sources.js';
import { parseCrlFileOffThread } from '../revocation/parse-off-thread.js';
import type { RevocationSettings, RevocationVerdict } from '../revocation/revocation-policy.js';
import { RevocationStore, type ParseCrlsFn } from '../revocation/revocation-store.js';
import { hostForRouting } from './host-header.js';
import { normalizeTarget } from './normalize-path.js';
import { firstBodyBytes, watchBodyStall } from './request-body-watch.js';
import { requestIdFor } from './request-id.js';
import { respondError, respondErrorOnSocket } from './respond-error.js';

export interface GatewayDeps {
  readonly config: GatewayConfig;
  readonly logger: Logger;
  /** Wall clock in ms; injectable so validity re-checks can be tested. */
  readonly now?: () => number;
  readonly readFile?: ReadFileFn;
  /** CRL file parser; the default parses big files off the event loop. */
  readonly parseCrls?: ParseCrlsFn;
}

export interface Gateway {
  readonly app: FastifyInstance<HttpsServer, IncomingMessage, ServerResponse, Logger>;
  /** Revocation stores: `clients` and one per upstream that has CRL sources. */
  readonly revocation: ReadonlyMap<string, RevocationStore>;
  /** Starts listening on config.listen; resolves with the bound address. */
  listen(): Promise<AddressInfo>;
  /** Re-reads every CRL source now (SIGHUP); a bad file keeps the last good state. */
  reload(reason: string): Promise<void>;
  close(): Promise<void>;
}

function revocationSettings(r: RevocationConfig): RevocationSettings {
  return { scope: r.scope, missing: r.missing, stale: r.stale, graceMs: r.grace ?? 0 };
}

/** Big CRLs (over 1 MiB) are parsed in a worker thread so a reload never stalls traffic. */
const parseDefault: ParseCrlsFn = (bytes) => parseCrlFileOffThread(bytes);

function hasBody(req: IncomingMessage): boolean {
  const te = req.headers['transfer-encoding'];
  if (te !== undefined) return true;
  const cl = req.headers['content-length'];
  return cl !== undefined && cl !== '0';
}

function identityLog(id: PeerIdentity) {
  return {
    subject: id.subject.rfc4514,
    issuer: id.issuer.rfc4514,
    serial: id.serial,
    fingerprint: id.fingerprint256,
    spiffe: id.spiffe?.uri,
    ...(id.san.dns.length > 0 ? { dns: id.san.dns } : {}),
  };
}

export async function buildGateway(deps: GatewayDeps): Promise<Gateway> {
  const { config, logger } = deps;
  const now = deps.now ?? Date.now;
  const read = deps.readFile ?? readFileFromDisk;
  const nowDate = new Date(now());

  // Load and check everything before anything listens: a bad file stops startup, naming its key.
  const material = await loadGatewayMaterial(config, read, nowDate);
  const { server, clientCA } = material;
  const policy = compilePolicy(config.routes, { caseSensitive: config.server.paths.caseSensitive });
  const parse = deps.parseCrls ?? parseDefault;
  const stores = new Map<string, RevocationStore>();
  const liveSockets = new Set<TLSSocket>();
  const makeStore = (domain: string, key: string, sources: GatewayConfig['tls']['crl'], rev: RevocationConfig, trust: TrustBundle['certs'], onChange?: () => void) =>
    new RevocationStore({
      domain,
      sources: normalizeCrlSources(sources, key),
      trust,
      logger,
      now,
      parse,
      warnBeforeMs: rev.warnBefore,
      pollIntervalMs: rev.pollInterval,
      ...(onChange ? { onChange } : {}),
    });
  const clientStore = config.tls.crl && config.tls.crl.length > 0 ? makeStore('clients', 'tls.crl', config.tls.crl, config.tls.revocation, clientCA.certs, () => sweepLiveConnections()) : null;
  if (clientStore) stores.set('clients', clientStore);
  else logger.warn({ event: 'revocation-off', domain: 'clients' }, 'tls.crl is not set: client certificates are not checked for revocation');
  const upstreams = new Map<string, Upstream>();
  for (const [name, u] of Object.entries(config.upstreams)) {
    let store: RevocationStore | null = null;
    if (u.tls.crl && u.tls.crl.length > 0) {
      store = makeStore(`upstream ${name}`, `upstreams.${name}.tls.crl`, u.tls.crl, u.tls.revocation, material.upstreams.get(name)!.ca.certs, () => upstreams.get(name)?.renew());
      stores.set(`upstream ${name}`, store);
    }
    upstreams.set(name, createUpstream(name, u, material.upstreams.get(name)!, store ? { store, settings: revocationSettings(u.tls.revocation), now } : null));
  }
  for (const store of stores.values()) await store.loadInitial();
  // tls.maxChainLength needs the number of certificates each client presented. Node 24.21 reads
  // them itself during the handshake and discards them (nodejs/node#65579); this keeps the count,
  // process-wide and idempotent, observing a call Node already makes (src/identity/presented-chain.ts).
  recordPresentedChainLengths();
  // XFCC's By= names the gateway itself: the SPIFFE ID of its server certificate, if it has one.
  const byUri = identityFromDer(server.leaf.raw).spiffe?.uri ?? null;
  const auth = new ConnectionAuthenticator({
    verifyDepth: config.tls.verifyDepth,
    maxChainLength: config.tls.maxChainLength,
    now,
    trust: clientCA.certs,
    revocation: clientStore ? { store: clientStore, settings: revocationSettings(config.tls.revocation) } : null,
  });

  function revocationLog(v: Extract<RevocationVerdict, { ok: false }>) {
    return { serial: v.serial, subject: v.subject, issuer: v.issuer, reason: v.reason, revokedAt: v.revokedAt?.toISOString() ?? null, crlNumber: v.crlNumber };
  }

  /**
   * After the client index changed, every live connection is judged again; those whose chain is
   * now revoked (or whose revocation status can no longer be established) are closed. Unaffected
   * connections and their in-flight requests carry on untouched.
   */
  function sweepLiveConnections(): void {
    for (const socket of liveSockets) {
      const v = auth.peek(socket);
      if (v === undefined || !v.ok) continue;
      const r = auth.revocation(socket, v);
      if (r.ok) continue;
      logger.warn(
        { event: 'client-revoked', code: r.revoked ? 'GW_ERR_CLIENT_CERT_REVOKED' : 'GW_ERR_CLIENT_CERT_REVOCATION_UNKNOWN', when: 'live-connection', peer: { address: socket.remoteAddress, port: socket.remotePort }, ...revocationLog(r) },
        'closing a live connection after a CRL update',
      );
      socket.destroy();
    }
  }

  /**
   * What the data plane decided for one request, before anything is written. `forward` requests
   * are streamed to the upstream; every other outcome is one of the gateway's own answers.
   */
  type Admission =
    | {
        readonly kind: 'forward';
        readonly requestId: string;
        readonly started: bigint;
        readonly log: Logger;
        readonly xfcc: string;
        readonly method: string;
        readonly path: string;
        readonly query: string;
        readonly route: string;
        readonly rule: string | null;
        readonly upstream: Upstream;
      }
    | { readonly kind: 'refuse-connection'; readonly requestId: string; readonly verdict: Extract<ConnectionVerdict, { ok: false }> }
    | Refusal;

  interface Refusal {
    readonly kind: 'refuse';
    readonly requestId: string;
    readonly started: bigint;
    readonly log: Logger;
    readonly code: ErrorCode;
    readonly fields: Record<string, unknown>;
    /** Logged at warn before the refusal line (revocation refusals). */
    readonly warn?: Record<string, unknown>;
    /** Close the connection after answering (framing is in doubt, or the client is not trusted). */
    readonly close?: boolean;
  }

  let closing = false;
  const pathOptions = { allowSemicolons: config.server.paths.allowSemicolons, allowTrimmableSegments: config.server.paths.allowTrimmableSegments };
  const headerFilter = new RequestHeaderFilter(config.server.stripRequestHeaders);
  const maxHeaderFields = config.server.maxHeaders * 2;
  const bodyTimeout = config.server.bodyTimeout;

  const tlsOptions: HttpsServerOptions = {
    key: server.keyPem,
    cert: server.pem,
    ca: [...clientCA.pems],
    // Client certificates are requested and verified by OpenSSL, but a failed verification does
    // not abort the handshake: the HTTP layer refuses every request on such a connection with 401
    // and a code naming the reason, then closes it. With rejectUnauthorized: true Node would cut
    // the connection with a bare reset and the reason would be lost (docs/architecture.md, "TLS
    // facts"). The test/security suite pins that no unverified connection ever reaches routing.
    requestCert: true,
    rejectUnauthorized: false,
    minVersion: config.tls.minVersion,
    handshakeTimeout: config.tls.handshakeTimeout,
    maxHeaderSize: config.server.maxHeaderSize,
    // The gateway refuses a missing Host itself (admit()), in its own format; Node's answer is bare.
    requireHostHeader: false,
  };
  const app: FastifyInstance<HttpsServer, IncomingMessage, ServerResponse, Logger> = Fastify<HttpsServer, IncomingMessage, ServerResponse, Logger>({
    loggerInstance: logger,
    logController: new LogController({ disableRequestLogging: true }),
    // The listener is created here and every request goes to the data plane (onRequest below);
    // Fastify owns the server's lifecycle (listen, close, idle-connection handling).
    serverFactory: () => {
      const srv = createHttpsServer(tlsOptions, onRequest);
      srv.keepAliveTimeout = config.server.keepAliveTimeout;
      srv.requestTimeout = config.server.requestTimeout;
      srv.headersTimeout = config.server.headersTimeout;
      // One more than the limit, so that a request over it is seen (and refused with 431) rather
      // than silently truncated: Node drops header lines past maxHeadersCount, Content-Length
      // included.
      srv.maxHeadersCount = config.server.maxHeaders + 1;
      // Without these listeners Node answers `Expect: 100-continue` before the gateway has
      // decided, and any other expectation with a bare 417.
      srv.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => onRequest(req, res, true));
      srv.on('checkExpectation', onRequest);
      srv.on('connect', onConnectMethod);
      return srv;
    },
    // Requests Node's parser refuses (framing errors, oversized heads, header timeouts) get the
    // gateway's own answer instead of Fastify's or Node's bare one.
    clientErrorHandler: onClientError,
  });

  // Every TLS connection is judged once, when the handshake completes, so a refusal is logged
  // even if the client never sends a request.
  app.server.on('secureConnection', (socket: TLSSocket) => {
    liveSockets.add(socket);
    socket.once('close', () => liveSockets.delete(socket));
    guarded(socket, () => judgeConnection(socket));
  });

  function judgeConnection(socket: TLSSocket): void {
    const verdict = auth.verdict(socket);
    if (!verdict.ok) {
      logger.warn(
        { event: 'client-rejected', code: verdict.code, reason: verdict.reason, peer: { address: socket.remoteAddress, port: socket.remotePort, subject: verdict.peerSubject, serial: verdict.peerSerial } },
        'client certificate refused',
      );
    } else if (clientStore) {
      const r = auth.revocation(socket, verdict);
      if (!r.ok) {
        logger.warn(
          { event: 'client-revoked', code: r.revoked ? 'GW_ERR_CLIENT_CERT_REVOKED' : 'GW_ERR_CLIENT_CERT_REVOCATION_UNKNOWN', when: 'handshake', resumed: verdict.resumed, peer: { address: socket.remoteAddress, port: socket.remotePort }, ...revocationLog(r) },
          'client certificate refused by revocation',
        );
      } else if (r.failOpen) {
        logger.warn({ event: 'revocation-fail-open', reason: r.failOpen, peer: { address: socket.remoteAddress, port: socket.remotePort }, identity: identityLog(verdict.identity) }, 'client admitted without a current revocation status');
      }
      logger.debug({ event: 'client-connected', peer: { address: socket.remoteAddress, port: socket.remotePort }, identity: identityLog(verdict.identity), resumed: verdict.resumed }, 'client connected');
    } else {
      logger.debug({ event: 'client-connected', peer: { address: socket.remoteAddress, port: socket.remotePort }, identity: identityLog(verdict.identity), resumed: verdict.resumed }, 'client connected');
    }
  }
  app.server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: TLSSocket) => {
    // A peer that connects and leaves without a ClientHello (TCP health checks, port scans) shows
    // up as ECONNRESET; that is debug noise, not a handshake failure worth an info line.
    const reason = err.code ?? err.message;
    const level = reason === 'ECONNRESET' ? 'debug' : 'info';
    logger[level]({ event: 'tls-handshake-failed', reason, peer: { address: socket.remoteAddress, port: socket.remotePort } }, 'TLS handshake failed');
  });

  /**
   * What a connection's identity contributes to every request, computed once per connection: the
   * XFCC header value and a child logger whose client bindings pino serializes once.
   */
  interface ConnectionContext {
    readonly xfcc: string;
    readonly log: Logger;
  }
  const contexts = new WeakMap<PeerIdentity, ConnectionContext>();
  function contextFor(identity: PeerIdentity): ConnectionContext {
    let ctx = contexts.get(identity);
    if (ctx === undefined) {
      ctx = { xfcc: formatXfcc(identity, { by: byUri }), log: logger.child({ client: identityLog(identity) }) };
      contexts.set(identity, ctx);
    }
    return ctx;
  }

  /**
   * The whole decision for one request, from the raw request alone: connection verdict, validity,
   * revocation against the index in force, request framing, target normalization, Host, policy.
   * Pure apart from the per-connection caches; writes nothing.
   */
  function admit(raw: IncomingMessage, requestId: string): Admission {
    const started = process.hrtime.bigint();
    const socket = raw.socket as TLSSocket;
    const verdict = auth.verdict(socket);
    if (!verdict.ok) return { kind: 'refuse-connection', requestId, verdict };
    const identity = verdict.identity;
    const ctx = contextFor(identity);
    const log = ctx.log;
    const expired = auth.checkStillValid(identity);
    if (expired !== null) return { kind: 'refuse', requestId, started, log, code: expired, fields: {}, close: true };
    // Per request, against the index in force: a session resumed after a revocation, or a
    // keep-alive connection opened before it, gets no further than this.
    const rev = auth.revocation(socket, verdict);
    if (!rev.ok) {
      const code = rev.revoked ? 'GW_ERR_CLIENT_CERT_REVOKED' : 'GW_ERR_CLIENT_CERT_REVOCATION_UNKNOWN';
      return {
        kind: 'refuse',
        requestId,
        started,
        log,
        code,
        close: true,
        fields: { resumed: verdict.resumed },
        warn: { event: 'client-revoked', code, when: 'request', reqId: requestId, resumed: verdict.resumed, peer: { address: socket.remoteAddress }, ...revocationLog(rev) },
      };
    }
    // HTTP/0.9-style request lines (no version) and versions other than 1.0 and 1.1 are not HTTP
    // this gateway speaks on this listener; Node's parser lets them through.
    if (raw.httpVersionMajor !== 1 || raw.httpVersionMinor > 1) {
      return { kind: 'refuse', requestId, started, log, code: 'GW_ERR_REQUEST_INVALID', fields: { reason: 'http-version', version: raw.httpVersion }, close: true };
    }
    if (raw.rawHeaders.length > maxHeaderFields) {
      return { kind: 'refuse', requestId, started, log, code: 'GW_ERR_HEADERS_TOO_LARGE', fields: { reason: 'too-many-headers', limit: config.server.maxHeaders }, close: true };
    }
    const expect = raw.headers.expect;
    if (expect !== undefined && expect.toLowerCase() !== '100-continue') {
      return { kind: 'refuse', requestId, started, log, code: 'GW_ERR_EXPECTATION_FAILED', fields: {}, close: true };
    }
    const target = normalizeTarget(raw.url ?? '', pathOptions);
    if (!target.ok) return { kind: 'refuse', requestId, started, log, code: 'GW_ERR_PATH_INVALID', fields: { reason: target.reason } };
    const host = hostForRouting(raw.headers.host);
    if (host === undefined || (host === null && raw.httpVersionMinor === 1) || countHost(raw.rawHeaders) > 1) {
      return { kind: 'refuse', requestId, started, log, code: 'GW_ERR_HOST_INVALID', fields: {} };
    }
    const method = raw.method ?? 'GET';
    const attrs = { method, host, path: target.path };
    const decision = decide(policy, identity, attrs);
    if (decision.kind === 'no-route') {
      return { kind: 'refuse', requestId, started, log, code: 'GW_ERR_ROUTE_NOT_FOUND', fields: { path: target.path, decision: 'no-route' } };
    }
    if (decision.kind === 'deny') {
      return {
        kind: 'refuse',
        requestId,
        started,
        log,
        code: 'GW_ERR_POLICY_DENIED',
        fields: { path: target.path, route: decision.route.name, decision: 'deny', rule: decision.rule, reason: decision.reason, policy: explain(policy, identity, attrs) },
      };
    }
    const upstream = upstreams.get(decision.route.upstream);
    if (upstream === undefined) {
      // compilePolicy checks every route's upstream; fail closed should that ever change.
      return { kind: 'refuse', requestId, started, log, code: 'GW_ERR_INTERNAL', fields: { why: 'route names an unknown upstream', route: decision.route.name } };
    }
    return { kind: 'forward', requestId, started, log, xfcc: ctx.xfcc, method, path: target.path, query: target.query, route: decision.route.name, rule: decision.rule, upstream };
  }

  /** Answers a refused request with the gateway's own error and logs it. */
  function refuse(raw: IncomingMessage, res: ServerResponse, a: Exclude<Admission, { kind: 'forward' }>): void {
    // A refused request's body is never read: after the answer the connection closes instead of
    // draining what could be gigabytes.
    const unreadBody = hasBody(raw) && !raw.complete;
    if (a.kind === 'refuse-connection') {
      const v = a.verdict;
      logger.info(
        { reqId: a.requestId, method: raw.method, status: 401, code: v.code, reason: v.reason, peer: { address: raw.socket?.remoteAddress, subject: v.peerSubject, serial: v.peerSerial } },
        'request refused',
      );
      respondError(res, v.code, a.requestId, { close: true });
      return;
    }
    if (a.warn) a.log.warn(a.warn, 'request refused by revocation');
    const status = respondError(res, a.code, a.requestId, { close: a.close === true || unreadBody });
    a.log.info({ reqId: a.requestId, method: raw.method, status, code: a.code, durationMs: elapsedMs(a.started), ...a.fields }, 'request refused');
  }

  /**
   * The data plane: every request on the listener starts here. Allowed requests stream straight
   * to the upstream; everything else gets the gateway's own answer. Nothing thrown here may reach
   * the event loop: a bug costs the one request (500, logged, connection closed), never the process.
   */
  function onRequest(req: IncomingMessage, res: ServerResponse, expectsContinue = false): void {
    let requestId = '';
    try {
      requestId = requestIdFor(req);
      if (closing) {
        logger.info({ reqId: requestId, method: req.method, status: 503, code: 'GW_ERR_SHUTTING_DOWN' }, 'request refused');
        respondError(res, 'GW_ERR_SHUTTING_DOWN', requestId, { close: true });
        return;
      }
      const a = admit(req, requestId);
      if (a.kind !== 'forward') return refuse(req, res, a);
      // Only now, with the request admitted, is the client told to send its body.
      if (expectsContinue) res.writeContinue();
      proxy(req, res, a).catch((err: unknown) => internalFailure(res, requestId, err));
    } catch (err) {
      internalFailure(res, requestId || randomUUID(), err);
    }
  }

  function internalFailure(res: ServerResponse, requestId: string, err: unknown): void {
    logger.error({ reqId: requestId, code: 'GW_ERR_INTERNAL', err }, 'request failed');
    try {
      respondError(res, 'GW_ERR_INTERNAL', requestId, { close: true });
    } catch {
      res.destroy();
    }
  }

  /** CONNECT: the gateway is not a forward proxy. Nothing about the request is forwarded. */
  function onConnectMethod(req: IncomingMessage, socket: Socket): void {
    guarded(socket, () => refuseConnectMethod(req, socket));
  }

  function refuseConnectMethod(req: IncomingMessage, socket: Socket): void {
    const requestId = randomUUID();
    logger.info({ reqId: requestId, method: req.method, status: 501, code: 'GW_ERR_METHOD_NOT_SUPPORTED', peer: { address: socket.remoteAddress } }, 'request refused');
    respondErrorOnSocket(socket, 'GW_ERR_METHOD_NOT_SUPPORTED', requestId);
  }

  /** A request Node's HTTP parser refused: framing errors, oversized heads, header timeouts. */
  function onClientError(err: NodeJS.ErrnoException, socket: Socket): void {
    guarded(socket, () => answerClientError(err, socket));
  }

  /** Runs a socket-level handler; a throw costs that connection (logged), never the process. */
  function guarded(socket: Socket, handler: () => void): void {
    try {
      handler();
    } catch (err) {
      logger.error({ event: 'connection-failed', code: 'GW_ERR_INTERNAL', err, peer: { address: socket.remoteAddress } }, 'connection handler failed');
      socket.destroy();
    }
  }

  function answerClientError(err: NodeJS.ErrnoException, socket: Socket): void {
    const code: ErrorCode =
      err.code === 'HPE_HEADER_OVERFLOW' ? 'GW_ERR_HEADERS_TOO_LARGE' : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 'GW_ERR_REQUEST_TIMEOUT' : 'GW_ERR_REQUEST_INVALID';
    // Once part of a response is on the wire (a pipelined request after one being answered), no
    // second status line can follow it: close, as Node does.
    const inProgress = (socket as Socket & { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
    // A client that left mid-request (reset, or end of stream inside a request) is not refusing
    // anything; there is no one to answer.
    if (err.code === 'ECONNRESET' || err.code === 'HPE_INVALID_EOF_STATE' || !socket.writable || inProgress?.headersSent === true) {
      logger.debug({ event: 'client-left', reason: err.code ?? err.message, peer: { address: socket.remoteAddress } }, 'client left mid-request');
      socket.destroy();
      return;
    }
    const requestId = randomUUID();
    logger.info({ reqId: requestId, status: ERRORS[code].status, code, reason: err.code ?? err.message, peer: { address: socket.remoteAddress } }, 'request refused');
    respondErrorOnSocket(socket, code, requestId);
  }

  /**
   * Streams one admitted request upstream and the response back, then writes its access record.
   * A request with a body takes an upstream connection only once its body starts to arrive, and
   * its body may not stall longer than server.bodyTimeout: a client that announces a body and
   * sends none cannot hold the upstream's connections.
   */
  async function proxy(raw: IncomingMessage, res: ServerResponse, a: Extract<Admission, { kind: 'forward' }>): Promise<void> {
    const { log, upstream, requestId } = a;
    const access = { reqId: requestId, method: a.method, path: a.path, route: a.route, rule: a.rule, upstream: upstream.name, decision: 'allow' };
    const body = hasBody(raw) ? raw : null;
    const stall = body !== null && !raw.complete ? watchBodyStall(raw, res, bodyTimeout) : null;
    const fail = (code: ErrorCode, fields: Record<string, unknown>, headers?: Record<string, string>) => {
      log.warn({ ...access, code, durationMs: elapsedMs(a.started), ...fields }, code === 'GW_ERR_REQUEST_TIMEOUT' ? 'request refused' : 'upstream failed');
      respondError(res, code, requestId, { close: body !== null && !raw.complete, ...(headers ? { headers } : {}) });
    };
    const clientLeft = () => {
      stall?.stop();
      res.destroy();
      log.info({ ...access, status: 499, clientAborted: true, durationMs: elapsedMs(a.started) }, 'request');
    };
    if (stall !== null && raw.readableLength === 0) {
      const outcome = await firstBodyBytes(raw, res, stall.signal);
      if (outcome === 'client-left') return clientLeft();
      if (outcome === 'stalled') return fail('GW_ERR_REQUEST_TIMEOUT', { reason: 'body-stalled', afterMs: bodyTimeout });
    }
    // Most requests find a free slot: no promise or closure on that path.
    const release = upstream.gate.tryAcquire() ?? (await acquireUpstream(upstream, res));
    if (release === 'client-left') return clientLeft();
    if (release === 'overloaded') {
      stall?.stop();
      return fail('GW_ERR_UPSTREAM_OVERLOADED', { waitedMs: elapsedMs(a.started), active: upstream.gate.active, waiting: upstream.gate.waiting }, { 'retry-after': '1' });
    }
    const headers = buildUpstreamRequestHeaders(raw.rawHeaders, {
      filter: headerFilter,
      clientAddress: raw.socket?.remoteAddress ?? '',
      originalHost: raw.headers.host ?? null,
      requestId,
      xfcc: a.xfcc,
    });
    try {
      const result = await forwardRequest(upstream.pool, {
        method: a.method,
        path: a.path + a.query,
        headers,
        body,
        res,
        requestId,
        ...(stall ? { signal: stall.signal } : {}),
      });
      log.info(
        {
          ...access,
          status: result.status,
          bytesOut: result.bytesOut,
          durationMs: elapsedMs(a.started),
          ...(result.error ? { cut: result.error.message, clientAborted: result.clientAborted } : {}),
        },
        'request',
      );
    } catch (err) {
      if (err instanceof ForwardError && err.clientAborted) return clientLeft();
      if (stall?.signal.aborted) return fail('GW_ERR_REQUEST_TIMEOUT', { reason: 'body-stalled', afterMs: bodyTimeout });
      const gwErr = translateUpstreamError(err instanceof ForwardError ? err.cause : err, upstream.name);
      const cause = gwErr.cause as { code?: unknown; message?: unknown } | undefined;
      fail(gwErr.code, { upstreamError: cause?.code, upstreamMessage: cause?.message });
    } finally {
      release();
      stall?.stop();
    }
  }

  /** Waits for an upstream slot; 'overloaded' after the upstream's timeouts.queue. */
  function acquireUpstream(upstream: Upstream, res: ServerResponse): Promise<Release | 'overloaded' | 'client-left'> {
    return new Promise((resolve) => {
      const onClose = () => {
        cancel();
        resolve('client-left');
      };
      let granted = false;
      const cancel = upstream.gate.acquire(
        (release) => {
          granted = true;
          res.off('close', onClose);
          if (res.destroyed) {
            release();
            resolve('client-left');
          } else resolve(release);
        },
        () => {
          res.off('close', onClose);
          resolve('overloaded');
        },
      );
      // The gate may have granted synchronously; only a waiting request listens for the client.
      if (!granted) res.once('close', onClose);
    });
  }

  app.addHook('preClose', (done) => {
    closing = true;
    done();
  });

  for (const store of stores.values()) store.start();

  return {
    app,
    revocation: stores,
    async listen() {
      // Fastify cannot tell that the server it was handed speaks TLS; its line would say http://.
      await app.listen({ host: config.listen.host, port: config.listen.port, listenTextResolver: (address) => `Server listening at ${address.replace(/^http:/, 'https:')}` });
      return app.server.address() as AddressInfo;
    },
    async reload(reason: string) {
      await Promise.all([...stores.values()].map((s) => s.reload(reason)));
    },
    async close() {
      await Promise.all([...stores.values()].map((s) => s.stop()));
      await app.close();
      await Promise.all([...upstreams.values()].map((u) => u.close()));
    },
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

function elapsedMs(started: bigint): number {
  return Number(process.hrtime.bigint() - started) / 1e6;
}
