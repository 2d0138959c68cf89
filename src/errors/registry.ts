/**
 * Errors: the one registry of stable error codes. Every error the gateway itself produces carries a
 * code from here; the HTTP status and the client-facing message are fixed per code, and
 * docs/errors.md documents the fix (a test keeps the two in step).
 */

export interface ErrorSpec {
  /** HTTP status, or null for errors that never reach a client (config, startup). */
  readonly status: number | null;
  /** Client-facing message: stable, free of certificate details and causes. */
  readonly message: string;
}

export const ERRORS = {
  GW_ERR_CLIENT_CERT_MISSING: { status: 401, message: 'A client certificate is required.' },
  GW_ERR_CLIENT_CERT_UNTRUSTED: { status: 401, message: 'The client certificate is not issued by a trusted CA.' },
  GW_ERR_CLIENT_CERT_EXPIRED: { status: 401, message: 'The client certificate has expired.' },
  GW_ERR_CLIENT_CERT_NOT_YET_VALID: { status: 401, message: 'The client certificate is not yet valid.' },
  GW_ERR_CLIENT_CERT_REVOKED: { status: 401, message: 'The client certificate has been revoked.' },
  GW_ERR_CLIENT_CERT_USAGE: { status: 401, message: 'The certificate may not be used as a client certificate.' },
  GW_ERR_CLIENT_CERT_INVALID: { status: 401, message: 'The client certificate could not be verified.' },
  GW_ERR_CLIENT_CERT_REVOCATION_UNKNOWN: { status: 401, message: 'The revocation status of the client certificate could not be established.' },
  GW_ERR_PATH_INVALID: { status: 400, message: 'The request path is ambiguous or malformed.' },
  GW_ERR_HOST_INVALID: { status: 400, message: 'The Host header is missing or malformed.' },
  GW_ERR_REQUEST_INVALID: { status: 400, message: 'The request is malformed.' },
  GW_ERR_REQUEST_TIMEOUT: { status: 408, message: 'The request was not received in time.' },
  GW_ERR_HEADERS_TOO_LARGE: { status: 431, message: 'The request headers are too large or too many.' },
  GW_ERR_EXPECTATION_FAILED: { status: 417, message: 'The expectation in the Expect header is not supported.' },
  GW_ERR_METHOD_NOT_SUPPORTED: { status: 501, message: 'The request method is not supported by the gateway.' },
  GW_ERR_UPGRADE_INVALID: { status: 400, message: 'The WebSocket upgrade request is malformed.' },
  GW_ERR_UPGRADE_NOT_SUPPORTED: { status: 501, message: 'The gateway upgrades connections to WebSocket only.' },
  GW_ERR_ROUTE_NOT_FOUND: { status: 404, message: 'No route matches this request.' },
  GW_ERR_POLICY_DENIED: { status: 403, message: 'The client identity is not allowed on this route.' },
  GW_ERR_UPSTREAM_UNREACHABLE: { status: 502, message: 'The upstream could not be reached.' },
  GW_ERR_UPSTREAM_RESET: { status: 502, message: 'The upstream closed the connection.' },
  GW_ERR_UPSTREAM_CERT_UNTRUSTED: { status: 502, message: 'The upstream certificate is not trusted.' },
  GW_ERR_UPSTREAM_CERT_NAME_MISMATCH: { status: 502, message: 'The upstream certificate does not carry the expected name.' },
  GW_ERR_UPSTREAM_CERT_EXPIRED: { status: 502, message: 'The upstream certificate has expired or is not yet valid.' },
  GW_ERR_UPSTREAM_CERT_REVOKED: { status: 502, message: 'The upstream certificate has been revoked.' },
  GW_ERR_UPSTREAM_CERT_REVOCATION_UNKNOWN: { status: 502, message: 'The revocation status of the upstream certificate could not be established.' },
  GW_ERR_UPSTREAM_IDENTITY_MISMATCH: { status: 502, message: 'The upstream certificate does not match the pinned identity.' },
  GW_ERR_UPSTREAM_TLS: { status: 502, message: 'The TLS handshake with the upstream failed.' },
  GW_ERR_UPSTREAM_PROTOCOL: { status: 502, message: 'The upstream sent an invalid response.' },
  GW_ERR_UPSTREAM_TIMEOUT: { status: 504, message: 'The upstream did not answer in time.' },
  GW_ERR_UPSTREAM_OVERLOADED: { status: 503, message: 'The upstream has no capacity for this request right now.' },
  GW_ERR_UPSTREAM_UNAVAILABLE: { status: 503, message: 'No target of the upstream is available.' },
  GW_ERR_RATE_LIMITED: { status: 429, message: 'Too many requests from this client; retry later.' },
  GW_ERR_SHUTTING_DOWN: { status: 503, message: 'The gateway is shutting down.' },
  GW_ERR_INTERNAL: { status: 500, message: 'The gateway failed to handle the request.' },
  GW_ERR_CONFIG_INVALID: { status: null, message: 'The configuration is invalid.' },
  GW_ERR_CONFIG_UNREADABLE: { status: null, message: 'The configuration file could not be read.' },
  GW_ERR_TLS_MATERIAL: { status: null, message: 'A certificate, key or CA file could not be loaded.' },
  GW_ERR_HTTP2_ABUSE: { status: null, message: 'The HTTP/2 connection was closed for resetting streams faster than allowed.' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

/** An error the gateway raises on purpose. Branch on `code`; `cause` is for the log only. */
export class GatewayError extends Error {
  readonly code: ErrorCode;
  readonly status: number | null;
  /** Structured detail for the log (never sent to the client). */
  readonly detail: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, opts: { detail?: Record<string, unknown>; cause?: unknown; message?: string } = {}) {
    super(opts.message ?? ERRORS[code].message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'GatewayError';
    this.code = code;
    this.status = ERRORS[code].status;
    this.detail = opts.detail;
  }
}

export function isGatewayError(err: unknown): err is GatewayError {
  return typeof err === 'object' && err !== null && typeof (err as { code?: unknown }).code === 'string' &&
    Object.hasOwn(ERRORS, (err as { code: string }).code) && (err as Error).name === 'GatewayError';
}
