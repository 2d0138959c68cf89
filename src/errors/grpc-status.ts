/**
 * gRPC status codes for the gateway's own errors. A gRPC client reads only `grpc-status` and
 * `grpc-message` (an HTTP status other than 200 becomes UNKNOWN or UNAVAILABLE on its side and loses
 * the reason), so every registry code maps to one gRPC code here. The table is typed over the
 * registry's codes: a new error code does not compile until it is mapped. docs/errors.md shows the
 * mapping next to the HTTP status.
 *
 * Where the registry's HTTP status and gRPC's own HTTP-to-gRPC table disagree, the gRPC code says
 * what a gRPC client should do: certificate refusals are UNAUTHENTICATED (get a valid credential),
 * policy is PERMISSION_DENIED (the credential is fine, access is not), upstream trouble is
 * UNAVAILABLE (retryable), timeouts are DEADLINE_EXCEEDED.
 */
import type { ErrorCode } from './registry.js';

/** The gRPC status codes (grpc/doc/statuscodes.md). */
export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

export type GrpcStatus = (typeof GrpcStatus)[keyof typeof GrpcStatus];

const S = GrpcStatus;

/**
 * Every registry code's gRPC status. Errors that never reach a client (config, startup) are mapped
 * too (to INTERNAL, unless a closer code exists), so the table stays exhaustive without exceptions.
 *
 * GW_ERR_ROUTE_NOT_FOUND is UNIMPLEMENTED, not NOT_FOUND: a route is matched on the method path
 * `/pkg.Service/Method`, so no route means "this service or method is not served here", which is
 * what UNIMPLEMENTED means in gRPC (and what a gRPC server answers for an unknown method, and
 * Envoy's and gRPC's mapping of HTTP 404). NOT_FOUND would tell the client that an entity its
 * request named is missing, a statement about the application's data the gateway cannot make.
 *
 * Every upstream failure that is not a timeout is UNAVAILABLE (Envoy's mapping of 502 and 503),
 * the upstream's certificate failures and a malformed or HTTP/1.1-only upstream included: the
 * client's call was fine, the gateway could not carry it, and another replica may.
 */
export const GRPC_STATUS: Readonly<Record<ErrorCode, GrpcStatus>> = {
  GW_ERR_CLIENT_CERT_MISSING: S.UNAUTHENTICATED,
  GW_ERR_CLIENT_CERT_UNTRUSTED: S.UNAUTHENTICATED,
  GW_ERR_CLIENT_CERT_EXPIRED: S.UNAUTHENTICATED,
  GW_ERR_CLIENT_CERT_NOT_YET_VALID: S.UNAUTHENTICATED,
  GW_ERR_CLIENT_CERT_REVOKED: S.UNAUTHENTICATED,
  GW_ERR_CLIENT_CERT_USAGE: S.UNAUTHENTICATED,
  GW_ERR_CLIENT_CERT_INVALID: S.UNAUTHENTICATED,
  GW_ERR_CLIENT_CERT_REVOCATION_UNKNOWN: S.UNAUTHENTICATED,
  GW_ERR_PATH_INVALID: S.INVALID_ARGUMENT,
  GW_ERR_HOST_INVALID: S.INVALID_ARGUMENT,
  GW_ERR_REQUEST_INVALID: S.INVALID_ARGUMENT,
  GW_ERR_REQUEST_TIMEOUT: S.DEADLINE_EXCEEDED,
  GW_ERR_HEADERS_TOO_LARGE: S.RESOURCE_EXHAUSTED,
  GW_ERR_EXPECTATION_FAILED: S.INVALID_ARGUMENT,
  GW_ERR_METHOD_NOT_SUPPORTED: S.UNIMPLEMENTED,
  GW_ERR_UPGRADE_INVALID: S.INVALID_ARGUMENT,
  GW_ERR_UPGRADE_NOT_SUPPORTED: S.UNIMPLEMENTED,
  GW_ERR_ROUTE_NOT_FOUND: S.UNIMPLEMENTED,
  GW_ERR_POLICY_DENIED: S.PERMISSION_DENIED,
  GW_ERR_UPSTREAM_UNREACHABLE: S.UNAVAILABLE,
  GW_ERR_UPSTREAM_RESET: S.UNAVAILABLE,
  GW_ERR_UPSTREAM_CERT_UNTRUSTED: S.UNAVAILABLE,
  GW_ERR_UPSTREAM_CERT_NAME_MISMATCH: S.UNAVAILABLE,
  GW_ERR_UPSTREAM_CERT_EXPIRED: S.UNAVAILABLE,
  GW_ERR_UPSTREAM_CERT_REVOKED: S.UNAVAILABLE,
  GW_ERR_UPSTREAM_CERT_REVOCATION_UNKNOWN: S.UNAVAILABLE,
  GW_ERR_UPSTREAM_IDENTITY_MISMATCH: S.UNAVAILABLE,
  GW_ERR_UPSTREAM_TLS: S.UNAVAILABLE,
  GW_ERR_UPSTREAM_PROTOCOL: S.UNAVAILABLE,
  GW_ERR_UPSTREAM_TIMEOUT: S.DEADLINE_EXCEEDED,
  GW_ERR_UPSTREAM_OVERLOADED: S.UNAVAILABLE,
  GW_ERR_UPSTREAM_UNAVAILABLE: S.UNAVAILABLE,
  GW_ERR_RATE_LIMITED: S.RESOURCE_EXHAUSTED,
  GW_ERR_SHUTTING_DOWN: S.UNAVAILABLE,
  GW_ERR_INTERNAL: S.INTERNAL,
  GW_ERR_CONFIG_INVALID: S.INTERNAL,
  GW_ERR_CONFIG_UNREADABLE: S.INTERNAL,
  GW_ERR_TLS_MATERIAL: S.INTERNAL,
  // Logged only today; if it were ever answered, gRPC maps ENHANCE_YOUR_CALM to RESOURCE_EXHAUSTED.
  GW_ERR_HTTP2_ABUSE: S.RESOURCE_EXHAUSTED,
};
