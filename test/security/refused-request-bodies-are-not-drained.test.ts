// Pins a denial-of-service defence: after refusing a request (403, 404, 401...) whose body it has
// not read, the gateway used to read and discard the body to keep the connection alive: 5.2 GB in
// 8 s on one keep-alive connection. It now answers with `Connection: close` and closes, so an
// attacker's upload costs at most what the socket buffers hold.
import tls from 'node:tls';
import t from 'tap';
import { startStack } from '../helpers/harness.js';

interface Flood {
  readonly status: number | null;
  readonly connectionClose: boolean;
  readonly bytesWritten: number;
  readonly closedByServer: boolean;
}

/** Sends a request head announcing a huge body, then writes body bytes as fast as the socket takes them, for at most `ms`. */
function flood(port: number, creds: { ca: string; cert: string; key: string }, head: string, chunked: boolean, ms: number): Promise<Flood> {
  return new Promise((resolve) => {
    let text = '';
    let bytesWritten = 0;
    let stopped = false;
    let closedByServer = true;
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    const framed = chunked ? Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]) : chunk;
    const sock = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ...creds }, () => {
      sock.write(head);
      const pump = () => {
        while (!stopped && !sock.destroyed) {
          bytesWritten += framed.length;
          if (!sock.write(framed)) return void sock.once('drain', pump);
        }
      };
      pump();
    });
    const timer = setTimeout(() => {
      closedByServer = false;
      sock.destroy();
    }, ms);
    sock.on('data', (c: Buffer) => (text += c.toString('latin1')));
    sock.on('error', () => undefined);
    sock.on('close', () => {
      stopped = true;
      clearTimeout(timer);
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
      resolve({ status: m ? Number(m[1]) : null, connectionClose: /\r\nconnection: close\r\n/i.test(text), bytesWritten, closedByServer });
    });
  });
}

t.test('a refused request with an unread body closes the connection instead of draining it', async (t) => {
  const s = await startStack();
  t.teardown(() => s.close());
  const intruder = s.pki.clients['intruder']!;
  const billing = s.pki.clients['billing']!;
  const intruderCreds = { ca: s.pki.root.certPem, cert: intruder.chainPem, key: intruder.keyPem };
  const billingCreds = { ca: s.pki.root.certPem, cert: billing.chainPem, key: billing.keyPem };
  const cases: [string, { ca: string; cert: string; key: string }, string, boolean, number][] = [
    ['403 with Content-Length', intruderCreds, 'POST /orders/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000000\r\n\r\n', false, 403],
    ['403 chunked', intruderCreds, 'POST /orders/1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n', true, 403],
    ['404 with Content-Length', billingCreds, 'POST /nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000000\r\n\r\n', false, 404],
    ['400 bad path', billingCreds, 'POST /orders/a;b HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000000\r\n\r\n', false, 400],
  ];
  for (const [name, creds, head, chunked, status] of cases) {
    const out = await flood(s.gw.port, creds, head, chunked, 4_000);
    t.equal(out.status, status, `${name}: answered ${status}`);
    t.ok(out.connectionClose, `${name}: with Connection: close`);
    t.ok(out.closedByServer, `${name}: the gateway closed the connection`);
    // What the sockets buffer between the two processes, not gigabytes.
    t.ok(out.bytesWritten < 64 * 1024 * 1024, `${name}: the client got ${(out.bytesWritten / 1048576).toFixed(1)} MiB in before the close`);
  }
  t.equal(s.upstream.seen.length, 0, 'nothing was forwarded');
  t.equal((await s.send(billing, { path: '/orders/1' })).status, 200, 'the gateway still serves');
});
