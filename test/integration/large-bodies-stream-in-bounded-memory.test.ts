// Bodies stream through the gateway both ways with backpressure: 50 MB up and 50 MB down pass
// intact, and while the receiving side reads nothing, the sender can get only a bounded amount
// into the pipe. A gateway that buffered whole bodies would let the sender push all 50 MB.
//
// What is bounded is what the processes hold: the sender's count minus what the kernel holds in
// the socket queues of the two connections (/proc/net/tcp). Linux autotunes loopback's socket
// buffers up to tcp_rmem's maximum (32 MB on the reference VM), and a gateway that reads faster
// makes them grow more, so the sender's count alone measures the kernel: it was 8-10 MB here, and
// once 24 MB on a loaded CI machine. Uploads are sent both ways a client frames them:
// Content-Length and chunked.
import { createHash } from 'node:crypto';
import https from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import t, { type Test } from 'tap';
import { startStack } from '../helpers/harness.js';
import { kernelQueuedBytes } from '../helpers/kernel-queues.js';
import { PULLED_CHUNK, pulledSource, type PulledSource } from '../helpers/pulled-source.js';

const SIZE = 50 * 1024 * 1024;
// What the client, the gateway and the upstream hold in their own memory while the receiver reads
// nothing: stream high-water marks on three hops and the gateway's 128 KiB relay bound stay far
// below this (0.3-0.5 MB measured).
const HELD_BOUND = 2 * 1024 * 1024;
// Where /proc/net/tcp cannot be read: the sender's count, kernel included.
const IN_FLIGHT_BOUND = 16 * 1024 * 1024;
const MB = (n: number): string => (n / 1048576).toFixed(2);

/** Waits until `count()` has not moved for 300 ms (at most 5 s): the pipe is full. */
async function settled(count: () => number): Promise<void> {
  let last = -1;
  let still = 0;
  for (let waited = 0; waited < 5000 && still < 3; waited += 100) {
    await sleep(100);
    const now = count();
    still = now === last ? still + 1 : 0;
    last = now;
  }
}

/**
 * Asserts that of the `sent` bytes that left the sender while the receiver read nothing, the
 * processes on the way hold no more than HELD_BOUND (the rest is in the kernel's socket queues).
 */
function assertBounded(t: Test, what: string, sent: number, ports: readonly number[]): void {
  const kernel = kernelQueuedBytes(ports);
  t.ok(sent > 0 && sent < SIZE, `${what}: some, not all, of the body left the sender (${MB(sent)} MB)`);
  if (kernel === null) {
    t.ok(sent < IN_FLIGHT_BOUND, `${what}: only ${MB(sent)} MB left the sender (no /proc/net/tcp: kernel included)`);
    return;
  }
  t.ok(sent - kernel < HELD_BOUND, `${what}: ${MB(sent)} MB left the sender, ${MB(kernel)} MB of it in the kernel's socket queues, ${MB(sent - kernel)} MB in the processes`);
}

function sha256Of(bytes: number): string {
  const h = createHash('sha256');
  for (let left = bytes; left > 0; left -= PULLED_CHUNK.length) h.update(left >= PULLED_CHUNK.length ? PULLED_CHUNK : PULLED_CHUNK.subarray(0, left));
  return h.digest('hex');
}

t.test('50 MB up and down through the gateway, with backpressure', async (t) => {
  let downloadSource: PulledSource | null = null;
  let releaseUpload: (() => void) | null = null;
  const s = await startStack({
    upstreamHandler: (req, res) => {
      if (req.url?.startsWith('/orders/download')) {
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        downloadSource = pulledSource(SIZE);
        downloadSource.pipe(res);
        return;
      }
      // Upload: read nothing until the test says so.
      req.pause();
      const hash = createHash('sha256');
      let n = 0;
      releaseUpload = () => {
        req.on('data', (c: Buffer) => {
          n += c.length;
          hash.update(c);
        });
        req.on('end', () => res.end(JSON.stringify({ received: n, sha256: hash.digest('hex') })));
        req.resume();
      };
    },
  });
  t.teardown(() => s.close());
  const billing = s.pki.clients['billing']!;
  const base = { host: '127.0.0.1', port: s.gw.port, servername: 'localhost', ca: s.pki.root.certPem, cert: billing.chainPem, key: billing.keyPem, agent: false as const };

  const ports = [s.gw.port, s.upstream.port];
  for (const framing of ['content-length', 'chunked'] as const) {
    // Upload while the upstream reads nothing.
    releaseUpload = null;
    const upSource = pulledSource(SIZE);
    const headers = { 'content-type': 'application/octet-stream', ...(framing === 'content-length' ? { 'content-length': String(SIZE) } : {}) };
    const upDone = new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = https.request({ ...base, method: 'PUT', path: '/orders/upload', headers }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      upSource.pipe(req);
    });
    while (releaseUpload === null) await sleep(20);
    await settled(() => upSource.pulled);
    assertBounded(t, `upload (${framing})`, upSource.pulled, ports);
    (releaseUpload as () => void)();
    const up = await upDone;
    t.equal(up.status, 200);
    t.same(JSON.parse(up.body), { received: SIZE, sha256: sha256Of(SIZE) }, `upload (${framing}): the upstream received every byte intact`);
  }

  // Download: the client reads nothing for a while, then everything.
  const got = await new Promise<{ n: number; hash: string }>((resolve, reject) => {
    const req = https.request({ ...base, path: '/orders/download' }, (res) => {
      const hash = createHash('sha256');
      let n = 0;
      res.pause();
      void settled(() => downloadSource?.pulled ?? 0).then(() => {
        assertBounded(t, 'download', downloadSource?.pulled ?? 0, ports);
        res.on('data', (c: Buffer) => {
          n += c.length;
          hash.update(c);
        });
        res.on('end', () => resolve({ n, hash: hash.digest('hex') }));
        res.resume();
      });
    });
    req.on('error', reject);
    req.end();
  });
  t.equal(got.n, SIZE, 'client received every byte');
  t.equal(got.hash, sha256Of(SIZE), 'intact');
});
