// A reload that changes a key fixed when the sockets and clients are made (the listeners, the
// admin listener, the handshake timeout, the request head size, the HTTP/1.1 engine, the log
// buffer) is refused, naming the key, so the running gateway never runs half of one setting and
// half of another. Everything else reloads.
import t from 'tap';
import { parseConfigText } from '../../src/config/load-config.js';
import { restartNeededFor } from '../../src/runtime/reloader.js';

const BASE = `
listen: { host: 127.0.0.1, port: 8443 }
tls: { cert: ./gateway.crt, key: ./gateway.key, clientCA: ./ca.pem }
upstreams:
  orders:
    url: https://127.0.0.1:9443
    tls: { cert: ./client.crt, key: ./client.key, ca: ./ca.pem, servername: orders.internal }
routes:
  - name: orders
    match: { pathPrefix: /orders }
    upstream: orders
    allow: [{ spiffe: spiffe://example.org/ns/*/sa/billing }]
`;

t.test('keys fixed at start are named; others reload', async (t) => {
  const running = parseConfigText(BASE, '/x/g.yaml');
  t.equal(restartNeededFor(running, parseConfigText(BASE, '/x/g.yaml')), null, 'the same config reloads');
  const fixed: Array<[string, string]> = [
    ['listen', BASE.replace('port: 8443', 'port: 8444')],
    ['tls.handshakeTimeout', BASE.replace('clientCA: ./ca.pem }', 'clientCA: ./ca.pem, handshakeTimeout: 5s }')],
    ['server.maxHeaderSize', `${BASE}server: { maxHeaderSize: 32768 }\n`],
    ['server.engine', `${BASE}server: { engine: node }\n`],
    ['log.bufferBytes', `${BASE}log: { bufferBytes: 0 }\n`],
  ];
  for (const [key, yaml] of fixed) t.equal(restartNeededFor(running, parseConfigText(yaml, '/x/g.yaml')), key, `${key}: refused, named`);
  const node = parseConfigText(`${BASE}server: { engine: node }\n`, '/x/g.yaml');
  t.equal(restartNeededFor(node, parseConfigText(`${BASE}server: { engine: node, keepAliveTimeout: 30s }\n`, '/x/g.yaml')), null, 'a gateway on the node engine reloads what is not fixed');
  t.equal(restartNeededFor(node, parseConfigText(BASE, '/x/g.yaml')), 'server.engine', 'back to the default engine: refused, named');
  t.equal(restartNeededFor(running, parseConfigText(`${BASE}server: { keepAliveTimeout: 30s }\n`, '/x/g.yaml')), null, 'server.keepAliveTimeout reloads');
});

t.test('server.engine takes node or lean only', async (t) => {
  t.equal(parseConfigText(BASE, '/x/g.yaml').server.engine, 'lean', 'lean by default');
  t.equal(parseConfigText(`${BASE}server: { engine: node }\n`, '/x/g.yaml').server.engine, 'node', 'node when asked (the switch back)');
  for (const bad of ['fast', 'Lean', '""', '1', '[lean]', '{ }']) {
    t.throws(() => parseConfigText(`${BASE}server: { engine: ${bad} }\n`, '/x/g.yaml'), /server\.engine/, `engine: ${bad} is refused, naming the key`);
  }
});
