/**
 * The HTTP layer: assembles the gateway (TLS listener, client authentication, path normalization,
 * policy, forwarding, access log) without listening, so that tests and the CLI share one wiring.
 * One request's path: authenticate the connection -> re-check validity -> normalize the target ->
 * decide by policy -> forward to the upstream pool -> one access-log record.
 */
import type { AddressInfo } from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer, type ServerOptions as HttpsServerOptions } from 'node:https';
import type { TLSSocket } from 'node:tls';
import fastifyHelmet from '@fastify/helmet';
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { GatewayConfig } from '../config/schema.js';
import { GatewayError, type ErrorCode } from '../errors/registry.js';
import { ConnectionAuthenticator, type ConnectionVerdict } from '../identity/authenticate-connection.js';
import type { PeerIdentity } from '../identity/peer-identity.js';
import { formatXfcc } from '../identity/xfcc.js';
import { identityFromDer } from '../identity/identity-from-certificate.js';
import { compilePolicy } from '../policy/compile-policy.js';
import { decide } from '../policy/decide.js';
import { explain } from '../policy/explain.js';
import { loadGatewayMaterial } from '../pki/gateway-material.js';
import { readFileFromDisk, type ReadFileFn, type TrustBundle } from '../pki/tls-material.js';
import { buildUpstreamRequestHeaders } from '../proxy/forward-headers.js';
import { ForwardError, forwardRequest } from '../proxy/forward-request.js';
import { translateUpstreamError } from '../proxy/upstream-errors.js';
import { createUpstream, type Upstream } from '../proxy/upstream-pool.js';
import type { RevocationConfig } from '../config/schema.js';
import { normalizeCrlSources } from '../revocation/crl-sources.js';
import { parseCrlFileOffThread } from '../revocation/parse-off-thread.js';
import type { RevocationSettings, RevocationVerdict } from '../revocation/revocation-policy.js';
import { RevocationStore, type ParseCrlsFn } from '../revocation/revocation-store.js';
import { hostForRouting } from './host-header.js';
import { normalizeTarget } from './normalize-path.js';
import { sendError } from './reply-error.js';
import { requestIdFor } from './request-id.js';

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
  const policy = compilePolicy(config.routes);
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
  // XFCC's By= names the gateway itself: the SPIFFE ID of its server certificate, if it has one.
  const byUri = identityFromDer(server.leaf.raw).spiffe?.uri ?? null;
  const auth = new ConnectionAuthenticator({
    verifyDepth: config.tls.verifyDepth,
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
   * are streamed by the data plane itself; every other outcome is answered through Fastify, so the
   * gateway's own responses share one error format and @fastify/helmet's headers.
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
    | {
        readonly kind: 'refuse';
        readonly requestId: string;
        readonly started: bigint;
        readonly log: Logger;
        readonly code: ErrorCode;
        readonly fields: Record<string, unknown>;
        /** Logged at warn before the refusal line (revocation refusals). */
        readonly warn?: Record<string, unknown>;
      };

  /**
   * Admissions handed from the data plane to Fastify (refusals, and upstream failures that still
   * need an error response). Keyed by the request object, so nothing outlives its request.
   */
  const handedOver = new WeakMap<IncomingMessage, Exclude<Admission, { kind: 'forward' }>>();
  let closing = false;
  let fastifyHandler: ((req: IncomingMessage, res: ServerResponse) => void) | null = null;

  const tlsOptions: HttpsServerOptions = {
    key: server.keyPem,
    cert: server.pem,
    ca: [...clientCA.pems],
    // Client certificates are requested and verified by OpenSSL, but a failed verification does
    // not abort the handshake: the HTTP layer refuses every request on such a connection with 401
    // and a code naming the reason, then closes it. With rejectUnauthorized: true Node would cut
    // the connection with a bare reset and the reason would be lost (TLS-FACTS.md). The
    // test/security suite pins that no unverified connection ever reaches routing.
    requestCert: true,
    rejectUnauthorized: false,
    minVersion: config.tls.minVersion,
    handshakeTimeout: config.tls.handshakeTimeout,
    maxHeaderSize: config.server.maxHeaderSize,
  };
  const app: FastifyInstance<HttpsServer, IncomingMessage, ServerResponse, Logger> = Fastify<HttpsServer, IncomingMessage, ServerResponse, Logger>({
    loggerInstance: logger,
    // The gateway writes its own access record per request; Fastify's request lines and per-request
    // child loggers would only duplicate it and cost time on the hot path.
    logController: new LogController({ disableRequestLogging: true }),
    childLoggerFactory: (parent) => parent,
    // A request handed over by the data plane keeps the id it was admitted (and logged) with.
    genReqId: (req) => handedOver.get(req)?.requestId ?? requestIdFor(req),
    requestIdHeader: false,
    // The listener is created here so that the data plane (onRequest below) sees every request
    // first; Fastify gets the requests the gateway answers itself.
    serverFactory: (handler) => {
      fastifyHandler = handler;
      const srv = createHttpsServer(tlsOptions, onRequest);
      srv.keepAliveTimeout = config.server.keepAliveTimeout;
      srv.requestTimeout = config.server.requestTimeout;
      srv.headersTimeout = config.server.headersTimeout;
      return srv;
    },
    return503OnClosing: true,
    routerOptions: { ignoreDuplicateSlashes: false, ignoreTrailingSlash: false, maxParamLength: 8192 },
    frameworkErrors: (err, request, reply) => {
      const a = handedOver.get(request.raw) ?? admit(request.raw, request.id);
      if (a.kind !== 'forward') return refuse(a, request, reply);
      logger.info({ reqId: request.id, code: 'GW_ERR_PATH_INVALID', reason: err.code, method: request.raw.method }, 'request refused');
      return sendError(reply, 'GW_ERR_PATH_INVALID', request.id);
    },
  });

  await app.register(fastifyHelmet, { global: false });

  // Every TLS connection is judged once, when the handshake completes, so a refusal is logged
  // even if the client never sends a request.
  app.server.on('secureConnection', (socket: TLSSocket) => {
    liveSockets.add(socket);
    socket.once('close', () => liveSockets.delete(socket));
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
  });
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
   * revocation against the index in force, target normalization, Host, policy. Pure apart from
   * the per-connection caches; writes nothing.
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
    if (expired !== null) return { kind: 'refuse', requestId, started, log, code: expired, fields: {} };
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
        fields: { resumed: verdict.resumed },
        warn: { event: 'client-revoked', code, when: 'request', reqId: requestId, resumed: verdict.resumed, peer: { address: socket.remoteAddress }, ...revocationLog(rev) },
      };
    }
    const target = normalizeTarget(raw.url ?? '');
    if (!target.ok) return { kind: 'refuse', requestId, started, log, code: 'GW_ERR_PATH_INVALID', fields: { reason: target.reason } };
    const host = hostForRouting(raw.headers.host);
    if (host === undefined) return { kind: 'refuse', requestId, started, log, code: 'GW_ERR_HOST_INVALID', fields: {} };
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

  /** Answers a refused request through Fastify (error body, helmet headers) and logs it. */
  function refuse(a: Exclude<Admission, { kind: 'forward' }>, request: FastifyRequest, reply: FastifyReply) {
    const raw = request.raw;
    if (a.kind === 'refuse-connection') {
      const v = a.verdict;
      logger.info(
        { reqId: a.requestId, method: raw.method, status: 401, code: v.code, reason: v.reason, peer: { address: raw.socket.remoteAddress, subject: v.peerSubject, serial: v.peerSerial } },
        'request refused',
      );
      return sendError(reply, v.code, a.requestId, { close: true });
    }
    if (a.warn) a.log.warn(a.warn, 'request refused by revocation');
    const status = sendError(reply, a.code, a.requestId, { close: a.code.startsWith('GW_ERR_CLIENT_CERT') }).statusCode;
    a.log.info({ reqId: a.requestId, method: raw.method, status, code: a.code, durationMs: elapsedMs(a.started), ...a.fields }, 'request refused');
    return reply;
  }

  function handOver(req: IncomingMessage, res: ServerResponse, a: Exclude<Admission, { kind: 'forward' }>): void {
    handedOver.set(req, a);
    fastifyHandler!(req, res);
  }

  /**
   * The data plane: every request on the listener starts here, outside Fastify's request
   * lifecycle (routing, hooks, Request/Reply objects), which measured at about a quarter of the
   * gateway's CPU per proxied request. Allowed requests stream straight to the upstream; anything
   * the gateway answers itself goes through Fastify. While closing, Fastify answers 503.
   */
  function onRequest(req: IncomingMessage, res: ServerResponse): void {
    if (closing) return fastifyHandler!(req, res);
    const a = admit(req, requestIdFor(req));
    if (a.kind !== 'forward') return handOver(req, res, a);
    proxy(req, res, a).catch((err: unknown) => {
      // proxy() handles every failure it knows; this is the last line of defence: a bug on one
      // request costs that request (logged, connection closed), never the process.
      logger.error({ reqId: a.requestId, code: 'GW_ERR_INTERNAL', err }, 'request failed');
      res.destroy();
    });
  }

  /**
   * Streams one admitted request upstream and the response back, then writes its access record.
   * A failure before the response started is answered through Fastify with the translated error.
   */
  async function proxy(raw: IncomingMessage, res: ServerResponse, a: Extract<Admission, { kind: 'forward' }>): Promise<void> {
    const { log, upstream, requestId } = a;
    const headers = buildUpstreamRequestHeaders(raw.rawHeaders, {
      clientAddress: raw.socket.remoteAddress ?? '',
      originalHost: raw.headers.host ?? null,
      requestId,
      xfcc: a.xfcc,
    });
    try {
      const result = await forwardRequest(upstream.pool, {
        method: a.method,
        path: a.path + a.query,
        headers,
        body: hasBody(raw) ? raw : null,
        res,
        requestId,
      });
      log.info(
        {
          reqId: requestId,
          method: a.method,
          path: a.path,
          route: a.route,
          rule: a.rule,
          upstream: upstream.name,
          decision: 'allow',
          status: result.status,
          bytesOut: result.bytesOut,
          durationMs: elapsedMs(a.started),
          ...(result.error ? { cut: result.error.message, clientAborted: result.clientAborted } : {}),
        },
        'request',
      );
    } catch (err) {
      const access = { reqId: requestId, method: a.method, path: a.path, route: a.route, rule: a.rule, upstream: upstream.name, decision: 'allow' };
      if (err instanceof ForwardError && err.clientAborted) {
        // The client is gone; on Node 22+ the request may already be detached from its socket.
        res.destroy();
        log.info({ ...access, status: 499, clientAborted: true, durationMs: elapsedMs(a.started) }, 'request');
        return;
      }
      const gwErr = translateUpstreamError(err instanceof ForwardError ? err.cause : err, upstream.name);
      const cause = gwErr.cause as { code?: unknown; message?: unknown } | undefined;
      log.warn({ ...access, code: gwErr.code, upstreamError: cause?.code, upstreamMessage: cause?.message, durationMs: elapsedMs(a.started) }, 'upstream failed');
      if (res.headersSent || res.destroyed) {
        res.destroy();
        return;
      }
      // Answered through Fastify like every other gateway error; the failure is logged above, so
      // the hand-over carries no log line of its own.
      handOver(raw, res, { kind: 'refuse', requestId, started: a.started, log: silentLog, code: gwErr.code, fields: {} });
    }
  }

  /**
   * Fastify's side: refusals handed over by the data plane. A request that enters Fastify directly
   * (inject()) is admitted here; if allowed, Fastify steps aside and the data plane forwards it.
   */
  async function viaFastify(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const a = handedOver.get(request.raw) ?? admit(request.raw, request.id);
    if (a.kind !== 'forward') {
      refuse(a, request, reply);
      return;
    }
    reply.hijack();
    return proxy(request.raw, reply.raw, a);
  }

  const silentLog = logger.child({}, { level: 'silent' });

  app.setErrorHandler((err, request, reply) => {
    const code: ErrorCode =
      err instanceof GatewayError ? err.code : (err as { statusCode?: number }).statusCode && (err as { statusCode: number }).statusCode < 500 ? 'GW_ERR_PATH_INVALID' : 'GW_ERR_INTERNAL';
    logger.error({ reqId: request.id, code, err }, 'request failed');
    if (reply.sent || reply.raw.headersSent) {
      reply.raw.destroy();
      return;
    }
    return sendError(reply, code, request.id);
  });

  // Methods Fastify does not know (WebDAV and other extensions) reach the not-found handler with
  // their body untouched; they go through the same pipeline and the routes' method lists decide.
  app.setNotFoundHandler(viaFastify);
  app.route({
    method: app.supportedMethods,
    url: '*',
    // In onRequest: Fastify's body parsing (which would reject or buffer unknown content types)
    // must never see a request body.
    onRequest: viaFastify,
    handler: async () => {
      // Unreachable: the pipeline always answers or hijacks. Fail closed if that ever changes.
      throw new GatewayError('GW_ERR_INTERNAL', { detail: { why: 'pipeline fell through' } });
    },
  });
  app.addHook('preClose', (done) => {
    closing = true;
    done();
  });

  for (const store of stores.values()) store.start();

  return {
    app,
    revocation: stores,
    async listen() {
      await app.listen({ host: config.listen.host, port: config.listen.port });
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

function elapsedMs(started: bigint): number {
  return Number(process.hrtime.bigint() - started) / 1e6;
}
