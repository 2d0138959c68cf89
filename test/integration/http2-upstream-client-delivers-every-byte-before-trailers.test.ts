// The HTTP/2 upstream client (src/proxy/http2-upstream-client.ts) completes a response only after
// every body byte was delivered, however slowly the handler takes them: the trailers of a gRPC
// response never overtake its last messages. (undici 7.30's allowH2 client fails this: it completes
// on the trailers and drops what a paused stream still buffers.) Also: it offers only h2 and refuses
// an upstream that picks HTTP/1.1, streams a request body with backpressure, and turns every
// failure (refused connection, timeout, reset, abort, a throwing handler) into that request's
// error, never the process's.
import https from 'node:https';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import t from 'tap';
import type { Dispatcher } from 'undici';
import { Http2UpstreamClient } from '../../src/proxy/http2-upstream-client.js';
import { makeTestPki } from '../helpers/harness.js';
import { targetSettings } from '../helpers/target-settings.js';

const TOTAL = 256 * 1024;

t.test('http2 upstream client', async (t) => {
  const pki = await makeTestPki();
  const up = pki.upstreams['orders']!;
  const server = http2.createSecureServer({ key: up.keyPem, cert: up.chainPem, ca: pki.caBundlePem, requestCert: true, rejectUnauthorized: true, ALPNProtocols: ['h2'] });
  let uploaded = 0;
  const serverSessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => serverSessions.add(s));
  server.on('stream', (stream, headers) => {
    stream.on('error', () => undefined);
    const path = headers[':path'];
    if (path === '/hang') return;
    if (path === '/reset') return void stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    if (path === '/goaway') {
      stream.respond({ ':status': 200 });
      stream.end();
      stream.session?.goaway();
      return;
    }
    if (path === '/headers') {
      let body = '';
      stream.on('data', (c: Buffer) => (body += c.toString()));
      stream.on('end', () => {
        stream.respond({ ':status': 200, 'x-seen': JSON.stringify({ authority: headers[':authority'], cookie: headers['cookie'], multi: headers['x-multi'], connection: headers['connection'] ?? null, body }) });
        stream.end();
      });
      return;
    }
    if (headers[':path'] === '/upload') {
      stream.on('data', (c: Buffer) => (uploaded += c.length));
      stream.on('end', () => {
        stream.respond({ ':status': 200 }, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'x-received': String(uploaded) }));
        stream.end();
      });
      return;
    }
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
    stream.end(Buffer.alloc(TOTAL, 7));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const h1 = https.createServer({ key: up.keyPem, cert: up.chainPem }, (_req, res) => res.end('http/1.1'));
  await new Promise<void>((r) => h1.listen(0, '127.0.0.1', r));
  const settings = targetSettings(pki, { protocol: 'http2' });

  const client = new Http2UpstreamClient(`https://127.0.0.1:${(server.address() as AddressInfo).port}`, settings);
  t.teardown(async () => {
    await client.close();
    // A session the server sent GOAWAY on stays half-open on the server's side until it is ended.
    for (const s of serverSessions) s.destroy();
    server.close();
    h1.close();
  });

  const dispatch = (c: Dispatcher, opts: Partial<Dispatcher.DispatchOptions>, pauseEveryChunk: boolean, hooks: { onConnect?: (abort: (e?: Error) => void) => void; onHeaders?: () => void } = {}) =>
    new Promise<{ bytes: number; trailers: unknown; headers: Record<string, string> }>((resolve, reject) => {
      let bytes = 0;
      let resume: () => void = () => undefined;
      const headers: Record<string, string> = {};
      c.dispatch({ method: 'GET', path: '/', ...opts } as Dispatcher.DispatchOptions, {
        onConnect: (abort: (e?: Error) => void) => hooks.onConnect?.(abort),
        onHeaders: (_s: number, h: Buffer[], r: () => void) => {
          hooks.onHeaders?.();
          for (let i = 0; i < h.length; i += 2) headers[h[i]!.toString()] = h[i + 1]!.toString();
          resume = r;
          return true;
        },
        onData: (chunk: Buffer) => {
          bytes += chunk.length;
          if (!pauseEveryChunk) return true;
          // Long enough that the last DATA frames and the trailers arrive while the stream is paused.
          setTimeout(resume, 20);
          return false;
        },
        onComplete: (trailers: unknown) => resolve({ bytes, trailers, headers }),
        onError: reject,
      } as unknown as Dispatcher.DispatchHandler);
    });

  t.test('a handler that pauses after every chunk gets every byte, then the trailers', async (t) => {
    const r = await dispatch(client, {}, true);
    t.equal(r.bytes, TOTAL);
    t.match(r.trailers, { 'grpc-status': '0' });
  });

  t.test('a streamed request body arrives whole', async (t) => {
    const chunks = Array.from({ length: 64 }, () => Buffer.alloc(32 * 1024, 1));
    const r = await dispatch(client, { method: 'POST', path: '/upload', body: Readable.from(chunks) }, false);
    t.match(r.trailers, { 'x-received': String(64 * 32 * 1024) });
  });

  t.test('health checks use the same client through undici’s request API', async (t) => {
    const res = await client.request({ method: 'GET', path: '/', headers: { 'user-agent': 'check' } });
    t.equal(res.statusCode, 200);
    await res.body.dump();
  });

  const failure = (p: Promise<unknown>) =>
    p.then(
      () => null,
      (e: unknown) => e as { code?: string; message?: string },
    );

  t.test('request headers: pseudo-headers from the list, Host as :authority, connection fields dropped, repeats joined', async (t) => {
    const r = await dispatch(client, { method: 'POST', path: '/headers', body: Buffer.from('buffered'), headers: ['Host', 'orders.internal', 'Cookie', 'a=1', 'cookie', 'b=2', 'X-Multi', '1', 'x-multi', '2', 'Connection', 'keep-alive', 'Keep-Alive', '5'] }, false);
    t.same(JSON.parse(r.headers['x-seen']!), { authority: 'orders.internal', cookie: 'a=1; b=2', multi: '1, 2', connection: null, body: 'buffered' });
    const o = await dispatch(client, { method: 'POST', path: '/headers', body: 'text', headers: { 'x-multi': 'one' } as unknown as string[] }, false);
    t.match(JSON.parse(o.headers['x-seen']!), { multi: 'one', body: 'text' }, 'an object of headers too (undici’s request API)');
  });

  t.test('a reset stream, a headers timeout and an abort fail only their request', async (t) => {
    t.equal((await failure(dispatch(client, { path: '/reset' }, false)))?.code, 'ECONNRESET');
    t.equal((await failure(dispatch(client, { path: '/hang', headersTimeout: 50 }, false)))?.code, 'UND_ERR_HEADERS_TIMEOUT');
    const aborted = await failure(dispatch(client, { path: '/hang' }, false, { onConnect: (abort) => setTimeout(() => abort(Object.assign(new Error('gone'), { code: 'X_GONE' })), 10) }));
    t.equal(aborted?.code, 'X_GONE', 'the abort reason is the error');
    const threw = await failure(dispatch(client, {}, false, { onHeaders: () => { throw new Error('handler bug'); } }));
    t.equal(threw?.message, 'handler bug', 'a throwing handler fails its request');
    t.equal((await dispatch(client, { path: '/headers', method: 'POST', body: 'x' }, false)).headers['x-seen'] !== undefined, true, 'the session still serves');
  });

  t.test('after a GOAWAY the next request opens a new session', async (t) => {
    const sessions = new Set<unknown>();
    const onSession = (s: unknown) => sessions.add(s);
    server.on('session', onSession);
    await dispatch(client, { path: '/goaway' }, false);
    await new Promise((r) => setTimeout(r, 20));
    await dispatch(client, { path: '/headers', method: 'POST', body: 'x' }, false);
    server.off('session', onSession);
    t.equal(sessions.size, 1, 'one new session after the GOAWAY');
  });

  t.test('a refused connection fails every request waiting for it; a closed client takes none', async (t) => {
    const probe = http2.createSecureServer({ key: up.keyPem, cert: up.chainPem });
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const dead = new Http2UpstreamClient(`https://127.0.0.1:${port}`, settings);
    const errs = await Promise.all([failure(dispatch(dead, {}, false)), failure(dispatch(dead, {}, false))]);
    t.same(errs.map((e) => e?.code), ['ECONNREFUSED', 'ECONNREFUSED']);
    await dead.close();
    t.ok(dead.closed);
    t.equal((await failure(dispatch(dead, {}, false)))?.code, 'UND_ERR_CLOSED');
  });

  t.test('an upstream that only speaks HTTP/1.1 is refused, nothing is sent to it', async (t) => {
    let asked = 0;
    h1.on('request', () => asked++);
    const h1client = new Http2UpstreamClient(`https://127.0.0.1:${(h1.address() as AddressInfo).port}`, settings);
    const err = await dispatch(h1client, {}, false).then(
      () => null,
      (e: unknown) => e as { code?: string },
    );
    await h1client.close();
    t.ok(err?.code === 'GW_ERR_UPSTREAM_PROTOCOL' || err?.code === 'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL', `refused (${err?.code})`);
    t.equal(asked, 0);
  });
});
