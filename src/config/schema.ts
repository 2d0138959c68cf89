/**
 * Configuration: the zod schema is the single source of truth for the config file. Objects are
 * strict (an unknown key is an error: a typo in security config must never silently mean
 * "default"), types are inferred from it, and cross-field rules name the keys they concern.
 * config/gateway.schema.json is generated from it (`mtls-gateway config schema`) and checked for
 * drift by a test.
 */
import { z } from 'zod';
import { parseDuration } from './duration.js';
import { parseRate } from './rate.js';
import { rewritePrefixProblem } from './rewrite-prefix.js';

const filePath = z.string().min(1, 'must be a file path');

/** A duration string ("250ms", "5s", "1m30s"), parsed to milliseconds. */
export const duration = (opts: { min?: number; max?: number } = {}) =>
  z.string().transform((text, ctx) => {
    const ms = parseDuration(text);
    if (ms === null) {
      ctx.addIssue({ code: 'custom', message: `"${text}" is not a duration (write e.g. 250ms, 5s, 1m, 2h)` });
      return z.NEVER;
    }
    if (opts.min !== undefined && ms < opts.min) {
      ctx.addIssue({ code: 'custom', message: `"${text}" is shorter than the minimum of ${opts.min}ms` });
      return z.NEVER;
    }
    if (opts.max !== undefined && ms > opts.max) {
      ctx.addIssue({ code: 'custom', message: `"${text}" is longer than the maximum of ${opts.max}ms` });
      return z.NEVER;
    }
    return ms;
  });

const nonEmpty = z.string().min(1, 'must not be empty');

/**
 * Where CRLs come from. A bare string is a file (PEM with one or many CRLs, or DER), a directory
 * (every *.pem, *.crl, *.der in it; dot-files such as Kubernetes' ..data are skipped) or an
 * http(s):// URL; the object forms spell the kind out and carry the URL settings.
 */
const crlUrl = z.string().regex(/^https?:\/\/[^\s]+$/i, 'must be an http:// or https:// URL');
export const crlSourceSchema = z.union([
  nonEmpty,
  z.strictObject({ file: filePath }),
  z.strictObject({ dir: filePath }),
  z.strictObject({
    url: crlUrl,
    refresh: duration({ min: 1000 }).default(300_000).describe('how often the URL is fetched again (conditional GET)'),
    timeout: duration({ min: 100 }).default(10_000),
    maxBytes: z.number().int().min(1024).max(1_073_741_824).default(67_108_864),
    cache: filePath.optional().describe('last good copy on disk, used when the URL cannot be reached'),
  }),
]);

/** How revocation is enforced for one trust domain (inbound clients, or one upstream). */
export const revocationSchema = z
  .strictObject({
    scope: z.enum(['chain', 'leaf']).default('chain').describe('chain: every certificate of the presented chain is checked against its issuer\'s CRL; leaf: only the end-entity certificate'),
    missing: z.enum(['deny', 'allow']).default('deny').describe('what to do when an issuer in scope has no CRL at all'),
    stale: z.enum(['deny', 'grace', 'allow']).default('deny').describe('what to do after a CRL\'s nextUpdate has passed'),
    grace: duration({ min: 0 }).optional().describe('with stale: grace, how long a CRL past its nextUpdate is still honoured'),
    warnBefore: duration({ min: 0 }).default(86_400_000).describe('log a warning this long before a CRL\'s nextUpdate'),
    pollInterval: duration({ min: 100 }).default(10_000).describe('how often CRL files and directories are checked for changes (file watches also trigger a reload)'),
  })
  .refine((r) => (r.stale === 'grace') === (r.grace !== undefined), {
    message: 'set "grace" (a duration) exactly when stale is "grace"',
  });
const dnMatcher = z.record(z.string().regex(/^(?:[A-Za-z][A-Za-z0-9-]*|\d+(?:\.\d+)+)$/, 'must be a DN attribute name (CN, OU, O, ...) or a dotted OID'), nonEmpty);

/**
 * OCSP for client certificates (RFC 6960), beside the CRLs: either one saying "revoked" is
 * revoked. docs/revocation.md, "OCSP".
 */
export const ocspSchema = z
  .strictObject({
    mode: z
      .enum(['off', 'prefer', 'require'])
      .default('off')
      .describe('off: CRLs only; prefer: ask OCSP where a responder is known (configured or the certificate\'s AIA), CRLs alone otherwise; require: every client certificate needs a good OCSP answer, no responder known means refused'),
    responders: z
      .array(
        z.strictObject({
          issuer: dnMatcher.describe('the issuing CA\'s subject, matched like a policy selector\'s issuer (attribute: value, glob allowed)'),
          url: z.string().regex(/^https?:\/\/[^\s]+$/i, 'must be an http:// or https:// URL').describe('the responder for certificates this CA issued, used instead of their AIA OCSP URL'),
        }),
      )
      .max(1000)
      .default([])
      .describe('responders by issuing CA; a certificate whose issuer matches none uses the OCSP URL of its Authority Information Access'),
    timeout: duration({ min: 100, max: 60_000 }).default(2_000).describe('one lookup, connection to last byte'),
    onUnavailable: z
      .enum(['deny', 'allow'])
      .default('deny')
      .describe('a responder that cannot be reached, times out, answers an error status, or sends a response that fails verification: deny, or allow (logged as fail-open). An answer that verifies and says revoked or unknown is refused in every mode'),
    cacheSize: z.number().int().min(1).max(10_000_000).default(10_000).describe('answers kept, one per certificate, least recently used first out; each kept until its nextUpdate'),
    nonce: z.boolean().default(false).describe('send a nonce and require it echoed (many responders serve pre-signed answers and cannot)'),
    maxBytes: z.number().int().min(1024).max(1_048_576).default(65_536).describe('largest response accepted'),
  })
  .prefault({});

/** OCSP stapling of the gateway's own server certificate. */
export const staplingSchema = z
  .strictObject({
    enabled: z.boolean().default(false).describe('fetch an OCSP answer for the server certificate (from its AIA OCSP URL) and staple it for clients that ask (status_request); a stale answer is never stapled'),
    refresh: duration({ min: 1000 }).default(3_600_000).describe('how often the answer is fetched again; sooner when it would expire first'),
  })
  .prefault({});

/** A principal selector: its fields are ANDed; entries of allow/deny are ORed. */
export const selectorSchema = z
  .strictObject({
    subject: dnMatcher.optional(),
    issuer: dnMatcher.optional(),
    spiffe: nonEmpty.optional(),
    uri: nonEmpty.optional(),
    dns: nonEmpty.optional(),
    email: nonEmpty.optional(),
    ip: nonEmpty.optional(),
    fingerprint: nonEmpty.optional(),
    serial: nonEmpty.optional(),
  })
  .refine((s) => Object.values(s).some((v) => v !== undefined), {
    message: 'a selector needs at least one field (subject, issuer, spiffe, uri, dns, email, ip, fingerprint, serial)',
  });

const httpMethod = z
  .string()
  .regex(/^[A-Za-z]+$/, 'must be an HTTP method name')
  .transform((m) => m.toUpperCase());

/** A rewrite prefix: an absolute path of plain segments, nothing that normalization would change. */
const rewritePrefix = z.string().superRefine((p, ctx) => {
  const problem = rewritePrefixProblem(p);
  if (problem !== null) ctx.addIssue({ code: 'custom', message: problem });
});

const routeLimitSchema = z.strictObject({
  key: z.enum(['spiffe', 'subject', 'fingerprint']).describe('whose bucket: the SPIFFE ID (the fingerprint when the certificate has none), the subject DN, or the certificate fingerprint'),
  rate: z
    .string()
    .transform((text, ctx) => {
      const n = parseRate(text);
      if (n === null) {
        ctx.addIssue({ code: 'custom', message: `"${text}" is not a rate (write e.g. 100/s, 600/m or 10/h; more than zero, at most 1e9 per unit)` });
        return z.NEVER;
      }
      return n;
    })
    .describe('refill rate, e.g. 100/s, 600/m, 10/h; parsed to tokens per second'),
  burst: z.number().int().min(1).max(1_000_000).describe('bucket size: requests admitted at once from a full bucket'),
});

/** What each identity header says (docs/upstreams.md, "Identity headers sent upstream"). */
const IDENTITY_HEADERS = {
  xfcc: "x-forwarded-client-cert (Envoy's format): the verified identity, by the gateway",
  clientCert: "RFC 9440 Client-Cert: the client's certificate (DER as a structured-field byte sequence)",
  clientCertChain: 'RFC 9440 Client-Cert-Chain: the intermediate CAs the gateway verified the certificate through (trust anchor left out); needs clientCert',
} as const;

/** The identity headers sent upstream; client-sent headers of these names are always removed. */
const forwardClientCertSchema = z.strictObject({
  xfcc: z.boolean().default(true).describe(IDENTITY_HEADERS.xfcc),
  clientCert: z.boolean().default(false).describe(IDENTITY_HEADERS.clientCert),
  clientCertChain: z.boolean().default(false).describe(IDENTITY_HEADERS.clientCertChain),
});

/** A route's override of forwardClientCert, field by field. */
const routeForwardClientCertSchema = z.strictObject({
  xfcc: z.boolean().optional().describe(`${IDENTITY_HEADERS.xfcc}; default: forwardClientCert.xfcc`),
  clientCert: z.boolean().optional().describe(`${IDENTITY_HEADERS.clientCert}; default: forwardClientCert.clientCert`),
  clientCertChain: z.boolean().optional().describe(`${IDENTITY_HEADERS.clientCertChain}; default: forwardClientCert.clientCertChain`),
});

const CHAIN_NEEDS_CERT = 'Client-Cert-Chain is only sent with Client-Cert (RFC 9440 2.3): set clientCert: true as well, or clientCertChain: false';

/** Whether a route (or the top level, with no override) would send Client-Cert-Chain without Client-Cert. */
function chainWithoutCert(global: { clientCert: boolean; clientCertChain: boolean }, own: { clientCert?: boolean | undefined; clientCertChain?: boolean | undefined }): boolean {
  return (own.clientCertChain ?? global.clientCertChain) && !(own.clientCert ?? global.clientCert);
}

const routeSchema = z
  .strictObject({
    name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'must be 1-64 characters of letters, digits, ".", "_" or "-"'),
    match: z
      .strictObject({
        host: nonEmpty.optional(),
        path: z.string().startsWith('/', 'must start with "/"').optional(),
        pathPrefix: z.string().startsWith('/', 'must start with "/"').optional(),
        methods: z.array(httpMethod).min(1).optional(),
      })
      .refine((m) => (m.path === undefined) !== (m.pathPrefix === undefined), {
        message: 'set exactly one of "path" or "pathPrefix"',
      }),
    upstream: nonEmpty,
    allow: z.array(selectorSchema).default([]),
    deny: z.array(selectorSchema).default([]),
    audit: z
      .boolean()
      .optional()
      .describe('default false. Audit mode: the decision is computed, logged and counted, but a deny is forwarded as "would-deny" (try a policy on real traffic before enforcing it); certificate, revocation and path checks always enforce'),
    rewrite: z
      .strictObject({
        prefix: rewritePrefix.describe('replaces the part of the normalized path that match.pathPrefix matched (the whole path for match.path); applied after the policy decision'),
      })
      .optional(),
    host: z
      .enum(['upstream', 'servername', 'preserve'])
      .optional()
      .describe("Host sent upstream: upstream (the default: the target's host:port), servername (the upstream's tls.servername) or preserve (the client's Host)"),
    timeouts: z
      .strictObject({
        response: duration({ min: 1 }).optional().describe("overrides the upstream's timeouts.response for this route"),
        idle: duration({ min: 100, max: 86_400_000 })
          .optional()
          .describe("WebSocket tunnels on this route are closed after this long without a byte in either direction; default 5m (Envoy's stream idle timeout)"),
      })
      .optional(),
    rateLimit: routeLimitSchema.optional().describe('a token bucket per client identity, per worker process: beyond it 429 GW_ERR_RATE_LIMITED with Retry-After'),
    forwardClientCert: routeForwardClientCertSchema.optional().describe('which identity headers this route sends upstream; each field given overrides the top-level forwardClientCert'),
  });

/** An https:// origin: scheme, host and optional port; normalized to URL.origin. */
const httpsOrigin = z
  .string()
  .url()
  .refine((u) => {
    const url = new URL(u);
    return url.protocol === 'https:' && (url.pathname === '/' || url.pathname === '') && !url.search && !url.hash && !url.username && !url.password;
  }, 'must be an https:// origin (scheme, host and optional port, no path, query or credentials): upstream TLS is always on');

const DNS_NAME = /^(?=.{1,253}\.?$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/;
const statusCode = z.number().int().min(100).max(599);

/** Retry reasons (Envoy's retry_on names where one exists). */
export const RETRY_REASONS = ['connect-failure', 'connect-timeout', 'reset', 'refused-stream', '502', '503', '504'] as const;
export type RetryReason = (typeof RETRY_REASONS)[number];

const percent = z
  .union([z.number().min(0).max(100), z.string().regex(/^\d{1,3}(?:\.\d+)?%$/, 'must be a percentage such as "20%"')])
  .transform((v, ctx) => {
    const n = typeof v === 'number' ? v : Number(v.slice(0, -1));
    if (!(n >= 0 && n <= 100)) {
      ctx.addIssue({ code: 'custom', message: `${String(v)} is not between 0% and 100%` });
      return z.NEVER;
    }
    return n;
  });

const upstreamSchema = z
  .strictObject({
    url: httpsOrigin.optional().describe('the one target of a single-origin upstream (exactly one of url, targets, discovery)'),
    targets: z
      .array(httpsOrigin)
      .min(1)
      .max(1024)
      .optional()
      .describe('a fixed fleet: every target is its own connection pool; TLS verifies tls.servername on each'),
    discovery: z
      .strictObject({
        dns: z.string().regex(DNS_NAME, 'must be a DNS name (e.g. a Kubernetes headless Service: orders-headless.shop.svc.cluster.local)'),
        port: z.number().int().min(1).max(65535),
        refresh: duration({ min: 1_000, max: 86_400_000 }).default(10_000).describe('how often the name is resolved again; a failed resolution keeps the last good set'),
      })
      .optional()
      .describe('targets from the A/AAAA records of a name (a headless Service): added ones join, removed ones drain'),
    protocol: z
      .enum(['http1', 'http2'])
      .default('http1')
      .describe('http1: HTTP/1.1 to every target; http2: HTTP/2 only (offered and required by ALPN, a target that answers with HTTP/1.1 fails with 502 GW_ERR_UPSTREAM_PROTOCOL), for gRPC: trailers pass through and bidirectional streams flow'),
    balance: z
      .enum(['round-robin', 'least-request', 'random'])
      .default('round-robin')
      .describe('round-robin (smooth weighted), least-request (power of two choices) or random (weighted), across healthy targets that are not ejected'),
    weights: z
      .record(z.string(), z.number().int().min(1).max(1000))
      .optional()
      .describe('relative weight per target origin (default 1); keys must be listed in targets or url'),
    healthCheck: z
      .strictObject({
        path: z.string().regex(/^\/[\x21-\x7e]{0,1023}$/, 'must be an origin-form path starting with "/" (printable ASCII, no spaces)'),
        interval: duration({ min: 100, max: 3_600_000 }).default(5_000),
        timeout: duration({ min: 10, max: 600_000 }).default(2_000),
        healthyThreshold: z.number().int().min(1).max(100).default(2).describe('consecutive passing checks that mark a down target up'),
        unhealthyThreshold: z.number().int().min(1).max(100).default(3).describe('consecutive failing checks that mark a target down'),
        expectStatus: z.array(statusCode).min(1).max(100).default([200]).describe('statuses that pass'),
      })
      .refine((h) => h.timeout < h.interval, { message: 'timeout must be shorter than interval' })
      .optional()
      .describe('active checks: GET path on every target over mTLS with the upstream client certificate'),
    outlierDetection: z
      .strictObject({
        enabled: z.boolean().default(true),
        consecutiveFailures: z.number().int().min(1).max(1000).default(5).describe('consecutive connection, TLS or 5xx failures that eject a target'),
        baseEjection: duration({ min: 100, max: 86_400_000 }).default(30_000).describe('an ejection lasts this long times the number of times the target was ejected'),
        maxEjectionPercent: z.number().int().min(0).max(100).default(50).describe('never more than this share of the fleet ejected at once, rounded down: below 100 a single-target upstream is never ejected'),
      })
      .prefault({})
      .describe('passive health: failures seen on real requests eject a target for a while'),
    retries: z
      .strictObject({
        attempts: z.number().int().min(0).max(10).default(1).describe("retries after the first try (Envoy's num_retries); connect-failure failovers to untried targets do not count"),
        on: z
          .array(
            z
              .union([z.enum(RETRY_REASONS), z.literal(502), z.literal(503), z.literal(504)], { error: `must be one of ${RETRY_REASONS.join(', ')}` })
              .transform((r) => String(r) as RetryReason),
          )
          .max(RETRY_REASONS.length)
          .default(['connect-failure', 'reset', 'refused-stream'])
          .describe('which failures are retried: connect-failure (refused, unreachable, TLS failure: nothing was sent), connect-timeout, reset, refused-stream (HTTP/2), 502, 503, 504'),
        backoff: duration({ min: 0, max: 10_000 }).default(25).describe('base delay before a retry after the request was sent, with jitter (connect failures fail over at once)'),
        budget: percent.default(20).describe('share of the active requests that may be retries at once; never fewer than 3 concurrent retries'),
      })
      .prefault({})
      .describe('retries go to a different target, only when safe: nothing sent yet, or an idempotent method without a body; never after the response started'),
    limits: z
      .strictObject({
        maxConnections: z.number().int().min(1).max(10_000).optional().describe('connections in use at once across the fleet (requests carried at once); default: connections, else 256'),
        maxPending: z.number().int().min(0).max(1_000_000).default(1024).describe('requests waiting for a connection; beyond it 503 GW_ERR_UPSTREAM_OVERLOADED at once'),
        maxRequests: z.number().int().min(1).max(1_000_000).default(1024).describe('outstanding requests (carried plus waiting); beyond it 503 GW_ERR_UPSTREAM_OVERLOADED at once'),
      })
      .prefault({})
      .describe("circuit breaking, with Envoy's meanings"),
    tls: z.strictObject({
      cert: filePath.describe("the gateway's own client certificate (chain allowed)"),
      key: filePath,
      ca: filePath.describe("trust for the upstream's server certificate"),
      servername: nonEmpty.describe('SNI, and the name every target\'s certificate must carry'),
      crl: z.array(crlSourceSchema).optional().describe('CRL sources for the upstream certificate chain (files, directories, URLs)'),
      revocation: revocationSchema.prefault({}),
      ocsp: z
        .strictObject({
          mode: z.enum(['off', 'prefer', 'require']).default('off').describe("off; prefer: the stapled answer, else a lookup where a responder is known (the certificate's AIA); require: a good answer for every connection"),
          requireStapled: z.boolean().default(false).describe('refuse an upstream that staples no OCSP answer (requestOCSP), whatever the mode'),
          timeout: duration({ min: 100, max: 60_000 }).default(2_000).describe('one lookup, connection to last byte'),
          onUnavailable: z.enum(['deny', 'allow']).default('deny').describe('a lookup that fails or an answer that does not verify: deny (the connection is not used) or allow (logged as fail-open)'),
        })
        .prefault({})
        .describe("OCSP for the upstream's certificate, beside its CRLs"),
      expect: z
        .strictObject({
          spiffe: nonEmpty.optional(),
          uri: nonEmpty.optional(),
          dns: nonEmpty.optional(),
          fingerprint: nonEmpty.optional(),
        })
        .optional()
        .describe('pins the upstream certificate further; every field given must match'),
      sessionResumption: z
        .boolean()
        .default(true)
        .describe("resume TLS sessions to each target; a resumed connection is checked again on the chain its full handshake verified: servername, pins (expect), the revocation verdict in force now (CRLs, OCSP) and the validity window, else refused and its session dropped. false: every connection a full handshake"),
      minVersion: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2'),
    }),
    timeouts: z
      .strictObject({
        connect: duration({ min: 1 }).default(5_000),
        response: duration({ min: 1 }).default(30_000),
        idle: duration({ min: 1 }).default(60_000),
        queue: duration({ min: 1 })
          .default(10_000)
          .describe('longest a request waits for a free upstream connection when limits.maxConnections are busy; then 503 GW_ERR_UPSTREAM_OVERLOADED'),
        keepAlive: duration({ min: 1_000, max: 3_600_000 })
          .default(60_000)
          .describe("how long an idle pooled connection stays open; an upstream's Keep-Alive: timeout= hint shortens it"),
      })
      .prefault({}),
    connections: z.number().int().min(1).max(10_000).optional().describe('older spelling of limits.maxConnections (default 256)'),
  })
  .superRefine((u, ctx) => {
    const given = (['url', 'targets', 'discovery'] as const).filter((k) => u[k] !== undefined);
    if (given.length !== 1) {
      ctx.addIssue({ code: 'custom', path: given.length > 1 ? [given[1]!] : [], message: given.length === 0 ? 'set one of "url", "targets" or "discovery"' : `set only one of "url", "targets" or "discovery" (got ${given.join(' and ')})` });
    }
    if (u.connections !== undefined && u.limits.maxConnections !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['connections'], message: 'set limits.maxConnections or connections (its older spelling), not both' });
    }
    const origins = u.targets ?? (u.url !== undefined ? [u.url] : []);
    const seen = new Set<string>();
    origins.forEach((o, i) => {
      const origin = new URL(o).origin;
      if (seen.has(origin)) ctx.addIssue({ code: 'custom', path: ['targets', i], message: `duplicate target ${origin}` });
      seen.add(origin);
    });
    if (u.weights !== undefined) {
      if (u.discovery !== undefined) ctx.addIssue({ code: 'custom', path: ['weights'], message: 'weights name targets; discovered targets all weigh 1' });
      for (const key of Object.keys(u.weights)) {
        let origin: string | null = null;
        try {
          origin = new URL(key).origin;
        } catch {
          origin = null;
        }
        if (origin === null || !seen.has(origin)) ctx.addIssue({ code: 'custom', path: ['weights', key], message: `"${key}" is not one of the targets` });
      }
    }
  })
  .transform((u) => ({ ...u, limits: { ...u.limits, maxConnections: u.limits.maxConnections ?? u.connections ?? 256 } }));

export const configSchema = z
  .strictObject({
    listen: z.strictObject({
      host: nonEmpty.default('127.0.0.1'),
      port: z.number().int().min(0).max(65535),
      http2: z
        .boolean()
        .default(true)
        .describe('offer HTTP/2 (h2) beside HTTP/1.1 on the same port, chosen by ALPN; both get the same certificate checks, admission and answers. false: HTTP/1.1 only'),
    }),
    tls: z.strictObject({
      cert: filePath.describe('server certificate (chain allowed)'),
      key: filePath,
      clientCA: filePath.describe('trusted roots and intermediates for client certificates'),
      crl: z.array(crlSourceSchema).optional().describe('CRL sources (files, directories, URLs); revocation is enforced in process when any is set'),
      crlFromDistributionPoints: z
        .boolean()
        .default(false)
        .describe("also fetch, like url sources (refreshed every 5m), the http(s) CRL distribution points named by the CA certificates in clientCA; enables client CRL enforcement when they name any"),
      revocation: revocationSchema.prefault({}),
      ocsp: ocspSchema,
      stapling: staplingSchema,
      minVersion: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2'),
      verifyDepth: z.number().int().min(1).max(10).default(3).describe('maximum number of CA certificates above the client certificate'),
      maxChainLength: z.number().int().min(1).max(100).default(10).describe('most certificates a client may present in its chain (leaf included); a longer chain is refused'),
      handshakeTimeout: duration({ min: 100 }).default(10_000),
      sessionTickets: z
        .strictObject({
          keyFile: filePath
            .optional()
            .describe('48-byte TLS session ticket key (`mtls-gateway pki ticket-key` writes one), shared by every worker and replica so a client resumes wherever it lands; reloaded on change. Without it the workers of one process share a key generated at start'),
        })
        .prefault({}),
    }),
    upstreams: z.record(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'upstream names are 1-64 letters, digits, ".", "_" or "-"'), upstreamSchema),
    routes: z.array(routeSchema),
    forwardClientCert: forwardClientCertSchema.prefault({}).describe('which identity headers are sent upstream (routes[].forwardClientCert overrides field by field); client-sent copies are always removed'),
    server: z
      .strictObject({
        engine: z
          .enum(['node', 'lean'])
          .default('lean')
          .describe("the HTTP/1.1 data plane: lean, the default (HTTP/1.1 connections read by the gateway's own, src/dataplane/lean-http1-connection.ts, HTTP/2 still node:http2's; upstream HTTP/1.1 through the gateway's own client, src/proxy/http1-upstream-client.ts; measured cheaper per request), or node, the switch back (node:http's connection handling on node:https or node:http2's listener, undici's Pool upstream); fixed at start"),
        keepAliveTimeout: duration({ min: 1 }).default(65_000),
        requestTimeout: duration({ min: 0 }).default(0).describe('whole-request limit from its first byte (caps headersTimeout when lower); 0 leaves long transfers alone'),
        headersTimeout: duration({ min: 1 }).default(30_000),
        bodyTimeout: duration({ min: 100 }).default(60_000).describe("longest pause while a request body is arriving (nginx's client_body_timeout); 408 before the response started, the connection is cut after"),
        maxHeaderSize: z.number().int().min(1024).max(1_048_576).default(16_384).describe('largest request head in bytes; larger gets 431'),
        maxHeaders: z.number().int().min(1).max(10_000).default(100).describe('most header lines a request may carry; more gets 431 (never silently dropped)'),
        http2: z
          .strictObject({
            maxConcurrentStreams: z.number().int().min(1).max(10_000).default(100).describe('most HTTP/2 streams one client connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS)'),
            resetBurst: z
              .number()
              .int()
              .min(1)
              .max(100_000)
              .default(200)
              .describe('HTTP/2 streams a client may cancel (RST_STREAM) in a burst before its connection is closed with GOAWAY ENHANCE_YOUR_CALM: the rapid-reset guard (CVE-2023-44487)'),
            resetRate: z.number().int().min(1).max(100_000).default(50).describe('HTTP/2 stream cancellations per second a client may sustain after its burst'),
          })
          .prefault({})
          .describe('HTTP/2 limits; the header list size and count are server.maxHeaderSize and server.maxHeaders, as for HTTP/1.1'),
        drainDelay: duration({ min: 0, max: 300_000 })
          .default(0)
          .describe('after SIGTERM/SIGINT, /readyz answers 503 at once but the listener keeps serving this long (so load balancers and Kubernetes endpoints stop sending), then the drain starts'),
        drainTimeout: duration({ min: 0, max: 3_600_000 })
          .default(25_000)
          .describe('how long in-flight requests may take to finish once the listener stopped accepting; idle connections close at once, busy ones after their response; then the rest are cut'),
        trustProxyHeaders: z.literal(false).default(false).describe('client-sent X-Forwarded-* headers are always replaced'),
        stripRequestHeaders: z
          .array(z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'must be an HTTP header name'))
          .default([])
          .describe('more request header names removed before forwarding, on top of the identity and proxy headers the gateway always removes; matched case-insensitively with "_" read as "-"'),
        paths: z
          .strictObject({
            allowSemicolons: z.boolean().default(false).describe('allow ";" (raw or %3B) in paths; refused by default because servlet containers and some routers strip ";params" before routing'),
            caseSensitive: z.boolean().default(true).describe('false: routes match paths case-insensitively (for upstreams that fold case)'),
            allowTrimmableSegments: z.boolean().default(false).describe('allow a path segment that starts or ends with %20 or ends with "."; refused by default because IIS, Windows and Spring trim them'),
          })
          .prefault({}),
      })
      .prefault({}),
    admin: z
      .strictObject({
        listen: z
          .strictObject({
            host: nonEmpty.default('127.0.0.1').describe('plain HTTP: keep it on loopback or a network only operators and Prometheus reach'),
            port: z.number().int().min(0).max(65535).default(9901),
          })
          .prefault({}),
        enabled: z.boolean().default(true).describe('false: no admin listener (no /healthz, /readyz, /metrics, /status, POST /reload)'),
        tls: z
          .strictObject({
            cert: filePath.describe("the admin listener's server certificate (chain allowed)"),
            key: filePath,
            clientCA: filePath.describe('CAs whose client certificates may use /metrics, /status and POST /reload (with admin.allow)'),
          })
          .optional()
          .describe('serve the admin listener over HTTPS; /metrics, /status and POST /reload then need a client certificate that admin.allow admits, while /healthz and /readyz stay open to probes'),
        allow: z.array(selectorSchema).min(1).optional().describe('with admin.tls: the identities admitted to /metrics, /status and POST /reload (selectors as in routes)'),
      })
      .refine((a) => (a.tls === undefined) === (a.allow === undefined), {
        message: 'set "tls" and "allow" together: who may use the admin endpoints is decided by client certificate',
      })
      .prefault({}),
    log: z
      .strictObject({
        level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
        bufferBytes: z.number().int().min(0).max(65_536).default(65_536).describe('log lines are written once this many bytes are buffered (64 KiB, Envoy\'s access-log flush size, by default); 0 writes every line at once'),
        flushInterval: duration({ min: 10, max: 60_000 }).default(250).describe('buffered lines are written at least this often'),
      })
      .prefault({}),
  })
  .superRefine((cfg, ctx) => {
    const names = new Map<string, number>();
    cfg.routes.forEach((route, i) => {
      if (!Object.hasOwn(cfg.upstreams, route.upstream)) {
        ctx.addIssue({
          code: 'custom',
          path: ['routes', i, 'upstream'],
          message: `unknown upstream "${route.upstream}" (defined: ${Object.keys(cfg.upstreams).join(', ') || 'none'})`,
        });
      }
      const seen = names.get(route.name);
      if (seen !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['routes', i, 'name'], message: `duplicate route name "${route.name}" (also routes[${seen}])` });
      } else names.set(route.name, i);
      const own = route.forwardClientCert;
      if (own !== undefined && (own.clientCert !== undefined || own.clientCertChain !== undefined) && chainWithoutCert(cfg.forwardClientCert, own)) {
        ctx.addIssue({ code: 'custom', path: ['routes', i, 'forwardClientCert', 'clientCertChain'], message: CHAIN_NEEDS_CERT });
      }
    });
    if (chainWithoutCert(cfg.forwardClientCert, {})) {
      ctx.addIssue({ code: 'custom', path: ['forwardClientCert', 'clientCertChain'], message: CHAIN_NEEDS_CERT });
    }
  });

export type GatewayConfigInput = z.input<typeof configSchema>;
export type GatewayConfig = z.output<typeof configSchema>;
export type RouteConfig = GatewayConfig['routes'][number];
export type SelectorConfig = RouteConfig['allow'][number];
export type UpstreamConfig = GatewayConfig['upstreams'][string];
export type CrlSourceConfig = z.output<typeof crlSourceSchema>;
export type RevocationConfig = z.output<typeof revocationSchema>;
export type OcspConfig = z.output<typeof ocspSchema>;
export type StaplingConfig = z.output<typeof staplingSchema>;
