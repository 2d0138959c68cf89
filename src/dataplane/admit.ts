/**
 * admit(): the whole decision for one request, before anything is written, as a pure function of
 * (snapshot, connection, request head): connection verdict, validity, revocation, HTTP version,
 * header count, Expect, target normalization, Host, policy, upstream. No I/O, no logging, no clock:
 * the caller gathers the connection facts (src/dataplane/connection-context.ts) and the head, and
 * writes the answer. The head is transport-neutral so HTTP/2 streams and WebSocket upgrades can be
 * judged by the same function.
 */
import type { ErrorCode } from '../errors/registry.js';
import { decide } from '../policy/decide.js';
import { explain } from '../policy/explain.js';
import type { RouteForwarding } from '../proxy/route-forwarding.js';
import type { Upstream } from '../proxy/upstream-pool.js';
import { hostForRouting } from '../request/host-header.js';
import { normalizeTarget } from '../request/normalize-path.js';
import type { RevocationVerdict } from '../revocation/revocation-policy.js';
import type { ConnectionContext, RuntimeSnapshot } from '../runtime/snapshot.js';
import type { ConnectionFacts, RefusedConnection } from './connection-context.js';

/** What admit() reads of a request: its head, whatever the transport. */
export interface RequestHead {
  /** The protocol the request arrived in (ALPN's name for it). */
  readonly protocol: 'http/1.1' | 'h2';
  readonly method: string;
  /** The raw request-target. */
  readonly target: string;
  readonly httpVersionMajor: number;
  readonly httpVersionMinor: number;
  /** The Host header's value (or :authority), undefined when absent. */
  readonly host: string | undefined;
  /** How many Host header lines the request carried. */
  readonly hostCount: number;
  /** The Expect header's value, undefined when absent. */
  readonly expect: string | undefined;
  /** How many header lines the request carried. */
  readonly headerLines: number;
}

export interface Forward {
  readonly kind: 'forward';
  readonly context: ConnectionContext;
  readonly method: string;
  readonly path: string;
  readonly query: string;
  readonly route: string;
  readonly rule: string | null;
  readonly upstream: Upstream;
  /** The route's rewrite, Host, timeout and rate limit, applied after this decision. */
  readonly forwarding: RouteForwarding;
  /** `would-deny`: the route is in audit mode and its policy denied; forwarded all the same. */
  readonly decision: 'allow' | 'would-deny';
  /** For would-deny: why the policy denied (logged with the access record). */
  readonly audit: Readonly<Record<string, unknown>> | null;
}

export interface Refusal {
  readonly kind: 'refuse';
  readonly context: ConnectionContext;
  readonly code: ErrorCode;
  /** Added to the refusal's log record. */
  readonly fields: Readonly<Record<string, unknown>>;
  /** The failed revocation check, logged at warn before the refusal line. */
  readonly revocation?: Extract<RevocationVerdict, { ok: false }>;
  /** Close the connection after answering (framing is in doubt, or the client is not trusted). */
  readonly close: boolean;
}

export interface ConnectionRefusal {
  readonly kind: 'refuse-connection';
  readonly verdict: RefusedConnection;
}

/** `forward` requests are streamed to the upstream; every other outcome is one of the gateway's own answers. */
export type Admission = Forward | Refusal | ConnectionRefusal;

const NO_FIELDS: Readonly<Record<string, unknown>> = Object.freeze({});

export function admit(snapshot: RuntimeSnapshot, connection: ConnectionFacts, head: RequestHead): Admission {
  if (!connection.ok) return { kind: 'refuse-connection', verdict: connection.verdict };
  const { context, verdict } = connection;
  const identity = verdict.identity;
  if (connection.expired !== null) return { kind: 'refuse', context, code: connection.expired, fields: NO_FIELDS, close: true };
  const rev = connection.revocation;
  if (!rev.ok) {
    return { kind: 'refuse', context, code: rev.revoked ? 'GW_ERR_CLIENT_CERT_REVOKED' : 'GW_ERR_CLIENT_CERT_REVOCATION_UNKNOWN', fields: { resumed: verdict.resumed }, revocation: rev, close: true };
  }
  // HTTP/0.9-style request lines (no version) and versions other than 1.0 and 1.1 are not HTTP
  // this gateway speaks in HTTP/1 framing; Node's parser lets them through. HTTP/2 is only ever
  // what ALPN negotiated.
  if (head.protocol === 'h2' ? head.httpVersionMajor !== 2 : head.httpVersionMajor !== 1 || head.httpVersionMinor > 1) {
    return { kind: 'refuse', context, code: 'GW_ERR_REQUEST_INVALID', fields: { reason: 'http-version', version: `${head.httpVersionMajor}.${head.httpVersionMinor}` }, close: true };
  }
  const settings = snapshot.requests;
  if (head.headerLines > settings.maxHeaders) {
    return { kind: 'refuse', context, code: 'GW_ERR_HEADERS_TOO_LARGE', fields: { reason: 'too-many-headers', limit: settings.maxHeaders }, close: true };
  }
  const expect = head.expect;
  if (expect !== undefined && expect.toLowerCase() !== '100-continue') {
    return { kind: 'refuse', context, code: 'GW_ERR_EXPECTATION_FAILED', fields: NO_FIELDS, close: true };
  }
  const target = normalizeTarget(head.target, settings.paths);
  if (!target.ok) return { kind: 'refuse', context, code: 'GW_ERR_PATH_INVALID', fields: { reason: target.reason }, close: false };
  const host = hostForRouting(head.host);
  // RFC 9112 3.2: exactly one Host in HTTP/1.1; HTTP/1.0 may omit it. HTTP/2 carries it as
  // :authority (or Host), and the gateway routes by it, so it is required there too.
  if (host === undefined || (host === null && (head.protocol === 'h2' || head.httpVersionMinor === 1)) || head.hostCount > 1) {
    return { kind: 'refuse', context, code: 'GW_ERR_HOST_INVALID', fields: NO_FIELDS, close: false };
  }
  const method = head.method;
  const attrs = { method, host, path: target.path };
  const policy = snapshot.policy;
  const decision = decide(policy, identity, attrs);
  if (decision.kind === 'no-route') {
    return { kind: 'refuse', context, code: 'GW_ERR_ROUTE_NOT_FOUND', fields: { path: target.path, decision: 'no-route' }, close: false };
  }
  if (decision.kind === 'deny' && !decision.route.audit) {
    return {
      kind: 'refuse',
      context,
      code: 'GW_ERR_POLICY_DENIED',
      fields: { path: target.path, route: decision.route.name, decision: 'deny', rule: decision.rule, reason: decision.reason, policy: explain(policy, identity, attrs) },
      close: false,
    };
  }
  // Audit mode: a deny is computed and reported, not enforced. Only the policy decision is
  // audited; everything above (certificate, revocation, framing, path, Host) always enforces.
  const audit = decision.kind === 'deny' ? { rule: decision.rule, reason: decision.reason, policy: explain(policy, identity, attrs).summary } : null;
  const upstream = snapshot.upstreams.get(decision.route.upstream);
  const forwarding = snapshot.forwarding[decision.route.index];
  if (upstream === undefined || forwarding === undefined) {
    // compilePolicy checks every route's upstream; fail closed should that ever change.
    return { kind: 'refuse', context, code: 'GW_ERR_INTERNAL', fields: { why: 'route names an unknown upstream', route: decision.route.name }, close: false };
  }
  return {
    kind: 'forward',
    context,
    method,
    path: target.path,
    query: target.query,
    route: decision.route.name,
    rule: decision.rule,
    upstream,
    forwarding,
    decision: audit === null ? 'allow' : 'would-deny',
    audit,
  };
}
