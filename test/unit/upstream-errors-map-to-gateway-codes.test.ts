/**
 * Upstream error translation: undici's, Node's and OpenSSL's errors on the upstream leg become one
 * gateway code each (502 or 504, never 500), found on the error or up to two causes below it; the
 * original stays as `cause` and in `detail` for the log.
 */
import t from 'tap';
import { ERRORS, GatewayError } from '../../src/errors/registry.js';
import { translateUpstreamError } from '../../src/proxy/upstream-errors.js';

// The upstream identity check raises registry codes itself; they pass through unchanged.
const UPSTREAM_PIN_MISMATCH = 'GW_ERR_UPSTREAM_IDENTITY_MISMATCH';
const UPSTREAM_REVOKED = 'GW_ERR_UPSTREAM_CERT_REVOKED';
const UPSTREAM_REVOCATION_UNKNOWN = 'GW_ERR_UPSTREAM_CERT_REVOCATION_UNKNOWN';

const coded = (code: string, message = `failed with ${code}`, cause?: unknown): Error =>
  Object.assign(new Error(message, cause === undefined ? undefined : { cause }), { code });

t.test('codes on the error itself', async (t) => {
  const rows: [string, string][] = [
    ['ECONNREFUSED', 'GW_ERR_UPSTREAM_UNREACHABLE'],
    ['ENOTFOUND', 'GW_ERR_UPSTREAM_UNREACHABLE'],
    ['ECONNRESET', 'GW_ERR_UPSTREAM_RESET'],
    ['UND_ERR_SOCKET', 'GW_ERR_UPSTREAM_RESET'],
    ['UND_ERR_CONNECT_TIMEOUT', 'GW_ERR_UPSTREAM_TIMEOUT'],
    ['UND_ERR_HEADERS_TIMEOUT', 'GW_ERR_UPSTREAM_TIMEOUT'],
    ['UND_ERR_BODY_TIMEOUT', 'GW_ERR_UPSTREAM_TIMEOUT'],
    ['UND_ERR_RES_CONTENT_LENGTH_MISMATCH', 'GW_ERR_UPSTREAM_PROTOCOL'],
    ['HPE_INVALID_CONSTANT', 'GW_ERR_UPSTREAM_PROTOCOL'],
    ['DEPTH_ZERO_SELF_SIGNED_CERT', 'GW_ERR_UPSTREAM_CERT_UNTRUSTED'],
    ['ERR_TLS_CERT_ALTNAME_INVALID', 'GW_ERR_UPSTREAM_CERT_NAME_MISMATCH'],
    ['CERT_HAS_EXPIRED', 'GW_ERR_UPSTREAM_CERT_EXPIRED'],
    ['CERT_NOT_YET_VALID', 'GW_ERR_UPSTREAM_CERT_EXPIRED'],
    ['CERT_REVOKED', 'GW_ERR_UPSTREAM_CERT_REVOKED'],
    ['CRL_HAS_EXPIRED', 'GW_ERR_UPSTREAM_TLS'],
    [UPSTREAM_PIN_MISMATCH, 'GW_ERR_UPSTREAM_IDENTITY_MISMATCH'],
    [UPSTREAM_REVOKED, 'GW_ERR_UPSTREAM_CERT_REVOKED'],
    [UPSTREAM_REVOCATION_UNKNOWN, 'GW_ERR_UPSTREAM_CERT_REVOCATION_UNKNOWN'],
  ];
  for (const [code, want] of rows) {
    const err = coded(code);
    const g = translateUpstreamError(err, 'orders');
    t.equal(g.code, want, code);
    t.equal(g.cause, err, `${code}: the original is the cause`);
    t.same(g.detail, { upstream: 'orders', upstreamError: code, upstreamMessage: err.message }, `${code}: detail for the log`);
  }
});

t.test('families of codes without an entry of their own', async (t) => {
  t.equal(translateUpstreamError(coded('HPE_INVALID_HEADER_TOKEN'), 'u').code, 'GW_ERR_UPSTREAM_PROTOCOL', 'any llhttp parse error');
  t.equal(translateUpstreamError(coded('ERR_SSL_WRONG_VERSION_NUMBER'), 'u').code, 'GW_ERR_UPSTREAM_TLS', 'an OpenSSL error');
  t.equal(translateUpstreamError(coded('ERR_TLS_HANDSHAKE_TIMEOUT'), 'u').code, 'GW_ERR_UPSTREAM_TLS', 'a Node TLS error');
  const parser = Object.assign(new Error('Response does not match the HTTP/1.1 protocol (Invalid status code)'), { name: 'HTTPParserError' });
  t.equal(translateUpstreamError(parser, 'u').code, 'GW_ERR_UPSTREAM_PROTOCOL', 'undici parse error without a code, known by its name');
});

t.test('the code is looked for up to two causes deep', async (t) => {
  const oneDeep = coded('UND_ERR_CONNECT', 'connect failed', coded('CERT_HAS_EXPIRED'));
  t.equal(translateUpstreamError(oneDeep, 'u').code, 'GW_ERR_UPSTREAM_CERT_EXPIRED', 'an unknown code on top does not hide a known one below');
  const twoDeep = new Error('fetch failed', { cause: new Error('wrapper', { cause: coded('ECONNRESET') }) });
  t.equal(translateUpstreamError(twoDeep, 'u').code, 'GW_ERR_UPSTREAM_RESET');
  const g = translateUpstreamError(twoDeep, 'u');
  t.equal(g.detail?.['upstreamError'], undefined, 'the detail describes the top error, which has no code');
  t.equal(g.detail?.['upstreamMessage'], 'fetch failed');

  // Deeper than that is not searched: the answer falls back to unreachable.
  const threeDeep = new Error('a', { cause: new Error('b', { cause: new Error('c', { cause: coded('CERT_REVOKED') }) }) });
  t.equal(translateUpstreamError(threeDeep, 'u').code, 'GW_ERR_UPSTREAM_UNREACHABLE');
  // The first known code on the way down wins.
  const both = coded('ETIMEDOUT', 'timed out', coded('ECONNREFUSED'));
  t.equal(translateUpstreamError(both, 'u').code, 'GW_ERR_UPSTREAM_TIMEOUT');
});

t.test('anything unrecognised is "unreachable", never an internal error', async (t) => {
  const cases: [unknown, string, string | undefined][] = [
    [new Error('something else'), 'something else', undefined],
    [coded('EWHATEVER'), 'failed with EWHATEVER', 'EWHATEVER'],
    [Object.assign(new Error('numeric code'), { code: 42 }), 'numeric code', undefined],
    ['a string was thrown', 'a string was thrown', undefined],
    [null, 'null', undefined],
    [undefined, 'undefined', undefined],
  ];
  for (const [err, message, upstreamError] of cases) {
    const g = translateUpstreamError(err, 'orders');
    t.equal(g.code, 'GW_ERR_UPSTREAM_UNREACHABLE', message);
    t.equal(g.status, 502);
    t.equal(g.cause, err, `${message}: kept as the cause`);
    t.equal(g.detail?.['upstreamMessage'], message);
    t.equal(g.detail?.['upstreamError'], upstreamError);
  }
});

t.test('a GatewayError passes through unchanged', async (t) => {
  const own = new GatewayError('GW_ERR_UPSTREAM_OVERLOADED');
  t.equal(translateUpstreamError(own, 'u').code, 'GW_ERR_UPSTREAM_OVERLOADED', "a GatewayError's own code is kept");
});

t.test('every code it can produce is an upstream code answered with 502, 503 or 504', async (t) => {
  const produced = new Set<string>();
  for (const code of ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'HPE_X', 'ERR_SSL_X', 'CERT_REVOKED', 'INVALID_CA', 'UNABLE_TO_GET_CRL', UPSTREAM_PIN_MISMATCH, UPSTREAM_REVOKED, UPSTREAM_REVOCATION_UNKNOWN, 'ERR_TLS_CERT_ALTNAME_INVALID', 'CERT_HAS_EXPIRED', 'UND_ERR_INFO']) {
    produced.add(translateUpstreamError(coded(code), 'u').code);
  }
  for (const code of produced) {
    t.match(code, /^GW_ERR_UPSTREAM_/, code);
    t.ok([502, 503, 504].includes(ERRORS[code as keyof typeof ERRORS].status ?? 0), `${code} is a gateway-side status`);
  }
});
