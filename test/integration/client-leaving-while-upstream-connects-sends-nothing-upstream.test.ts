// A client that goes away while the gateway is still opening the upstream connection (TCP + TLS
// to a slow upstream) costs the upstream nothing: once the connection is up, the request is
// abandoned instead of written, and the gateway logs it as 499 clientAborted. The upstream here
// sits behind a TCP relay that holds each new connection for a second before passing its bytes.
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { gatewayYaml, makeTestPki, request, startGateway, startUpstream, tempDir, writePkiFiles } from '../helpers/harness.js';
import { rawExchange } from '../helpers/raw-exchange.js';

/** A TCP relay to 127.0.0.1:target that starts relaying each connection only after delayMs. */
async function slowRelay(target: number, delayMs: number): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const srv = net.createServer((client) => {
    sockets.add(client);
    client.pause();
    client.on('error', () => undefined);
    setTimeout(() => {
      if (client.destroyed) return;
      const up = net.connect({ host: '127.0.0.1', port: target }, () => {
        client.pipe(up);
        up.pipe(client);
        client.resume();
      });
      sockets.add(up);
      up.on('error', () => client.destroy());
      client.on('close', () => up.destroy());
      up.on('close', () => client.destroy());
    }, delayMs);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    port: (srv.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        srv.close(() => r());
      }),
  };
}

t.test('a request whose client left during the upstream connect is never written upstream', async (t) => {
  const pki = await makeTestPki();
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  await writePkiFiles(pki, dir);
  const upstream = await startUpstream({ server: pki.upstreams['orders']!, ca: pki.caBundlePem });
  t.teardown(() => upstream.close());
  const relay = await slowRelay(upstream.port, 1_000);
  t.teardown(() => relay.close());
  const gw = await startGateway({ dir, yaml: gatewayYaml({ upstreamPort: relay.port, crl: false }) });
  t.teardown(() => gw.close());
  const billing = pki.clients['billing']!;

  // The client gives up after 200 ms, while the relay still holds the gateway's upstream connection.
  const gaveUp = await rawExchange(gw.port, { ca: pki.root.certPem, cert: billing.chainPem, key: billing.keyPem }, 'GET /orders/left HTTP/1.1\r\nHost: localhost\r\n\r\n', { endAfterWrite: false, timeoutMs: 200 });
  t.notOk(gaveUp.closedByServer, 'control: the client left before any answer');
  const until = Date.now() + 10_000;
  while (!gw.logs.some((l) => l.msg === 'request' && l['path'] === '/orders/left') && Date.now() < until) await sleep(25);
  t.match(gw.logs.find((l) => l.msg === 'request' && l['path'] === '/orders/left'), { status: 499, clientAborted: true }, 'logged as 499 once the connect finished');
  await sleep(300);
  t.equal(upstream.seen.length, 0, 'the abandoned request was not written to the upstream');

  const next = await request(gw.port, billing, pki.root.certPem, { path: '/orders/next' });
  t.equal(next.status, 200, 'the upstream is reachable for the next request');
  t.same(upstream.seen.map((r) => r.url), ['/orders/next']);
});
