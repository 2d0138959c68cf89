/**
 * The shapes the data plane logs: an identity, a revocation refusal, a duration. One place, so the
 * records tests and operators rely on stay the same wherever they are written from.
 */
import type { ErrorCode } from '../errors/registry.js';
import type { PeerIdentity } from '../identity/peer-identity.js';
import type { RevocationVerdict } from '../revocation/revocation-policy.js';
import type { RequestDecision } from '../telemetry/metrics.js';

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

export function elapsedMs(started: bigint): number {
  return Number(process.hrtime.bigint() - started) / 1e6;
}
