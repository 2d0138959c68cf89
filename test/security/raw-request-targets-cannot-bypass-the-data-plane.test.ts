// Pins a security decision: the data plane, not Fastify's router, is the first to see a request, so
// it alone must refuse what a router would have refused. Request targets that are not origin-form
// (absolute-form, asterisk-form, authority-form via CONNECT), methods Fastify does not know, and a
// refusal pipelined in front of an allowed request on one connection: none of them reaches the
// upstream except through the policy.
import tls from 'node:tls';
import t from 'tap';
import { startStack } from '../helpers/harness.js';

function rawExchange(port: number, opts: { ca: string; cert: string; key: string }, payload: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ...opts }, () => sock.write(payload));
    let out = '';
    sock.on('data', (c: Buffer) => {
      out += c.toString('latin1');
    });
    sock.on('close', () => resolve(out));
    sock.on('error', (e) => (out ? resolve(out) : reject(e)));
    // Keep-alive responses leave the socket open: give the gateway time to answer, then close.
    sock.setTimeout(1_500, () => sock.end());
  });
}

// Responses follow each other directly (a body need not end with a newline).
const statuses = (out: string) => [...out.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));

t.test('non-origin-form targets and unknown methods go through the policy or nowhere', async (t) => {
  const s = await startStack();
  t.teardown(() => s.close());
  const billing = s.pki.clients['billing']!;
  const creds = { ca: s.pki.root.certPem, cert: billing.chainPem, key: billing.keyPem };

  const refused: Array<[string, string, number]> = [
    ['absolute-form target', 'GET https://localhost/orders/1 HTTP/1.1\r\nHost: localhost\r\n\r\n', 400],
    ['absolute-form target naming another route', 'GET http://localhost/admin HTTP/1.1\r\nHost: localhost\r\n\r\n', 400],
    ['asterisk-form target', 'OPTIONS * HTTP/1.1\r\nHost: localhost\r\n\r\n', 400],
    ['method outside the route (PROPFIND /orders/1)', 'PROPFIND /orders/1 HTTP/1.1\r\nHost: localhost\r\n\r\n', 404],
    ['unknown method on a route the identity may not use', 'PROPFIND /admin HTTP/1.1\r\nHost: localhost\r\n\r\n', 403],
  ];
  for (const [name, payload, status] of refused) {
    const out = await rawExchange(s.gw.port, creds, payload);
    t.same(statuses(out), [status], `${name}: ${status}`);
  }
  // CONNECT has no listener: Node closes the connection without forwarding anything.
  const connect = await rawExchange(s.gw.port, creds, 'CONNECT orders.internal:443 HTTP/1.1\r\nHost: orders.internal:443\r\n\r\n');
  t.notOk(statuses(connect).includes(200), 'CONNECT is not tunnelled');
  t.equal(s.upstream.seen.length, 0, 'none of them reached the upstream');

  // A refusal answered through Fastify, pipelined in front of an allowed request answered by the
  // data plane: both answers arrive, in order, and only the allowed one is forwarded.
  const pipelined = await rawExchange(
    s.gw.port,
    creds,
    'GET /admin/users HTTP/1.1\r\nHost: localhost\r\n\r\nGET /orders/7 HTTP/1.1\r\nHost: localhost\r\n\r\n',
  );
  t.same(statuses(pipelined), [403, 200], 'the refusal and then the allowed response, in order');
  t.same(
    s.upstream.seen.map((r) => r.url),
    ['/orders/7'],
    'only the allowed request reached the upstream',
  );
});
