// The gateway's own HTTP/1.1 upstream client (server.engine: lean) writes a request head by hand,
// so it must refuse what would let a value become another header or another request: CR, LF or
// NUL in a value, a name that is not a token, a path with a space or a control byte, a method that
// is not a token, framing or connection headers it sets itself (Transfer-Encoding, Connection,
// Keep-Alive, Upgrade, TE, Expect, Proxy-Connection, in any case), and a duplicate or malformed
// Content-Length. Each is refused before a byte is sent (UND_ERR_INVALID_ARG, as undici refuses
// them), the upstream sees nothing, and the client goes on serving.
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import t from 'tap';
import type { Dispatcher } from 'undici';
import { Http1UpstreamClient } from '../../src/proxy/http1-upstream-client.js';
import { makeTestPki } from '../helpers/harness.js';
import { targetSettings } from '../helpers/target-settings.js';

t.test('hostile request heads are refused before anything is sent', async (t) => {
  const pki = await makeTestPki();
  const up = pki.upstreams['orders']!;
  const received: string[] = [];
  const server = tls.createServer({ key: up.keyPem, cert: up.chainPem, ca: pki.caBundlePem, requestCert: true, rejectUnauthorized: true }, (sock) => {
    sock.on('error', () => undefined);
    sock.on('data', (d: Buffer) => {
      received.push(d.toString('latin1'));
      sock.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const settings = targetSettings(pki, { protocol: 'http1', http1Client: 'lean', connections: 2, responseTimeout: 5_000, idleTimeout: 5_000, keepAlive: 5_000 });

  const client = new Http1UpstreamClient(`https://127.0.0.1:${(server.address() as AddressInfo).port}`, settings);
  t.teardown(async () => {
    await client.close();
    server.close();
  });
  const send = (opts: Partial<Dispatcher.DispatchOptions>) =>
    new Promise<{ status: number; error: (Error & { code?: string }) | null; connected: boolean }>((resolve) => {
      let status = 0;
      let connected = false;
      client.dispatch({ method: 'GET', path: '/', ...opts } as Dispatcher.DispatchOptions, {
        onConnect: () => (connected = true),
        onHeaders: (s: number) => ((status = s), true),
        onData: () => true,
        onComplete: () => resolve({ status, error: null, connected }),
        onError: (err: Error) => resolve({ status, error: err as Error & { code?: string }, connected }),
      } as unknown as Dispatcher.DispatchHandler);
    });

  const hostile: Array<[string, Partial<Dispatcher.DispatchOptions>]> = [
    ['CRLF in a value', { headers: ['x-a', 'v\r\nx-injected: 1'] }],
    ['LF in a value', { headers: ['x-a', 'v\nGET /other HTTP/1.1'] }],
    ['CR in a value', { headers: ['x-a', 'v\rx'] }],
    ['NUL in a value', { headers: ['x-a', 'v\0x'] }],
    ['DEL in a value', { headers: ['x-a', 'v\x7fx'] }],
    ['a space in a name', { headers: ['x a', 'v'] }],
    ['a colon in a name', { headers: ['x:a', 'v'] }],
    ['CRLF in a name', { headers: ['x-a\r\nx-b', 'v'] }],
    ['an empty name', { headers: ['', 'v'] }],
    ['a non-ASCII name', { headers: ['x-\u00e9', 'v'] }],
    ['Transfer-Encoding', { headers: ['Transfer-Encoding', 'chunked'] }],
    ['transfer-encoding, lower case', { headers: ['transfer-encoding', 'identity'] }],
    ['Connection', { headers: ['Connection', 'close'] }],
    ['Keep-Alive', { headers: ['KEEP-ALIVE', 'timeout=5'] }],
    ['Upgrade', { headers: ['Upgrade', 'websocket'] }],
    ['TE', { headers: ['TE', 'trailers'] }],
    ['Expect', { headers: ['Expect', '100-continue'] }],
    ['Proxy-Connection', { headers: ['Proxy-Connection', 'keep-alive'] }],
    ['duplicate Content-Length', { method: 'POST', headers: ['content-length', '1', 'Content-Length', '2'], body: Buffer.from('a') }],
    ['Content-Length with a sign', { method: 'POST', headers: ['content-length', '+1'], body: Buffer.from('a') }],
    ['Content-Length as a list', { method: 'POST', headers: ['content-length', '1, 1'], body: Buffer.from('a') }],
    ['Content-Length of 16 digits', { method: 'POST', headers: ['content-length', '1234567890123456'] }],
    ['Content-Length that is not the body', { method: 'POST', headers: ['content-length', '5'], body: Buffer.from('abc') }],
    ['a space in the path', { path: '/a b' }],
    ['a tab in the path', { path: '/a\tb' }],
    ['CRLF in the path', { path: '/a\r\nHost: evil' }],
    ['a path without a slash', { path: 'a' }],
    ['an empty path', { path: '' }],
    ['an absolute URL as the path', { path: 'http://evil/' }],
    ['a space in the method', { method: 'GET /x' as Dispatcher.HttpMethod }],
    ['an empty method', { method: '' as Dispatcher.HttpMethod }],
  ];
  for (const [what, opts] of hostile) {
    const o = await send(opts);
    t.equal(o.connected, false, `${what}: nothing sent`);
    t.match(o.error?.code, /^UND_ERR_(INVALID_ARG|REQ_CONTENT_LENGTH_MISMATCH)$/, `${what}: refused (${o.error?.code})`);
  }
  t.equal(received.length, 0, 'the upstream received no byte of any of them');
  const ok = await send({ headers: ['x-fine', 'value \u00e9 with latin1'] });
  t.equal(ok.status, 200, 'a sane request still goes through');
  t.equal(received.length, 1);
  t.match(received[0], /^GET \/ HTTP\/1\.1\r\nhost: 127\.0\.0\.1:\d+\r\nx-fine: value \xe9 with latin1\r\n\r\n$/, 'exactly the head asked for, value bytes as latin1');
});
