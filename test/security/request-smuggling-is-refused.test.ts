// Pins a security decision: requests whose framing is ambiguous (Content-Length together with
// Transfer-Encoding, duplicate Content-Length, obsolete line folding) are refused by the gateway's
// HTTP parser and never forwarded, so no request can be smuggled past the policy to the upstream.
import tls from 'node:tls';
import t from 'tap';
import { startStack } from '../helpers/harness.js';

function rawExchange(port: number, opts: { ca: string; cert: string; key: string }, payload: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ...opts }, () => sock.end(payload));
    let out = '';
    sock.on('data', (c: Buffer) => (out += c.toString('latin1')));
    sock.on('close', () => resolve(out));
    sock.on('error', (e) => (out ? resolve(out) : reject(e)));
    sock.setTimeout(10_000, () => sock.destroy());
  });
}

t.test('ambiguous framing is refused before routing', async (t) => {
  const s = await startStack();
  t.teardown(() => s.close());
  const billing = s.pki.clients['billing']!;
  const creds = { ca: s.pki.root.certPem, cert: billing.chainPem, key: billing.keyPem };
  const smuggled = 'GET /admin HTTP/1.1\r\nHost: x\r\n\r\n';
  const cases: Array<[string, string]> = [
    ['CL + TE', `POST /orders/1 HTTP/1.1\r\nHost: x\r\nContent-Length: ${smuggled.length + 5}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${smuggled}`],
    ['duplicate CL', `POST /orders/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: ${smuggled.length}\r\n\r\n${smuggled}`],
    ['TE not chunked last', `POST /orders/1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n${smuggled}`],
    ['obs-fold', `GET /orders/1 HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n`],
  ];
  for (const [name, payload] of cases) {
    const out = await rawExchange(s.gw.port, creds, payload);
    t.match(out, /^HTTP\/1\.1 400 /, `${name}: 400`);
  }
  t.notOk(s.upstream.seen.some((r) => r.url === '/admin'), 'no smuggled request reached the upstream');
  t.equal(s.upstream.seen.length, 0, 'none of the ambiguous requests was forwarded');
});
