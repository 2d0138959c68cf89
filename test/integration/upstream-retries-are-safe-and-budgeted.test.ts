// Retries go to a different target and only where safe: a connection that was never made fails
// over whatever the method (the body is still unread, and arrives whole); after the request was
// sent only an idempotent request without a body is repeated; a POST whose body reached a target
// is never sent again; a retried status is never relayed unless it is the last answer; and the
// budget stops a retry storm against a fleet that is failing. Every attempt is in the access record.
import t from 'tap';
import { makeTestPki, type LogRecord } from '../helpers/harness.js';
import { hits, refusedPort, resetHandler, sleep, startFleet, statusHandler } from '../helpers/fleet.js';

const pki = await makeTestPki();

function accessRecords(logs: readonly LogRecord[]): LogRecord[] {
  return logs.filter((l) => l.msg === 'request' || l.msg === 'upstream failed');
}

t.test('a refused connection fails over to another target, a POST body included', async (t) => {
  const dead = await refusedPort();
  const f = await startFleet({ pki, count: 2, upstream: (ts) => `targets: [https://127.0.0.1:${dead}, ${ts[0]!.origin}, ${ts[1]!.origin}]` });
  t.teardown(() => f.close());
  const body = Buffer.alloc(100_000, 7);
  for (let i = 0; i < 6; i++) {
    const get = await f.send(f.billing, { path: `/orders/${i}` });
    t.equal(get.status, 200, 'GET served');
    const post = await f.send(f.billing, { method: 'POST', path: '/orders/new', body, headers: { 'content-type': 'application/octet-stream' } });
    t.equal(post.status, 200, 'POST served');
    t.equal((post.json as { bodyBytes: number }).bodyBytes, body.length, 'with its whole body');
  }
  const failedOver = accessRecords(f.gw.logs).filter((l) => Array.isArray(l['attempts']));
  t.ok(failedOver.length >= 1, 'some requests met the dead target first');
  for (const l of failedOver) {
    const attempts = l['attempts'] as { target: string; outcome: unknown }[];
    t.equal(attempts[0]!.target, `https://127.0.0.1:${dead}`, 'first attempt: the dead target');
    t.equal(attempts[0]!.outcome, 'GW_ERR_UPSTREAM_UNREACHABLE');
    t.equal(attempts.at(-1)!.outcome, 200, 'last attempt: served');
    t.not(attempts.at(-1)!.target, attempts[0]!.target, 'by a different target');
  }
  t.match(await f.gw.gateway.metrics.text(), /mtls_gateway_upstream_retries_total\{upstream="orders",reason="connect-failure"\} [1-9]/);
});

t.test('a reset after the request was sent: GET is retried elsewhere, POST with a body never', async (t) => {
  const f = await startFleet({ pki, count: 2, upstream: (ts) => `targets: [${ts[0]!.origin}, ${ts[1]!.origin}]\nretries: { attempts: 2, on: [reset], backoff: 1ms }\noutlierDetection: { enabled: false }` });
  t.teardown(() => f.close());
  f.targets[0]!.handler = resetHandler;
  let gets = 0;
  for (let i = 0; i < 4; i++) {
    const r = await f.send(f.billing, { path: `/orders/${i}` });
    t.equal(r.status, 200, 'GET answered by the healthy target');
    gets++;
  }
  t.equal(hits(f.targets)[1], gets, 'the healthy target answered every GET');
  const resetsSeenBefore = f.targets[0]!.seen.length;
  t.ok(resetsSeenBefore >= 1, 'the resetting target took its share first');
  // POSTs: any that lands on the resetting target fails with 502 and is never repeated.
  let failed = 0;
  for (let i = 0; i < 6; i++) {
    const before = hits(f.targets);
    const r = await f.send(f.billing, { method: 'POST', path: '/orders/new', body: 'x'.repeat(1000), headers: { 'content-type': 'text/plain' } });
    const after = hits(f.targets);
    const total = after[0]! - before[0]! + after[1]! - before[1]!;
    t.equal(total, 1, 'each POST reached exactly one target, once');
    if (after[0]! > before[0]!) {
      failed++;
      t.equal(r.status, 502, 'a POST cut by a reset is answered 502, not repeated');
      t.equal((r.json as { error: { code: string } }).error.code, 'GW_ERR_UPSTREAM_RESET');
    } else t.equal(r.status, 200);
  }
  t.ok(failed >= 1, `round-robin sent some POSTs to the resetting target (${failed})`);
});

t.test('a retried 503 goes to another target and is never relayed; a POST gets the 503', async (t) => {
  const f = await startFleet({ pki, count: 2, upstream: (ts) => `targets: [${ts[0]!.origin}, ${ts[1]!.origin}]\nretries: { attempts: 1, on: [503], backoff: 1ms }\noutlierDetection: { enabled: false }` });
  t.teardown(() => f.close());
  f.targets[0]!.handler = statusHandler(503);
  for (let i = 0; i < 4; i++) t.equal((await f.send(f.billing, { path: '/orders/x' })).status, 200, 'GET: the 503 was retried');
  t.equal(f.targets[0]!.seen.length, 2, 'the failing target was tried for every other GET');
  const before = hits(f.targets);
  let relayed = 0;
  for (let i = 0; i < 4; i++) {
    const r = await f.send(f.billing, { method: 'POST', path: '/orders/new', body: 'order', headers: { 'content-type': 'text/plain' } });
    if (r.status === 503) {
      relayed++;
      t.equal(r.body, 'status 503', "the upstream's own 503, relayed");
    } else t.equal(r.status, 200);
  }
  const after = hits(f.targets);
  t.equal(after[0]! - before[0]! + after[1]! - before[1]!, 4, 'no POST was sent twice');
  t.equal(relayed, after[0]! - before[0]!, 'every POST the failing target took got its 503');
  const retried = accessRecords(f.gw.logs).filter((l) => Array.isArray(l['attempts']));
  t.ok(retried.every((l) => (l['attempts'] as { outcome: unknown }[])[0]!.outcome === 503), 'attempts record the 503');
});

t.test('the retry budget stops a retry storm against a failing fleet', async (t) => {
  // Every target answers 503 slowly; each request may retry 3 times, but the budget (0% of active
  // requests, never fewer than 3 retries at once) lets at most 3 retries run together.
  const f = await startFleet({ pki, count: 4, upstream: (ts) => `targets: [${ts.map((x) => x.origin).join(', ')}]\nretries: { attempts: 3, on: [503], backoff: 1ms, budget: 0% }\noutlierDetection: { enabled: false }` });
  t.teardown(() => f.close());
  for (const target of f.targets) {
    target.handler = (req, res) => {
      req.resume();
      setTimeout(() => res.writeHead(503).end('busy'), 150);
    };
  }
  const N = 24;
  const answers = await Promise.all(Array.from({ length: N }, () => f.send(f.billing, { path: '/orders/storm' })));
  t.ok(answers.every((r) => r.status === 503), 'every request ends with the fleet\'s 503');
  const sent = hits(f.targets).reduce((a, b) => a + b, 0);
  t.ok(sent < N * 2, `attempts stayed near one per request (${sent} for ${N}; without a budget up to ${N * 4})`);
  t.match(await f.gw.gateway.metrics.text(), /mtls_gateway_upstream_retries_refused_total\{upstream="orders",reason="budget"\} [1-9]/, 'refused retries are counted');
  await sleep(10);
});
