// A request admitted and sent upstream whose own later bytes the HTTP/1 parser refuses (a chunk
// size that is not one, a trailer field the parser does not take) is answered 400 by the gateway.
// Before 2026-12-05 the log then said two things, on both engines: a "request refused" record under
// a fresh id with no method, path or identity (the id the client's 400 carried), and the request's
// own record, under the id the upstream had been sent, as `status: 499, clientAborted: true`, as if
// the client had left. An operator counting client aborts, or looking up the id of a 400, found the
// wrong story. Now the refusal is answered under the request's own id and the request's record is
// the refusal: one record, `request refused`, status 400, the code and the parser's reason, with the
// request's method, path and route. A client that really leaves mid-body is still a 499.
import t from 'tap';
import { DEFAULT_ROUTES_YAML, startStack, type LogRecord } from '../helpers/harness.js';
import { rawTlsExchange } from '../helpers/raw-tls-request.js';

t.test('a request refused in the middle of its body is logged as refused, under its own id', async (t) => {
  const seenIds: string[] = [];
  const s = await startStack({
    routes: DEFAULT_ROUTES_YAML,
    upstreamHandler: (req, res) => {
      seenIds.push(String(req.headers['x-request-id']));
      req.on('error', () => undefined);
      req.resume();
      req.on('end', () => res.writeHead(200, { 'content-length': '2' }).end('ok'));
    },
  });
  t.teardown(() => s.close());
  const billing = s.pki.clients['billing']!;
  const head = 'POST /orders/echo HTTP/1.1\r\nHost: orders.internal\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n';
  const send = (pieces: string[], endAfterWrite = false) =>
    rawTlsExchange({ port: s.gw.port, ca: s.pki.root.certPem, cert: billing.certPem, key: billing.keyPem, payload: pieces, pieceDelayMs: 250, timeoutMs: 3_000, endAfterWrite });
  const recordsFor = (id: string) => s.gw.logs.filter((l: LogRecord) => (l as Record<string, unknown>)['reqId'] === id) as Array<Record<string, unknown>>;
  const settle = async (id: string) => {
    for (let i = 0; i < 100 && recordsFor(id).length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 50));
  };

  const cases = [
    { name: 'a chunk size that is not one', rest: 'zz\r\n', reason: 'HPE_INVALID_CHUNK_SIZE' },
    { name: 'a Content-Length in the trailer section', rest: '0\r\nContent-Length: 5\r\n\r\n', reason: 'HPE_INVALID_CONTENT_LENGTH' },
    { name: 'a control byte in a trailer field', rest: '0\r\nX-Sum: a\u0001b\r\n\r\n', reason: /^HPE_/ },
  ];
  for (const c of cases) {
    await t.test(c.name, async (t) => {
      const before = seenIds.length;
      const refusedWithoutRequest = s.gw.logs.filter((l) => (l as Record<string, unknown>)['msg'] === 'request refused' && (l as Record<string, unknown>)['method'] === undefined).length;
      const r = await send([head, c.rest]);
      t.equal(seenIds.length, before + 1, 'the request had gone upstream');
      const upstreamId = seenIds[before]!;
      t.equal(r.responses.length, 1);
      t.equal(r.responses[0]?.status, 400);
      const body = JSON.parse(r.responses[0]?.body.toString() ?? '{}') as { error?: { code?: string; requestId?: string } };
      t.equal(body.error?.code, 'GW_ERR_REQUEST_INVALID');
      t.equal(body.error?.requestId, upstreamId, 'the answer names the request the upstream was sent');
      await settle(upstreamId);
      const records = recordsFor(upstreamId);
      t.equal(records.length, 1, 'one record for the request');
      t.match(records[0], { msg: 'request refused', status: 400, code: 'GW_ERR_REQUEST_INVALID', reason: c.reason, method: 'POST', path: '/orders/echo', route: 'orders', upstream: 'orders' });
      t.notOk('clientAborted' in (records[0] ?? {}), 'not a client abort');
      const after = s.gw.logs.filter((l) => (l as Record<string, unknown>)['msg'] === 'request refused' && (l as Record<string, unknown>)['method'] === undefined).length;
      t.equal(after, refusedWithoutRequest, 'no second record under another id');
    });
  }

  await t.test('a client that leaves in the middle of its body is still a client abort', async (t) => {
    const n = s.gw.logs.length;
    await send([head], true);
    const mine = () => s.gw.logs.slice(n).filter((l) => (l as Record<string, unknown>)['method'] === 'POST');
    for (let i = 0; i < 100 && mine().length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    t.match(mine(), [{ msg: 'request', status: 499, clientAborted: true, path: '/orders/echo' }]);
    t.equal(mine().length, 1);
  });

  await t.test('a malformed request before any was admitted keeps its own record', async (t) => {
    const n = s.gw.logs.length;
    const r = await send(['GET /orders/x HTTP/1.1\r\nHost: orders.internal\r\nContent-Length: x\r\n\r\n']);
    t.equal(r.responses[0]?.status, 400);
    const id = (JSON.parse(r.responses[0]?.body.toString() ?? '{}') as { error?: { requestId?: string } }).error?.requestId;
    t.match(s.gw.logs.slice(n).filter((l) => (l as Record<string, unknown>)['reqId'] === id), [{ msg: 'request refused', status: 400, code: 'GW_ERR_REQUEST_INVALID' }]);
  });
});
