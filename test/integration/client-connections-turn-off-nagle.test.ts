// Every client connection has Nagle's algorithm off, on both listeners: node:http2's secure server
// (the default, listen.http2: true, which also serves HTTP/1.1) and node:https (listen.http2:
// false). node:http2 leaves Nagle on unless told; with it on, a response of a few TLS records
// waited for the client's delayed ACK, and 64 KiB GETs ran at a third of the node floor's rate
// (bench/README.md). No timing is asserted here: the test watches the TCP handles the gateway
// accepts and checks that each was told setNoDelay(true).
import path from 'node:path';
import net from 'node:net';
import t from 'tap';
import { h2connect, h2request } from '../helpers/h2-client.js';
import { makeTestPki, request, startGateway, startStack } from '../helpers/harness.js';

interface TcpHandle {
  setNoDelay(on: boolean): number;
  getsockname(out: { port?: number }): number;
}

/** Local port -> the accepted TCP handles on it that were told setNoDelay(true) (Node's own handle API). */
const noDelayByLocalPort = new Map<number, Set<TcpHandle>>();
const count = (port: number) => noDelayByLocalPort.get(port)?.size ?? 0;
const probe = net.createServer();
await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
const probeSocket = net.connect((probe.address() as net.AddressInfo).port, '127.0.0.1');
await new Promise((resolve) => probeSocket.once('connect', resolve));
const tcpProto = Object.getPrototypeOf((probeSocket as unknown as { _handle: TcpHandle })._handle) as TcpHandle;
probeSocket.destroy();
probe.close();
const original = tcpProto.setNoDelay;
tcpProto.setNoDelay = function (this: TcpHandle, on: boolean) {
  const out: { port?: number } = {};
  if (on && this.getsockname(out) === 0 && out.port !== undefined) {
    const seen = noDelayByLocalPort.get(out.port) ?? new Set<TcpHandle>();
    noDelayByLocalPort.set(out.port, seen.add(this));
  }
  return original.call(this, on);
};
t.teardown(() => {
  tcpProto.setNoDelay = original;
});

t.test('HTTP/1.1 and h2 connections to the default listener, and HTTP/1.1 to listen.http2: false, all have Nagle off', async (t) => {
  const pki = await makeTestPki();
  const s = await startStack({ pki });
  t.teardown(() => s.close());
  const ca = pki.root.certPem;
  const billing = pki.clients['billing']!;

  const before = count(s.gw.port);
  const h1 = await request(s.gw.port, billing, ca, { path: '/orders/1' });
  t.equal(h1.status, 200, 'HTTP/1.1 served');
  const h2 = await h2connect(s.gw.port, billing, ca);
  t.teardown(() => h2.destroy());
  t.equal((await h2request(h2, { path: '/orders/2' })).status, 200, 'h2 served');
  // A client whose certificate is refused is a connection too: it must not be the exception.
  const refused = await request(s.gw.port, null, ca, { path: '/orders/1' }).then((r) => r.status, (err: Error) => err.message);
  t.not(refused, 200, `a client without a certificate is not served (${refused})`);
  t.equal(count(s.gw.port) - before, 3, 'each of the three connections the default listener accepted');

  const yaml = await (await import('node:fs/promises')).readFile(path.join(s.dir, 'gateway.yaml'), 'utf8');
  const off = await startGateway({ dir: s.dir, file: path.join(s.dir, 'gateway-h1.yaml'), yaml: yaml.replace('listen: { host: 127.0.0.1, port: 0 }', 'listen: { host: 127.0.0.1, port: 0, http2: false }') });
  t.teardown(() => off.close());
  const r = await request(off.port, billing, ca, { path: '/orders/3' });
  t.equal(r.status, 200, 'served with listen.http2: false');
  t.equal(count(off.port), 1, 'and its connection too');
});
