/**
 * Configuration: the zod schema is the single source of truth for the config file. Objects are
 * strict (an unknown key is an error: a typo in security config must never silently mean
 * "default"), types are inferred from it, and cross-field rules name the keys they concern.
 * config/gateway.schema.json is generated from it (`mtls-gateway config schema`) and checked for
 * drift by a test.
 */
import { z } from 'zod';
import { parseDuration } from './duration.js';

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
  });

const upstreamSchema = z.strictObject({
  url: z
    .string()
    .url()
    .refine((u) => {
      const url = new URL(u);
      return url.protocol === 'https:' && (url.pathname === '/' || url.pathname === '') && !url.search && !url.hash && !url.username;
    }, 'must be an https:// origin (scheme, host and optional port, no path, query or credentials): upstream TLS is always on'),
  tls: z.strictObject({
    cert: filePath.describe("the gateway's own client certificate (chain allowed)"),
    key: filePath,
    ca: filePath.describe("trust for the upstream's server certificate"),
    servername: nonEmpty.describe('SNI, and the name the upstream certificate must carry'),
    crl: z.array(crlSourceSchema).optional().describe('CRL sources for the upstream certificate chain (files, directories, URLs)'),
    revocation: revocationSchema.prefault({}),
    expect: z
      .strictObject({
        spiffe: nonEmpty.optional(),
        uri: nonEmpty.optional(),
        dns: nonEmpty.optional(),
        fingerprint: nonEmpty.optional(),
      })
      .optional()
      .describe('pins the upstream certificate further; every field given must match'),
    minVersion: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2'),
  }),
  timeouts: z
    .strictObject({
      connect: duration({ min: 1 }).default(5_000),
      response: duration({ min: 1 }).default(30_000),
      idle: duration({ min: 1 }).default(60_000),
      queue: duration({ min: 1 })
        .default(10_000)
        .describe('longest a request waits for a free upstream connection when all `connections` are busy; then 503 GW_ERR_UPSTREAM_OVERLOADED'),
      keepAlive: duration({ min: 1_000, max: 3_600_000 })
        .default(60_000)
        .describe("how long an idle pooled connection stays open; an upstream's Keep-Alive: timeout= hint shortens it"),
    })
    .prefault({}),
  connections: z.number().int().min(1).max(10_000).default(256).describe('maximum open connections to this upstream'),
});

export const configSchema = z
  .strictObject({
    listen: z.strictObject({
      host: nonEmpty.default('127.0.0.1'),
      port: z.number().int().min(0).max(65535),
    }),
    tls: z.strictObject({
      cert: filePath.describe('server certificate (chain allowed)'),
      key: filePath,
      clientCA: filePath.describe('trusted roots and intermediates for client certificates'),
      crl: z.array(crlSourceSchema).optional().describe('CRL sources (files, directories, URLs); revocation is enforced in process when any is set'),
      revocation: revocationSchema.prefault({}),
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
    server: z
      .strictObject({
        keepAliveTimeout: duration({ min: 1 }).default(65_000),
        requestTimeout: duration({ min: 0 }).default(0).describe('whole-request limit; 0 leaves long transfers alone'),
        headersTimeout: duration({ min: 1 }).default(30_000),
        bodyTimeout: duration({ min: 100 }).default(60_000).describe("longest pause while a request body is arriving (nginx's client_body_timeout); 408 before the response started, the connection is cut after"),
        maxHeaderSize: z.number().int().min(1024).max(1_048_576).default(16_384).describe('largest request head in bytes; larger gets 431'),
        maxHeaders: z.number().int().min(1).max(10_000).default(100).describe('most header lines a request may carry; more gets 431 (never silently dropped)'),
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
        bufferBytes: z.number().int().min(0).max(65_536).default(4096).describe('log lines are written once this many bytes are buffered; 0 writes every line at once'),
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
    });
  });

export type GatewayConfigInput = z.input<typeof configSchema>;
export type GatewayConfig = z.output<typeof configSchema>;
export type RouteConfig = GatewayConfig['routes'][number];
export type SelectorConfig = RouteConfig['allow'][number];
export type UpstreamConfig = GatewayConfig['upstreams'][string];
export type CrlSourceConfig = z.output<typeof crlSourceSchema>;
export type RevocationConfig = z.output<typeof revocationSchema>;
