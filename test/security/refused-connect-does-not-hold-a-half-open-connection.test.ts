// A refused CONNECT (and any answer written on the raw socket) closes the connection once the
// answer is flushed, even if the client never closes its own half: a client cannot hold
// connections open by sending CONNECT and staying silent.
import net from 'node:net';
import tls from 'node:tls';
import t from 'tap';
import { makeTestPki, startStack } from '../helpers/harness.js';

t.test('a refused CONNECT does not hold a half-open connection', async (t) => {
  const pki = await makeTestPki();
  const s = await startStack({ pki });
  t.teardown(() => s.close());
  const c = pki.clients['billing']!;
  // A TCP socket that stays half-open (allowHalfOpen), wrapped in TLS.
  const tcp = net.connect({ host: '127.0.0.1', port: s.gw.port, allowHalfOpen: true });
  const sock = tls.connect({ socket: tcp, servername: 'localhost', ca: pki.root.certPem, cert: c.chainPem, key: c.keyPem });
  t.teardown(() => sock.destroy());
  await new Promise<void>((resolve, reject) => {
    sock.once('secureConnect', () => resolve());
    sock.once('error', reject);
  });
  const chunks: Buffer[] = [];
  sock.on('data', (d: Buffer) => chunks.push(d));
  sock.on('error', () => undefined);
  // The answer, then the server's end of the stream (bounded: the test must not hang on a bug).
  const ended = new Promise<void>((r) => {
    sock.once('end', () => r());
    sock.once('close', () => r());
    sock.on('data', () => Buffer.concat(chunks).toString('latin1').endsWith('}}') && r());
    setTimeout(r, 5000);
  });
  sock.write('CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n');
  await ended;
  t.match(Buffer.concat(chunks).toString('latin1'), /^HTTP\/1\.1 501 [\s\S]*GW_ERR_METHOD_NOT_SUPPORTED/, 'answered 501 in the documented format');
  // The client keeps its half open; the gateway's side must still be gone.
  const deadline = Date.now() + 5000;
  while (s.gw.gateway.status().connectionsOpen > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  t.equal(s.gw.gateway.status().connectionsOpen, 0, 'the gateway closed the connection itself');
});
