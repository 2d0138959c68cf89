// Bodies stream through the gateway both ways with backpressure: 50 MB up and 50 MB down pass
// intact, and while the receiving side reads nothing, the sending side can get only a bounded
// amount (socket and stream buffers) into the pipe. A gateway that buffered whole bodies would
// let the sender push all 50 MB.
import { createHash } from 'node:crypto';
import https from 'node:https';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { startStack } from '../helpers/harness.js';

const SIZE = 50 * 1024 * 1024;
const CHUNK = Buffer.alloc(64 * 1024, 'x');
// Loopback socket buffers plus Node's stream high-water marks on three hops stay far below this.
const IN_FLIGHT_BOUND = 16 * 1024 * 1024;

/** A pull-based source: `pulled` counts what the consumer has asked for so far. */
function source(bytes: number): Readable & { pulled: number } {
  let left = bytes;
  const r = new Readable({
    read() {
      if (left <= 0) return void this.push(null);
      const n = Math.min(left, CHUNK.length);
      left -= n;
      (r as Readable & { pulled: number }).pulled += n;
      this.push(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n));
    },
  }) as Readable & { pulled: number };
  r.pulled = 0;
  return r;
}

function sha256Of(bytes: number): string {
  const h = createHash('sha256');
  for (let left = bytes; left > 0; left -= CHUNK.length) h.update(left >= CHUNK.length ? CHUNK : CHUNK.subarray(0, left));
  return h.digest('hex');
}

t.test('50 MB up and down through the gateway, with backpressure', async (t) => {
  let downloadSource: (Readable & { pulled: number }) | null = null;
  let releaseUpload: (() => void) | null = null;
  const s = await startStack({
    upstreamHandler: (req, res) => {
      if (req.url?.startsWith('/orders/download')) {
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        downloadSource = source(SIZE);
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

  // Upload: chunked, while the upstream reads nothing.
  const upSource = source(SIZE);
  const upDone = new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = https.request({ ...base, method: 'PUT', path: '/orders/upload', headers: { 'content-type': 'application/octet-stream' } }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    upSource.pipe(req);
  });
  while (releaseUpload === null) await sleep(20);
  await sleep(500);
  t.ok(upSource.pulled < IN_FLIGHT_BOUND, `upload: only ${(upSource.pulled / 1048576).toFixed(1)} MB left the client while the upstream read nothing`);
  (releaseUpload as () => void)();
  const up = await upDone;
  t.equal(up.status, 200);
  t.same(JSON.parse(up.body), { received: SIZE, sha256: sha256Of(SIZE) }, 'upstream received every byte intact');

  // Download: the client reads nothing for a while, then everything.
  const got = await new Promise<{ n: number; hash: string; pulledWhilePaused: number }>((resolve, reject) => {
    const req = https.request({ ...base, path: '/orders/download' }, (res) => {
      const hash = createHash('sha256');
      let n = 0;
      res.pause();
      setTimeout(() => {
        const pulledWhilePaused = downloadSource?.pulled ?? -1;
        res.on('data', (c: Buffer) => {
          n += c.length;
          hash.update(c);
        });
        res.on('end', () => resolve({ n, hash: hash.digest('hex'), pulledWhilePaused }));
        res.resume();
      }, 500);
    });
    req.on('error', reject);
    req.end();
  });
  t.ok(got.pulledWhilePaused > 0 && got.pulledWhilePaused < IN_FLIGHT_BOUND, `download: only ${(got.pulledWhilePaused / 1048576).toFixed(1)} MB left the upstream while the client read nothing`);
  t.equal(got.n, SIZE, 'client received every byte');
  t.equal(got.hash, sha256Of(SIZE), 'intact');
});
