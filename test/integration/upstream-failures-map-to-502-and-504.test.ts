// Upstream failures map to clear gateway errors: refused connection 502, untrusted or wrongly named
// upstream certificate 502 with its own code, pinned identity mismatch 502, slow upstream 504.
// The gateway never answers 500 for an upstream's fault.
import { createServer } from 'node:net';
import t from 'tap';
import { createRootCa, issueLeaf } from '../../src/pki/dev-pki.js';
import { gatewayYaml, makeTestPki, request, startGateway, startUpstream, tempDir, writePkiFiles } from '../helpers/harness.js';

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

t.test('upstream failures', async (t) => {
  const pki = await makeTestPki();
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  await writePkiFiles(pki, dir);
  const billing = pki.clients['billing']!;
  const send = (port: number) => request(port, billing, pki.root.certPem, { path: '/orders/1' });

  t.test('connection refused: 502 GW_ERR_UPSTREAM_UNREACHABLE', async (t) => {
    const gw = await startGateway({ dir, yaml: gatewayYaml({ upstreamPort: await freePort() }) });
    t.teardown(() => gw.close());
    const res = await send(gw.port);
    t.equal(res.status, 502);
    t.match(res.json, { error: { code: 'GW_ERR_UPSTREAM_UNREACHABLE' } });
    t.match(gw.logs.find((l) => l.msg === 'upstream failed'), { upstreamError: 'ECONNREFUSED', upstream: 'orders' });
  });

  t.test('untrusted upstream certificate: 502 GW_ERR_UPSTREAM_CERT_UNTRUSTED', async (t) => {
    const rogue = await createRootCa({ subject: { CN: 'Rogue Upstream CA' } });
    const rogueServer = await issueLeaf(rogue, { subject: { CN: 'orders.internal' }, dns: ['orders.internal'], usage: 'server' });
    const up = await startUpstream({ server: rogueServer, ca: pki.caBundlePem });
    t.teardown(() => up.close());
    const gw = await startGateway({ dir, yaml: gatewayYaml({ upstreamPort: up.port }) });
    t.teardown(() => gw.close());
    const res = await send(gw.port);
    t.equal(res.status, 502);
    t.match(res.json, { error: { code: 'GW_ERR_UPSTREAM_CERT_UNTRUSTED' } });
    t.equal(up.seen.length, 0);
  });

  t.test('wrongly named upstream certificate: 502 GW_ERR_UPSTREAM_CERT_NAME_MISMATCH', async (t) => {
    const up = await startUpstream({ server: pki.upstreams['orders']!, ca: pki.caBundlePem });
    t.teardown(() => up.close());
    const gw = await startGateway({ dir, yaml: gatewayYaml({ upstreamPort: up.port, servername: 'payments.internal' }) });
    t.teardown(() => gw.close());
    const res = await send(gw.port);
    t.equal(res.status, 502);
    t.match(res.json, { error: { code: 'GW_ERR_UPSTREAM_CERT_NAME_MISMATCH' } });
    t.equal(up.seen.length, 0);
  });

  t.test('pinned identity mismatch: 502 GW_ERR_UPSTREAM_IDENTITY_MISMATCH; match: 200', async (t) => {
    const up = await startUpstream({ server: pki.upstreams['orders']!, ca: pki.caBundlePem });
    t.teardown(() => up.close());
    const wrong = await startGateway({
      dir,
      yaml: gatewayYaml({ upstreamPort: up.port, upstreamExtra: '      expect: { spiffe: spiffe://example.org/ns/default/sa/inventory }' }),
    });
    t.teardown(() => wrong.close());
    const res = await send(wrong.port);
    t.equal(res.status, 502);
    t.match(res.json, { error: { code: 'GW_ERR_UPSTREAM_IDENTITY_MISMATCH' } });
    const right = await startGateway({
      dir,
      yaml: gatewayYaml({ upstreamPort: up.port, upstreamExtra: '      expect: { spiffe: spiffe://example.org/ns/default/sa/orders }' }),
    });
    t.teardown(() => right.close());
    t.equal((await send(right.port)).status, 200);
    t.equal(up.seen.length, 1, 'only the pinned-correct gateway got through');
  });

  t.test('slow upstream: 504 GW_ERR_UPSTREAM_TIMEOUT', async (t) => {
    const timers: NodeJS.Timeout[] = [];
    const up = await startUpstream({
      server: pki.upstreams['orders']!,
      ca: pki.caBundlePem,
      handler: (_req, res) => {
        timers.push(setTimeout(() => res.end('late'), 3000));
      },
    });
    t.teardown(async () => {
      timers.forEach(clearTimeout);
      await up.close();
    });
    const gw = await startGateway({ dir, yaml: gatewayYaml({ upstreamPort: up.port, upstreamExtra: '    timeouts: { connect: 2s, response: 300ms }' }) });
    t.teardown(() => gw.close());
    const res = await send(gw.port);
    t.equal(res.status, 504);
    t.match(res.json, { error: { code: 'GW_ERR_UPSTREAM_TIMEOUT' } });
  });

  t.test('upstream resets mid-request before answering: 502, never 500', async (t) => {
    const up = await startUpstream({ server: pki.upstreams['orders']!, ca: pki.caBundlePem, handler: (req) => req.socket.destroy() });
    t.teardown(() => up.close());
    const gw = await startGateway({ dir, yaml: gatewayYaml({ upstreamPort: up.port }) });
    t.teardown(() => gw.close());
    const res = await send(gw.port);
    t.equal(res.status, 502);
    t.match(res.json, { error: { code: 'GW_ERR_UPSTREAM_RESET' } });
  });
});
