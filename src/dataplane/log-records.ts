/**
 * The shapes the data plane logs: an identity, a revocation refusal, a duration. One place, so the
 * records tests and operators rely on stay the same wherever they are written from.
 */
import type { ErrorCode } from '../errors/registry.js';
import type { PeerIdentity } from '../identity/peer-identity.js';
import type { RevocationVerdict } from '../revocation/revocation-policy.js';
import type { RequestDecision } from '../telemetry/metrics.js';
import type { InfoRecord } from '../log/record-line.js';

/** The refusal codes that say how policy decided; every other refusal happened before policy. */
export function refusalDecision(code: ErrorCode): RequestDecision {
  return code === 'GW_ERR_POLICY_DENIED' ? 'deny' : code === 'GW_ERR_ROUTE_NOT_FOUND' ? 'no-route' : 'refused';
}

export function identityLog(id: PeerIdentity) {
  return {
    subject: id.subject.rfc4514,
    issuer: id.issuer.rfc4514,
    serial: id.serial,
    fingerprint: id.fingerprint256,
    spiffe: id.spiffe?.uri,
    ...(id.san.dns.length > 0 ? { dns: id.san.dns } : {}),
  };
}

export function revocationLog(v: Extract<RevocationVerdict, { ok: false }>) {
  return { serial: v.serial, subject: v.subject, issuer: v.issuer, reason: v.reason, revokedAt: v.revokedAt?.toISOString() ?? null, crlNumber: v.crlNumber, source: v.source ?? 'crl' };
}

export function revocationCode(v: Extract<RevocationVerdict, { ok: false }>): 'GW_ERR_CLIENT_CERT_REVOKED' | 'GW_ERR_CLIENT_CERT_REVOCATION_UNKNOWN' {
  return v.revoked ? 'GW_ERR_CLIENT_CERT_REVOKED' : 'GW_ERR_CLIENT_CERT_REVOCATION_UNKNOWN';
}

/** Milliseconds since `started` (process.hrtime.bigint()), to the microsecond. */
export function elapsedMs(started: bigint): number {
  return elapsedMicros(started) / 1000;
}

/** Whole microseconds since `started` (process.hrtime.bigint()). */
export function elapsedMicros(started: bigint): number {
  return Math.round(Number(process.hrtime.bigint() - started) / 1000);
}

/**
 * `String(micros / 1000)`, the way a duration in milliseconds reads in a record, without
 * converting a fraction to text (V8's shortest-form double printing costs about 0.3 µs a call,
 * more than the rest of the access record's numbers together): whole milliseconds, then up to
 * three digits with the trailing zeros dropped.
 */
export function formatMillis(micros: number): string {
  // Beyond 10^15 µs (31 years) the division itself rounds: String() says what the number is.
  if (!Number.isSafeInteger(micros) || micros < 0 || micros > 1e15) return String(micros / 1000);
  const ms = Math.floor(micros / 1000);
  const frac = micros - ms * 1000;
  if (frac === 0) return `${ms}`;
  if (frac % 100 === 0) return `${ms}.${frac / 100}`;
  if (frac % 10 === 0) return `${ms}.${frac < 100 ? '0' : ''}${frac / 10}`;
  return `${ms}.${frac < 10 ? '00' : frac < 100 ? '0' : ''}${frac}`;
}

/** One upstream attempt of a request that was retried, as its access record lists it. */
export interface Attempt {
  readonly target: string;
  readonly outcome: string | number;
  readonly durationMs: number;
}

/**
 * The access record of a proxied request whose response was relayed (whole, or cut after it
 * started). Its fields in the order the record shows them; the optional ones are written only when
 * set. As an InfoRecord it writes itself as one line (log/record-line.ts) when it carries none of
 * the rare fields (audit, attempts, cut), and as an object through pino otherwise.
 */
export class ServedRecord implements InfoRecord {
  constructor(
    readonly reqId: string,
    /** '1.1', '1.0' or '2.0' (HTTP/2 streams and HTTP/1.1 share the port and this record). */
    readonly httpVersion: string,
    readonly method: string,
    readonly path: string,
    /** The path sent upstream, when a rewrite changed it. */
    readonly upstreamPath: string | undefined,
    readonly route: string,
    readonly rule: string | null,
    readonly upstream: string,
    readonly decision: string,
    /** Why an audit-mode route's policy would have denied. */
    readonly audit: Readonly<Record<string, unknown>> | null,
    readonly target: string,
    readonly status: number,
    readonly bytesOut: number,
    /** The request's duration so far, in whole microseconds (written as durationMs). */
    readonly durationMicros: number,
    readonly attempts: readonly Attempt[] | null,
    /** The error that cut the response after it started. */
    readonly cut: Error | null,
    readonly clientAborted: boolean,
  ) {}

  /** Only the common record is composed as a line; the rest go through pino as objects. */
  get composable(): boolean {
    return this.audit === null && this.attempts === null && this.cut === null;
  }

  asObject(): Record<string, unknown> {
    return {
      reqId: this.reqId,
      httpVersion: this.httpVersion,
      method: this.method,
      path: this.path,
      upstreamPath: this.upstreamPath,
      route: this.route,
      rule: this.rule,
      upstream: this.upstream,
      decision: this.decision,
      audit: this.audit !== null ? this.audit : undefined,
      target: this.target,
      status: this.status,
      bytesOut: this.bytesOut,
      durationMs: this.durationMicros / 1000,
      attempts: this.attempts !== null ? this.attempts : undefined,
      cut: this.cut ? this.cut.message : undefined,
      clientAborted: this.cut ? this.clientAborted : undefined,
    };
  }

  /** The fields of asObject() as pino writes them, for a composable record (no audit, attempts or cut). */
  jsonMembers(): string {
    const q = quoted;
    const unique = JSON.stringify;
    const rewritten = this.upstreamPath !== undefined ? `,"upstreamPath":${unique(this.upstreamPath)}` : '';
    // The request id and the paths differ from request to request: quoted afresh, never kept.
    return `"reqId":${unique(this.reqId)},"httpVersion":${q(this.httpVersion)},"method":${q(this.method)},"path":${unique(this.path)}${rewritten},"route":${q(this.route)},"rule":${this.rule === null ? 'null' : q(this.rule)},"upstream":${q(this.upstream)},"decision":${q(this.decision)},"target":${q(this.target)},"status":${jsonNumber(this.status)},"bytesOut":${jsonNumber(this.bytesOut)},"durationMs":${Number.isFinite(this.durationMicros) ? formatMillis(this.durationMicros) : 'null'}`;
  }
}

/**
 * JSON.stringify of a string, remembered for the few strings every record repeats (route, rule,
 * upstream, decision, target, method, HTTP version): a lookup instead of a scan and a new string.
 * At most QUOTED_MAX are kept; strings met after that (a client sending many methods) are quoted
 * each time, so what a client sends cannot grow it.
 */
function quoted(value: string): string {
  let json = QUOTED.get(value);
  if (json === undefined) {
    json = JSON.stringify(value);
    if (QUOTED.size < QUOTED_MAX && value.length <= 256) QUOTED.set(value, json);
  }
  return json;
}
const QUOTED = new Map<string, string>();
const QUOTED_MAX = 1024;

/** A number as pino writes it: not finite is null. */
function jsonNumber(n: number): string {
  return Number.isFinite(n) ? String(n) : 'null';
}
