// Pins a security decision: requests Node's HTTP layer refuses or would pass on in a form the
// policy never saw (framing errors, oversized or too many headers, unsupported expectations,
// CONNECT, HTTP/0.9 request lines, bad Host) get the gateway's documented answer (registry code,
// JSON body, security headers) and are never forwarded. Headers past a count limit used to be
// dropped silently, Content-Length included, turning a POST into a bodiless request upstream.
import t from 'tap';
import { ERRORS } from '../../src/errors/registry.js';
import { startStack } from '../helpers/harness.js';
import { firstJsonBody, rawExchange } from '../helpers/raw-exchange.js';

t.test('refusals before routing are documented answers, never forwards', async (t) => {
  const s = await startStack({ extra: 'server: { maxHeaders: 50 }' });
  t.teardown(() => s.close());
  const billing = s.pki.clients['billing']!;
  const creds = { ca: s.pki.root.certPem, cert: billing.chainPem, key: billing.keyPem };
  const many = Array.from({ length: 60 }, (_, i) => `X-H${i}: v\r\n`).join('');
  // Refusals whose framing is in doubt close the connection; a bad Host leaves it usable.
  const keepsConnection = new Set(['Host port out of range', 'two Host headers', 'HTTP/1.1 without Host']);
  const cases: [name: string, payload: string, status: number, code: keyof typeof ERRORS][] = [
    ['CL + TE', 'POST /orders/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400, 'GW_ERR_REQUEST_INVALID'],
    ['duplicate CL', 'POST /orders/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab', 400, 'GW_ERR_REQUEST_INVALID'],
    ['obs-fold', 'GET /orders/1 HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n', 400, 'GW_ERR_REQUEST_INVALID'],
    ['invalid version', 'GET /orders/1 HTTP/1.2\r\nHost: x\r\n\r\n', 400, 'GW_ERR_REQUEST_INVALID'],
    ['HTTP/0.9 request line', 'GET /orders/1\r\n\r\n', 400, 'GW_ERR_REQUEST_INVALID'],
    ['HTTP/2.0 on an HTTP/1 connection', 'GET /orders/1 HTTP/2.0\r\nHost: x\r\n\r\n', 400, 'GW_ERR_REQUEST_INVALID'],
    ['head over maxHeaderSize', `GET /orders/1 HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, 431, 'GW_ERR_HEADERS_TOO_LARGE'],
    ['more headers than maxHeaders', `POST /orders/1 HTTP/1.1\r\nHost: x\r\n${many}Content-Length: 2\r\n\r\nab`, 431, 'GW_ERR_HEADERS_TOO_LARGE'],
    ['Expect other than 100-continue', 'GET /orders/1 HTTP/1.1\r\nHost: x\r\nExpect: something\r\n\r\n', 417, 'GW_ERR_EXPECTATION_FAILED'],
    ['CONNECT', 'CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n', 501, 'GW_ERR_METHOD_NOT_SUPPORTED'],
    ['Host port out of range', 'GET /orders/1 HTTP/1.1\r\nHost: x:99999\r\n\r\n', 400, 'GW_ERR_HOST_INVALID'],
    ['two Host headers', 'GET /orders/1 HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n', 400, 'GW_ERR_HOST_INVALID'],
    ['HTTP/1.1 without Host', 'GET /orders/1 HTTP/1.1\r\n\r\n', 400, 'GW_ERR_HOST_INVALID'],
  ];
  for (const [name, payload, status, code] of cases) {
    const out = await rawExchange(s.gw.port, creds, payload, { endAfterWrite: false, timeoutMs: keepsConnection.has(name) ? 1_000 : 5_000 });
    t.same(out.statuses, [status], `${name}: ${status}`);
    t.match(firstJsonBody(out.text), { error: { code, message: ERRORS[code].message, requestId: String } }, `${name}: ${code} in the documented body`);
    t.match(out.text, /\r\ncontent-type: application\/json; charset=utf-8\r\n/i, `${name}: JSON`);
    t.match(out.text, /\r\nstrict-transport-security: /i, `${name}: security headers`);
    if (!keepsConnection.has(name)) t.ok(out.closedByServer, `${name}: the connection is closed`);
  }
  t.equal(s.upstream.seen.length, 0, 'none of them was forwarded');
  const ok = await s.send(billing, { path: '/orders/1' });
  t.equal(ok.status, 200, 'the gateway still serves');
});

t.test('Expect: 100-continue is answered only after the gateway decided', async (t) => {
  const s = await startStack();
  t.teardown(() => s.close());
  const billing = s.pki.clients['billing']!;
  const intruder = s.pki.clients['intruder']!;
  const head = (path: string) => `POST ${path} HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n`;
  const denied = await rawExchange(s.gw.port, { ca: s.pki.root.certPem, cert: intruder.chainPem, key: intruder.keyPem }, head('/orders/1'), { endAfterWrite: false });
  t.same(denied.statuses, [403], 'a denied request gets 403 and no 100 Continue');
  t.ok(denied.closedByServer, 'and the connection closes: its body is never read');
  const unrouted = await rawExchange(s.gw.port, { ca: s.pki.root.certPem, cert: billing.chainPem, key: billing.keyPem }, head('/nowhere'), { endAfterWrite: false });
  t.same(unrouted.statuses, [404]);
  const anonymous = await rawExchange(s.gw.port, { ca: s.pki.root.certPem }, head('/orders/1'), { endAfterWrite: false });
  t.same(anonymous.statuses, [401]);
  // Allowed: 100 Continue, then the body, then the upstream's answer.
  const allowed = await rawExchange(s.gw.port, { ca: s.pki.root.certPem, cert: billing.chainPem, key: billing.keyPem }, head('/orders/1') + 'hello', { endAfterWrite: false, timeoutMs: 3_000 });
  t.same(allowed.statuses, [100, 200], 'an allowed request gets 100 Continue, then 200');
  t.equal(s.upstream.seen.length, 1);
  t.equal(s.upstream.seen[0]!.bodyBytes, 5);
});
