// A request that completes arriving after shutdown began (its connection was already mid-request,
// so closing the listener did not drop it) gets 503 GW_ERR_SHUTTING_DOWN with Connection: close,
// in the gateway's own format, and is not forwarded; the gateway then finishes closing.
import net from 'node:net';
import tls from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { firstJsonBody, statusesIn } from '../helpers/raw-exchange.js';
import { gatewayYaml, makeTestPki, startGateway, startUpstream, tempDir, writePkiFiles } from '../helpers/harness.js';

/** Resolves once a new TCP connection to the port is refused: the listener is closed. */
async function listenerClosed(port: number, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const refused = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => {
        s.destroy();
        resolve(false);
      });
      s.on('error', () => resolve(true));
    });
    if (refused) return;
    if (Date.now() > until) throw new Error('the listener did not close');
    await sleep(25);
  }
}

t.test('a request finished after close() began is answered 503 and not forwarded', async (t) => {
  const pki = await makeTestPki();
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  await writePkiFiles(pki, dir);
  const upstream = await startUpstream({ server: pki.upstreams['orders']!, ca: pki.caBundlePem });
  t.teardown(() => upstream.close());
  const gw = await startGateway({ dir, yaml: gatewayYaml({ upstreamPort: upstream.port, crl: false }) });

  const billing = pki.clients['billing']!;
  const sock = tls.connect({ host: '127.0.0.1', port: gw.port, servername: 'localhost', ca: pki.root.certPem, cert: billing.chainPem, key: billing.keyPem });
  t.teardown(() => sock.destroy());
  let text = '';
  sock.on('data', (c: Buffer) => (text += c.toString('latin1')));
  sock.on('error', () => undefined);
  const serverClosed = new Promise<void>((r) => sock.once('close', () => r()));
  await new Promise<void>((r) => sock.once('secureConnect', () => r()));
  // The head is incomplete, so the connection is busy with a request, not idle: shutdown waits for it.
  sock.write('GET /orders/1 HTTP/1.1\r\nHost: localhost\r\n');
  await sleep(100);

  const closing = gw.gateway.close();
  await listenerClosed(gw.port);
  sock.write('\r\n');
  await serverClosed;
  await closing;

  t.same(statusesIn(text), [503], 'one answer: 503');
  t.match(text, /\r\nconnection: close\r\n/i);
  t.match(firstJsonBody(text), { error: { code: 'GW_ERR_SHUTTING_DOWN' } });
  t.equal(upstream.seen.length, 0, 'nothing was forwarded');
  t.match(gw.logs.find((l) => l['code'] === 'GW_ERR_SHUTTING_DOWN'), { msg: 'request refused', status: 503 });
});
