// While the gateway's connection to an upstream is still being made, an upload cannot pour into
// the gateway: what the client sends waits in the gateway only up to its relay bound (128 KiB, as
// node:http's request stream pauses at its high-water mark), then the client is paused. The
// upstream here accepts the TCP connection and never answers the TLS handshake, so the wait
// lasts until the connect timeout; a gateway that queued the body meanwhile would read all of it.
//
// What the processes hold is the sender's count minus what the kernel holds in the client's
// connection's socket queues (/proc/net/tcp; see large-bodies-stream-in-bounded-memory). The
// upstream side carries nothing but a ClientHello.
import net from 'node:net';
import https from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { gatewayYaml, makeTestPki, startGateway, tempDir, writePkiFiles } from '../helpers/harness.js';
import { kernelQueuedBytes } from '../helpers/kernel-queues.js';
import { pulledSource } from '../helpers/pulled-source.js';

const SIZE = 50 * 1024 * 1024;
const HELD_BOUND = 2 * 1024 * 1024;
const IN_FLIGHT_BOUND = 16 * 1024 * 1024;
const MB = (n: number): string => (n / 1048576).toFixed(2);

t.test('an upload waiting for an upstream connection is held to the relay bound', async (t) => {
  // The upstream: accepts, reads the ClientHello, never answers.
  const held = new Set<net.Socket>();
  const silent = net.createServer((s) => {
    held.add(s);
    s.on('error', () => undefined);
    s.resume();
  });
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  const silentPort = (silent.address() as net.AddressInfo).port;
  const pki = await makeTestPki();
  const { dir, cleanup } = await tempDir();
  await writePkiFiles(pki, dir);
  const gw = await startGateway({ dir, yaml: gatewayYaml({ upstreamPort: silentPort, upstreamExtra: '    timeouts: { connect: 4s }' }) });
  t.teardown(async () => {
    await gw.close();
    for (const s of held) s.destroy();
    await new Promise((r) => silent.close(r));
    await cleanup();
  });
  const billing = pki.clients['billing']!;
  const base = { host: '127.0.0.1', port: gw.port, servername: 'localhost', ca: pki.root.certPem, cert: billing.chainPem, key: billing.keyPem, agent: false as const };

  for (const framing of ['content-length', 'chunked'] as const) {
    const accepted = held.size;
    const up = pulledSource(SIZE);
    const headers = { 'content-type': 'application/octet-stream', ...(framing === 'content-length' ? { 'content-length': String(SIZE) } : {}) };
    const answered = new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = https.request({ ...base, method: 'PUT', path: '/orders/upload', headers }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      // The gateway may close the connection on the unread rest of the body after its answer.
      req.on('error', (err) => reject(err));
      up.pipe(req);
    });
    const outcome = answered.then(
      (r) => r,
      (err: Error) => ({ status: 0, body: err.message }),
    );

    // The gateway's connection attempt is pending; the client sends until it is paused.
    const deadline = Date.now() + 3000;
    while (held.size === accepted && Date.now() < deadline) await sleep(20);
    t.ok(held.size > accepted, `${framing}: the gateway is connecting to the upstream`);
    let last = -1;
    for (let still = 0, waited = 0; still < 3 && waited < 2500; waited += 100) {
      await sleep(100);
      still = up.pulled === last ? still + 1 : 0;
      last = up.pulled;
    }
    const kernel = kernelQueuedBytes([gw.port, silentPort]);
    t.ok(up.pulled < SIZE, `${framing}: not all of the body left the client (${MB(up.pulled)} MB)`);
    if (kernel === null) t.ok(up.pulled < IN_FLIGHT_BOUND, `${framing}: ${MB(up.pulled)} MB left the client (no /proc/net/tcp: kernel included)`);
    else t.ok(up.pulled - kernel < HELD_BOUND, `${framing}: ${MB(up.pulled)} MB left the client, ${MB(kernel)} MB of it in the kernel's socket queues, ${MB(up.pulled - kernel)} MB in the client and the gateway`);

    // At the connect timeout the request fails as any upload that never reached an upstream.
    const res = await outcome;
    t.ok(res.status >= 502 && res.status <= 504, `${framing}: answered ${res.status} when the connection never came (${res.body.slice(0, 120)})`);
    up.destroy();
  }

  // The gateway goes on serving: its health answer over the same listener's policy (no route: 404 or 403).
  const after = await new Promise<number>((resolve, reject) => {
    https.get({ ...base, path: '/nothing-here' }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    }).on('error', reject);
  });
  t.ok(after >= 400 && after < 500, `the gateway still answers (${after})`);
});
