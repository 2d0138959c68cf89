// An upstream that retries statuses (retries.on: [503]) is served by the lean exchange like any
// other: an answer that is not retried is relayed without node:http's objects, and a retried one
// (a GET answered 503 by one target while another is eligible) is dropped, its body read and
// discarded (or the connection given up past 64 KiB), and the request handed to the proxy, which
// retries it elsewhere and writes the record with both attempts (a 503 cut mid-body, after 1xx
// answers or closing its connection included). A POST's 503 is relayed, never
// retried. The retry budget's slots come back whatever happens, a client that leaves while the
// 503's body is being dropped included.
import https from 'node:https';
import t from 'tap';
import { makeTestPki, type LogRecord } from '../helpers/harness.js';
import { hits, sleep, startFleet, statusHandler } from '../helpers/fleet.js';
import { countNodeResponses } from '../helpers/node-responses.js';

const pki = await makeTestPki();

function served(logs: readonly LogRecord[]): LogRecord[] {
  return logs.filter((l) => l.msg === 'request');
}

t.test('a retried status goes from the lean exchange to the proxy, and only then', async (t) => {
  if (process.env['GW_TEST_ENGINE'] === 'node') {
    t.pass('server.engine: node has no lean exchange');
    return;
  }
  const f = await startFleet({ pki, count: 2, upstream: (ts) => `targets: [${ts[0]!.origin}, ${ts[1]!.origin}]\nretries: { attempts: 1, on: [503], backoff: 1ms }\noutlierDetection: { enabled: false }` });
  t.teardown(() => f.close());
  const upstream = f.gw.gateway.runtime.current.upstreams.get('orders')!;

  // node:http responses made for the gateway's own port: requests the lean exchange did not keep.
  const node = countNodeResponses(() => f.gw.port);
  t.teardown(() => node.restore());

  // Both targets answer: every GET is the lean exchange's.
  for (let i = 0; i < 6; i++) t.equal((await f.send(f.billing, { path: `/orders/ok-${i}` })).status, 200);
  t.equal(node.count, 0, 'no request needed node:http objects while nothing was retried');

  // Target 0 answers 503 (small body): its GETs are retried on target 1.
  f.targets[0]!.handler = statusHandler(503);
  let before = hits(f.targets);
  for (let i = 0; i < 6; i++) t.equal((await f.send(f.billing, { path: `/orders/r-${i}` })).status, 200, 'GET: the 503 was retried');
  let first = hits(f.targets)[0]! - before[0]!;
  t.ok(first > 0, `target 0 was tried first for ${first} of 6`);
  t.equal(node.count, first, 'exactly the retried requests went on as node:http objects');
  const retried = served(f.gw.logs).filter((l) => Array.isArray(l['attempts']));
  t.equal(retried.length, first, 'each retried request has its attempts in the record');
  t.ok(
    retried.every((l) => {
      const attempts = l['attempts'] as { target: string; outcome: unknown }[];
      return attempts.length === 2 && attempts[0]!.outcome === 503 && attempts[0]!.target === f.targets[0]!.origin && attempts[1]!.outcome === 200 && l['status'] === 200;
    }),
    'attempts: the 503 on target 0, then 200',
  );
  t.match(await f.gw.gateway.metrics.text(), new RegExp(`mtls_gateway_upstream_retries_total\\{upstream="orders",reason="503"\\} ${first}\\b`), 'the retries are counted');

  // A 503 with a body larger than what is dropped (64 KiB): the connection is given up, the retry still made.
  f.targets[0]!.handler = (req, res) => {
    req.resume();
    res.writeHead(503, { 'content-type': 'application/octet-stream' }).end(Buffer.alloc(300_000, 0x35));
  };
  before = hits(f.targets);
  node.count = 0;
  for (let i = 0; i < 4; i++) {
    const r = await f.send(f.billing, { path: `/orders/big-${i}` });
    t.equal(r.status, 200, 'GET after a large 503: retried');
    t.notMatch(r.body, /5{100}/, "none of the 503's body reached the client");
  }
  first = hits(f.targets)[0]! - before[0]!;
  t.equal(node.count, first, 'the retried ones, and only they, went on as node:http objects');

  // Hostile 503s: one cut mid-body (the connection reset), one with 1xx answers before it, one
  // whose head says Connection: close. Each is still a retried 503: the GET gets target 1's 200.
  const hostile: Array<[string, (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => void]> = [
    ['cut mid-body', (req, res) => {
      req.resume();
      res.writeHead(503, { 'content-length': '1000' });
      res.write('x'.repeat(100));
      setTimeout(() => res.socket?.destroy(), 20);
    }],
    ['after 1xx answers', (req, res) => {
      req.resume();
      res.writeProcessing();
      res.writeEarlyHints({ link: '</a.css>; rel=preload' });
      res.writeHead(503, { 'content-type': 'text/plain' }).end('late 503');
    }],
    ['with Connection: close', (req, res) => {
      req.resume();
      res.writeHead(503, { connection: 'close', 'content-type': 'text/plain' }).end('closing 503');
    }],
  ];
  for (const [what, handler] of hostile) {
    f.targets[0]!.handler = handler;
    const b0 = hits(f.targets)[0]!;
    const answers = [];
    for (let i = 0; i < 4; i++) answers.push(await f.send(f.billing, { path: `/orders/hostile-${i}` }));
    t.ok(hits(f.targets)[0]! > b0, `${what}: target 0 was tried`);
    // Target 1 echoes the request as JSON: a body that parses is its answer whole, nothing of the 503's.
    t.ok(answers.every((r) => r.status === 200 && r.headers['x-upstream'] === 'yes' && r.json !== undefined), `${what}: every GET got target 1's answer, nothing of the 503`);
  }

  // A POST is never retried (upstream-retries-are-safe-and-budgeted checks what it gets): its 503
  // is relayed by the lean exchange itself.
  f.targets[0]!.handler = statusHandler(503);
  const before0 = hits(f.targets)[0]!;
  node.count = 0;
  const posts = [];
  for (let i = 0; i < 4; i++) posts.push((await f.send(f.billing, { method: 'POST', path: '/orders/new', body: 'order', headers: { 'content-type': 'text/plain' } })).status);
  t.equal(posts.filter((x) => x === 503).length, hits(f.targets)[0]! - before0, 'each POST target 0 took was answered its 503');
  t.equal(node.count, 0, 'POSTs stayed on the lean exchange');

  // Both targets answer 503: the retry's 503 is the last answer and is relayed.
  f.targets[1]!.handler = statusHandler(503);
  const both = await f.send(f.billing, { path: '/orders/both' });
  t.equal(both.status, 503, 'the last attempt\'s 503 is relayed');
  t.equal(both.body, 'status 503');

  // A client that leaves while the 503's body is being dropped: a 499, and the budget's slot back.
  f.targets[0]!.handler = (req, res) => {
    req.resume();
    res.writeHead(503, { 'content-type': 'text/plain' });
    res.write('slow 503 ');
    const tick = setInterval(() => res.write('.'), 50);
    res.on('close', () => clearInterval(tick));
    setTimeout(() => res.end(), 3000).unref();
  };
  f.targets[1]!.handler = statusHandler(200);
  const leftBefore = served(f.gw.logs).filter((l) => l['status'] === 499).length;
  // Round robin: until one lands on target 0 first (those on target 1 are answered at once).
  for (let attempt = 0; attempt < 4; attempt++) {
    const t0 = hits(f.targets)[0]!;
    await new Promise<void>((resolve) => {
      const req = https.request({ host: '127.0.0.1', port: f.gw.port, servername: 'localhost', ca: pki.root.certPem, cert: f.billing.chainPem, key: f.billing.keyPem, agent: false, path: '/orders/leave' }, (res) => {
        res.resume();
        res.on('end', resolve);
        res.on('error', () => resolve());
      });
      req.on('error', () => resolve());
      req.end();
      setTimeout(() => {
        req.destroy();
        resolve();
      }, 300);
    });
    if (hits(f.targets)[0]! > t0) break;
  }
  await sleep(200);
  t.ok(served(f.gw.logs).filter((l) => l['status'] === 499).length > leftBefore, 'the client that left while the 503 was dropped has its 499 record');

  // Whatever happened above, nothing is held: no request counted active, no retry slot taken.
  await sleep(50);
  t.equal(upstream.budget.active, 0, 'no request left counted in the retry budget');
  t.equal(upstream.budget.retriesActive, 0, 'no retry slot left taken');
});
