/**
 * The HTTP layer: assembles the gateway (TLS listener, client authentication, path normalization,
 * policy, forwarding, access log) without listening, so that tests and the CLI share one wiring.
 * One request's path: authenticate the connection -> re-check validity -> normalize the target ->
 * decide by policy -> forward to the upstream pool -> one access-log record.
 */
import type { AddressInfo } from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
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

  const app: FastifyInstance<HttpsServer, IncomingMessage, ServerResponse, Logger> = Fastify<HttpsServer, IncomingMessage, ServerResponse, Logger>({
    loggerInstance: logger,
    // The gateway writes its own access record per request; Fastify's request lines and per-request
    // child loggers would only duplicate it and cost time on the hot path.
    logController: new LogController({ disableRequestLogging: true }),
    childLoggerFactory: (parent) => parent,
    genReqId: requestIdFor,
    requestIdHeader: false,
    https: {
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
    },
    keepAliveTimeout: config.server.keepAliveTimeout,
    requestTimeout: config.server.requestTimeout,
    return503OnClosing: true,
    routerOptions: { ignoreDuplicateSlashes: false, ignoreTrailingSlash: false, maxParamLength: 8192 },
    frameworkErrors: (err, request, reply) => {
      const verdict = auth.verdict(request.raw.socket as TLSSocket);
      if (!verdict.ok) return refuseConnection(request, reply, verdict);
      logger.info({ reqId: request.id, code: 'GW_ERR_PATH_INVALID', reason: err.code, method: request.raw.method }, 'request refused');
      return sendError(reply, 'GW_ERR_PATH_INVALID', request.id);
    },
  });
  app.server.headersTimeout = config.server.headersTimeout;

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

  function refuseConnection(request: FastifyRequest, reply: FastifyReply, verdict: Extract<ConnectionVerdict, { ok: false }>) {
    logger.info(
      { reqId: request.id, method: request.raw.method, status: 401, code: verdict.code, reason: verdict.reason, peer: { address: request.raw.socket.remoteAddress, subject: verdict.peerSubject, serial: verdict.peerSerial } },
      'request refused',
    );
    return sendError(reply, verdict.code, request.id, { close: true });
  }

  function refuse(log: Logger, request: FastifyRequest, reply: FastifyReply, code: ErrorCode, fields: Record<string, unknown>, started: bigint) {
    const status = sendError(reply, code, request.id, { close: code.startsWith('GW_ERR_CLIENT_CERT') }).statusCode;
    log.info({ reqId: request.id, method: request.raw.method, status, code, durationMs: elapsedMs(started), ...fields }, 'request refused');
  }

  /**
   * The whole data-plane pipeline runs in the catch-all route's onRequest hook: Fastify's body
   * parsing (which would reject or buffer unknown content types) must never see proxied bodies.
   */
  async function gatewayPipeline(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const started = process.hrtime.bigint();
    const raw = request.raw;
    const verdict = auth.verdict(raw.socket as TLSSocket);
    if (!verdict.ok) {
      refuseConnection(request, reply, verdict);
      return;
    }
    const identity = verdict.identity;
    const ctx = contextFor(identity);
    const log = ctx.log;
    const expired = auth.checkStillValid(identity);
    if (expired !== null) return refuse(log, request, reply, expired, {}, started);
    // Per request, against the index in force: a session resumed after a revocation, or a
    // keep-alive connection opened before it, gets no further than this.
    const rev = auth.revocation(raw.socket as TLSSocket, verdict);
    if (!rev.ok) {
      const code = rev.revoked ? 'GW_ERR_CLIENT_CERT_REVOKED' : 'GW_ERR_CLIENT_CERT_REVOCATION_UNKNOWN';
      log.warn({ event: 'client-revoked', code, when: 'request', reqId: request.id, resumed: verdict.resumed, peer: { address: raw.socket.remoteAddress }, ...revocationLog(rev) }, 'request refused by revocation');
      return refuse(log, request, reply, code, { resumed: verdict.resumed }, started);
    }

    const target = normalizeTarget(raw.url ?? '');
    if (!target.ok) return refuse(log, request, reply, 'GW_ERR_PATH_INVALID', { reason: target.reason }, started);
    const host = hostForRouting(raw.headers.host);
    if (host === undefined) return refuse(log, request, reply, 'GW_ERR_HOST_INVALID', {}, started);

    const method = raw.method ?? 'GET';
    const attrs = { method, host, path: target.path };
    const decision = decide(policy, identity, attrs);
    if (decision.kind === 'no-route') {
      return refuse(log, request, reply, 'GW_ERR_ROUTE_NOT_FOUND', { path: target.path, decision: 'no-route' }, started);
    }
    if (decision.kind === 'deny') {
      return refuse(
        log,
        request,
        reply,
        'GW_ERR_POLICY_DENIED',
        { path: target.path, route: decision.route.name, decision: 'deny', rule: decision.rule, reason: decision.reason, policy: explain(policy, identity, attrs) },
        started,
      );
    }

    const upstream = upstreams.get(decision.route.upstream);
    if (upstream === undefined) throw new GatewayError('GW_ERR_INTERNAL', { detail: { why: 'route names an unknown upstream' } });
    const headers = buildUpstreamRequestHeaders(raw.rawHeaders, {
      clientAddress: raw.socket.remoteAddress ?? '',
      originalHost: raw.headers.host ?? null,
      requestId: request.id,
      xfcc: ctx.xfcc,
    });
    const access = { reqId: request.id, method, path: target.path, route: decision.route.name, rule: decision.rule, upstream: upstream.name };
    try {
      const result = await forwardRequest(upstream.pool, {
        method,
        path: target.path + target.query,
        headers,
        body: hasBody(raw) ? raw : null,
        res: reply.raw,
        requestId: request.id,
        onResponseStart: () => reply.hijack(),
      });
      log.info(
        { ...access, decision: 'allow', status: result.status, bytesOut: result.bytesOut, durationMs: elapsedMs(started), ...(result.error ? { cut: result.error.message, clientAborted: result.clientAborted } : {}) },
        'request',
      );
    } catch (err) {
      if (err instanceof ForwardError && err.clientAborted) {
        reply.hijack();
        raw.socket.destroy();
        log.info({ ...access, decision: 'allow', status: 499, clientAborted: true, durationMs: elapsedMs(started) }, 'request');
        return;
      }
      const gwErr = translateUpstreamError(err instanceof ForwardError ? err.cause : err, upstream.name);
      const cause = gwErr.cause as { code?: unknown; message?: unknown } | undefined;
      log.warn({ ...access, decision: 'allow', code: gwErr.code, upstreamError: cause?.code, upstreamMessage: cause?.message, durationMs: elapsedMs(started) }, 'upstream failed');
      sendError(reply, gwErr.code, request.id);
    }
  }

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
  app.setNotFoundHandler(gatewayPipeline);
  app.route({
    method: app.supportedMethods,
    url: '*',
    onRequest: gatewayPipeline,
    handler: async () => {
      // Unreachable: the pipeline always answers or hijacks. Fail closed if that ever changes.
      throw new GatewayError('GW_ERR_INTERNAL', { detail: { why: 'pipeline fell through' } });
    },
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
