/**
 * The gateway's own error answers (respond-error.ts) as functions: the body is exactly
 * {"error":{"code","message","requestId"}}, the status comes from the registry (500 for a code that
 * has none, should one ever be answered), and an answer that can no longer be written cleanly
 * (headers already out, response ended or destroyed) cuts the response instead: a second status
 * line inside a started response would be read by the client as part of the first. The wire format
 * itself is pinned end to end by test/integration/gateway-own-responses-share-one-format.
 */
import t from 'tap';
import { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import { ERRORS, type ErrorCode } from '../../src/errors/registry.js';
import { errorBody, respondError, statusOf } from '../../src/dataplane/respond-error.js';

/** A response that is never attached to a connection: what it writes stays in memory. */
function detachedResponse(method = 'GET'): ServerResponse {
  const req = new IncomingMessage(new Socket());
  req.method = method;
  return new ServerResponse(req);
}

t.test('statusOf: the registry status, 500 for codes without one', async (t) => {
  for (const [code, spec] of Object.entries(ERRORS) as [ErrorCode, (typeof ERRORS)[ErrorCode]][]) {
    t.equal(statusOf(code), spec.status ?? 500, code);
  }
  t.equal(statusOf('GW_ERR_CONFIG_INVALID'), 500);
});

t.test('errorBody: code, registry message and request id, nothing else', async (t) => {
  t.strictSame(JSON.parse(errorBody('GW_ERR_POLICY_DENIED', 'req-1')), {
    error: { code: 'GW_ERR_POLICY_DENIED', message: ERRORS.GW_ERR_POLICY_DENIED.message, requestId: 'req-1' },
  });
});

t.test('a clean answer reports its status and ends the response', async (t) => {
  const res = detachedResponse();
  t.equal(respondError(res, 'GW_ERR_UPSTREAM_OVERLOADED', 'req-2', { close: true, headers: { 'retry-after': '1' } }), 503);
  t.ok(res.headersSent);
  t.ok(res.writableEnded);
  t.equal(res.shouldKeepAlive, false, 'close: the connection is not kept alive');
  t.notOk(res.destroyed);
});

t.test('an answer that can no longer be written cuts the response and reports 0', async (t) => {
  const started = detachedResponse();
  started.writeHead(200, { 'content-length': '10' });
  t.equal(respondError(started, 'GW_ERR_INTERNAL', 'req-3'), 0, 'headers already sent');
  t.ok(started.destroyed, 'cut, so the client sees a truncated response rather than a second one');

  const ended = detachedResponse();
  ended.end();
  t.equal(respondError(ended, 'GW_ERR_INTERNAL', 'req-4'), 0, 'response already ended');
  t.ok(ended.destroyed);

  const destroyed = detachedResponse();
  destroyed.destroy();
  t.equal(respondError(destroyed, 'GW_ERR_INTERNAL', 'req-5'), 0, 'connection already gone');
});
