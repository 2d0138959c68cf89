/**
 * Upstream error translation: the one place where undici's and OpenSSL's errors on the upstream
 * leg become gateway error codes. The original error stays as `cause`, for the log only.
 * An upstream's fault is never a 500. The gateway's own upstream verdicts (pin, revocation,
 * src/proxy/upstream-pool.ts) are GatewayErrors from the start and keep their code.
 */
import { ERRORS, GatewayError, type ErrorCode } from '../errors/registry.js';

const BY_CODE: Readonly<Record<string, ErrorCode>> = {
  ECONNREFUSED: 'GW_ERR_UPSTREAM_UNREACHABLE',
  EHOSTUNREACH: 'GW_ERR_UPSTREAM_UNREACHABLE',
  ENETUNREACH: 'GW_ERR_UPSTREAM_UNREACHABLE',
  ENOTFOUND: 'GW_ERR_UPSTREAM_UNREACHABLE',
  EAI_AGAIN: 'GW_ERR_UPSTREAM_UNREACHABLE',
  EADDRNOTAVAIL: 'GW_ERR_UPSTREAM_UNREACHABLE',
  ECONNRESET: 'GW_ERR_UPSTREAM_RESET',
  EPIPE: 'GW_ERR_UPSTREAM_RESET',
  UND_ERR_SOCKET: 'GW_ERR_UPSTREAM_RESET',
  // An HTTP/2 upstream's REFUSED_STREAM (src/proxy/http2-upstream-client.ts) that was not retried.
  UND_ERR_REFUSED_STREAM: 'GW_ERR_UPSTREAM_RESET',
  UND_ERR_CLOSED: 'GW_ERR_UPSTREAM_RESET',
  UND_ERR_DESTROYED: 'GW_ERR_UPSTREAM_RESET',
  UND_ERR_CONNECT_TIMEOUT: 'GW_ERR_UPSTREAM_TIMEOUT',
  UND_ERR_HEADERS_TIMEOUT: 'GW_ERR_UPSTREAM_TIMEOUT',
  UND_ERR_BODY_TIMEOUT: 'GW_ERR_UPSTREAM_TIMEOUT',
  ETIMEDOUT: 'GW_ERR_UPSTREAM_TIMEOUT',
  UND_ERR_RES_CONTENT_LENGTH_MISMATCH: 'GW_ERR_UPSTREAM_PROTOCOL',
  UND_ERR_RES_EXCEEDED_MAX_SIZE: 'GW_ERR_UPSTREAM_PROTOCOL',
  UND_ERR_HEADERS_OVERFLOW: 'GW_ERR_UPSTREAM_PROTOCOL',
  UND_ERR_INFO: 'GW_ERR_UPSTREAM_PROTOCOL',
  HPE_INVALID_CONSTANT: 'GW_ERR_UPSTREAM_PROTOCOL',
  // undici 7 reads a status below 100 (`HTTP/1.1 099`) as an interim answer and then fails its own
  // assertion when the message completes: the upstream's bytes broke the client, not the network.
  ERR_ASSERTION: 'GW_ERR_UPSTREAM_PROTOCOL',
  // A `protocol: http2` upstream that does not speak h2 refuses the handshake (no ALPN overlap).
  ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL: 'GW_ERR_UPSTREAM_PROTOCOL',
  // TLS: the upstream's certificate, judged as strictly as a client's.
  UNABLE_TO_GET_ISSUER_CERT: 'GW_ERR_UPSTREAM_CERT_UNTRUSTED',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'GW_ERR_UPSTREAM_CERT_UNTRUSTED',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'GW_ERR_UPSTREAM_CERT_UNTRUSTED',
  SELF_SIGNED_CERT_IN_CHAIN: 'GW_ERR_UPSTREAM_CERT_UNTRUSTED',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'GW_ERR_UPSTREAM_CERT_UNTRUSTED',
  CERT_UNTRUSTED: 'GW_ERR_UPSTREAM_CERT_UNTRUSTED',
  CERT_SIGNATURE_FAILURE: 'GW_ERR_UPSTREAM_CERT_UNTRUSTED',
  INVALID_PURPOSE: 'GW_ERR_UPSTREAM_CERT_UNTRUSTED',
  INVALID_CA: 'GW_ERR_UPSTREAM_CERT_UNTRUSTED',
  ERR_TLS_CERT_ALTNAME_INVALID: 'GW_ERR_UPSTREAM_CERT_NAME_MISMATCH',
  CERT_HAS_EXPIRED: 'GW_ERR_UPSTREAM_CERT_EXPIRED',
  CERT_NOT_YET_VALID: 'GW_ERR_UPSTREAM_CERT_EXPIRED',
  CERT_REVOKED: 'GW_ERR_UPSTREAM_CERT_REVOKED',
  UNABLE_TO_GET_CRL: 'GW_ERR_UPSTREAM_TLS',
  CRL_HAS_EXPIRED: 'GW_ERR_UPSTREAM_TLS',
};

/**
 * An error carrying one of undici's codes (UND_ERR_SOCKET, UND_ERR_HEADERS_TIMEOUT...), made by
 * the gateway's own upstream clients (http1-upstream-client.ts, http2-upstream-client.ts) so that
 * their failures translate here exactly as undici's do.
 */
export function undiciCodedError(message: string, code: string): Error {
  return Object.assign(new Error(message), { code });
}

/** A registry code carried by one of the gateway's own errors (see the module comment). */
function registryCode(c: string): ErrorCode | undefined {
  return c.startsWith('GW_ERR_') && Object.hasOwn(ERRORS, c) ? (c as ErrorCode) : undefined;
}

/**
 * Maps an error from the upstream leg to a GatewayError (502 or 504). Always a new one with the
 * original as `cause`, also for the gateway's own verdicts, so the log names what failed.
 */
export function translateUpstreamError(err: unknown, upstream: string): GatewayError {
  let code: ErrorCode | undefined;
  let cur: unknown = err;
  // undici sometimes wraps the socket or TLS error; look one or two causes deep.
  for (let i = 0; i < 3 && cur && code === undefined; i++) {
    const c = (cur as { code?: unknown }).code;
    if (typeof c === 'string') {
      code = BY_CODE[c] ?? registryCode(c) ?? (c.startsWith('HPE_') ? 'GW_ERR_UPSTREAM_PROTOCOL' : c.startsWith('ERR_SSL_') || c.startsWith('ERR_TLS_') ? 'GW_ERR_UPSTREAM_TLS' : undefined);
      // undici 7 reports a 101 to a request that asked for no upgrade as a socket error named
      // "bad upgrade": the upstream's answer broke the exchange, which is not a reset to retry.
      if (c === 'UND_ERR_SOCKET' && (cur as { message?: unknown }).message === 'bad upgrade') code = 'GW_ERR_UPSTREAM_PROTOCOL';
    }
    // undici's llhttp build reports some parse errors (a garbage status line, an invalid status)
    // without a code; its name is the stable part.
    if (code === undefined && (cur as { name?: unknown }).name === 'HTTPParserError') code = 'GW_ERR_UPSTREAM_PROTOCOL';
    cur = (cur as { cause?: unknown }).cause;
  }
  const e = err as { code?: unknown; message?: unknown };
  return new GatewayError(code ?? 'GW_ERR_UPSTREAM_UNREACHABLE', {
    cause: err,
    detail: { upstream, upstreamError: typeof e?.code === 'string' ? e.code : undefined, upstreamMessage: typeof e?.message === 'string' ? e.message : String(err) },
  });
}
