// Tracing and APM tools (OpenTelemetry's, Datadog's, Elastic's instrumentations) and the bench's
// allocation sampler follow HTTP servers through node:http's diagnostics channels:
// 'http.server.request.start' when a request is handed to the server, 'http.server.response.finish'
// when its answer is written. node:http publishes them itself; the lean listener (`server.engine:
// lean`, the default) builds its own connection handling and publishes them at the same points.
// Both engines: every request the gateway answers (forwarded, refused by policy, with
// `Expect: 100-continue`, several on one kept-alive connection) is published once at its start and
// once at its finish, with the same request, response, socket and server objects in both.
import dc from 'node:diagnostics_channel';
import https from 'node:https';
import type { Socket } from 'node:net';
import t from 'tap';
import { enginesUnderTest, startStack } from '../helpers/harness.js';

interface Published {
  request: { url?: string; method?: string };
  response: { statusCode: number };
  socket: Socket;
  server: object;
}

const engines = enginesUnderTest();

for (const engine of engines) {
  t.test(`server.engine: ${engine}`, async (t) => {
    const s = await startStack({ extra: `server: { engine: ${engine} }` });
    t.teardown(() => s.close());
    // The test's upstream is a node:https server in this process too: keep the gateway's own.
    const starts: Published[] = [];
    const finishes: Published[] = [];
    const ours = (m: Published) => m.socket.localPort === s.gw.port;
    const onStart = (m: unknown) => ours(m as Published) && starts.push(m as Published);
    const onFinish = (m: unknown) => ours(m as Published) && finishes.push(m as Published);
    dc.subscribe('http.server.request.start', onStart);
    dc.subscribe('http.server.response.finish', onFinish);
    t.teardown(() => {
      dc.unsubscribe('http.server.request.start', onStart);
      dc.unsubscribe('http.server.response.finish', onFinish);
    });
    const billing = s.pki.clients['billing']!;
    /** Finishes are published as the answer is written: the client may read it a moment before. */
    const settled = async (n: number) => {
      for (let i = 0; i < 100 && finishes.length < n; i++) await new Promise((r) => setTimeout(r, 20));
    };

    await t.test('a forwarded request and a refused one', async (t) => {
      starts.length = 0;
      finishes.length = 0;
      const ok = await s.send(billing, { path: '/orders/dc-1' });
      const denied = await s.send(billing, { path: '/admin/dc-2' });
      t.same([ok.status, denied.status], [200, 403]);
      await settled(2);
      t.same(
        starts.map((m) => `${m.request.method} ${m.request.url}`),
        ['GET /orders/dc-1', 'GET /admin/dc-2'],
        'one start per request, in order',
      );
      t.same(
        finishes.map((m) => m.response.statusCode),
        [200, 403],
        'one finish per answer, with its status',
      );
      for (let i = 0; i < 2; i++) {
        t.equal(finishes[i]!.request, starts[i]!.request, `request ${i + 1}: the same request object at start and finish`);
        t.equal(finishes[i]!.response, starts[i]!.response, `request ${i + 1}: the same response object`);
        t.equal(finishes[i]!.socket, starts[i]!.socket, `request ${i + 1}: the same socket`);
        t.equal(finishes[i]!.server, starts[i]!.server, `request ${i + 1}: the same server`);
      }
      t.equal(starts[0]!.server, starts[1]!.server, 'one server for both');
    });

    await t.test('three requests on one kept-alive connection', async (t) => {
      starts.length = 0;
      finishes.length = 0;
      const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: s.pki.root.certPem, cert: billing.chainPem, key: billing.keyPem });
      t.teardown(() => agent.destroy());
      for (const p of ['/orders/ka-1', '/orders/ka-2', '/orders/ka-3']) t.equal((await s.send(null, { path: p, agent })).status, 200, p);
      await settled(3);
      t.same(starts.map((m) => m.request.url), ['/orders/ka-1', '/orders/ka-2', '/orders/ka-3']);
      t.same(finishes.map((m) => m.request.url), ['/orders/ka-1', '/orders/ka-2', '/orders/ka-3']);
      t.equal(new Set(starts.map((m) => m.socket)).size, 1, 'all three on one socket');
    });

    await t.test('Expect: 100-continue', async (t) => {
      starts.length = 0;
      finishes.length = 0;
      const r = await s.send(billing, { method: 'POST', path: '/orders/dc-continue', headers: { expect: '100-continue', 'content-type': 'text/plain' }, body: 'hello' });
      t.equal(r.status, 200);
      await settled(1);
      t.same([starts.length, finishes.length], [1, 1], 'published once each');
      t.equal(finishes[0]?.response.statusCode, 200);
    });
  });
}
