// The gateway's own HTTP/1.1 upstream client (server.engine: lean, src/proxy/http1-upstream-client.ts)
// behaves as undici's Pool does for everything the gateway relies on: a connection is reused only
// after a clean exchange, interim answers are dropped, HEAD/204/chunked/until-close bodies are
// framed right, trailers are delivered, timeouts and failures come with undici's error codes (so
// upstream-errors.ts maps them as before), request bodies are framed and checked, requests wait
// for a free connection, an abort before the first byte sends nothing, and close() waits for the
// requests in flight. Real mTLS over loopback against a scripted upstream.
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import tls from 'node:tls';
import t from 'tap';
import type { Dispatcher } from 'undici';
import { Http1UpstreamClient } from '../../src/proxy/http1-upstream-client.js';
import { translateUpstreamError } from '../../src/proxy/upstream-errors.js';
import { makeTestPki } from '../helpers/harness.js';
import { targetSettings } from '../helpers/target-settings.js';

/** What the upstream answers per path (the request's bytes are read first, body included). */
function answer(path: string, seen: Seen): string | null {
  switch (path) {
    case '/ok':
      return 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok';
    case '/close':
      return 'HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok';
    case '/interim':
      return 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nx';
    case '/switch':
      return 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n';
    case '/chunked':
      return 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-t\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\nx-t: 1\r\n\r\n';
    case '/until-close':
      return 'HTTP/1.1 200 OK\r\n\r\nstream';
    case '/cut':
      return 'HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc';
    case '/extra':
      return 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n';
    case '/hang':
    case '/drop':
    case '/drop-reused':
    case '/partial-then-drop':
    case '/split-interim':
    case '/then-unsolicited':
    case '/slow-reader':
      return null;
    case '/slow-body':
      return 'HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc';
    case '/ka-hint':
      return 'HTTP/1.1 200 OK\r\nKeep-Alive: timeout=1\r\nContent-Length: 0\r\n\r\n';
    case '/head':
      return 'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n';
    case '/204':
      return 'HTTP/1.1 204 No Content\r\n\r\n';
    case '/huge-head':
      return `HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(20_000)}\r\nContent-Length: 0\r\n\r\n`;
    case '/big':
      return `HTTP/1.1 200 OK\r\nContent-Length: ${256 * 1024}\r\n\r\n${'b'.repeat(256 * 1024)}`;
    case '/echo': {
      const body = JSON.stringify({ cl: seen.headers['content-length'] ?? null, te: seen.headers['transfer-encoding'] ?? null, host: seen.headers['host'], bytes: seen.body.length, body: seen.body.toString('latin1').slice(0, 64) });
      return `HTTP/1.1 200 OK\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
    }
    default:
      return 'HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n';
  }
}

interface Seen {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: Buffer<ArrayBufferLike>;
}

/** Reads one request (head, then a Content-Length or chunked body) off `buf`; null until it is whole. */
function takeRequest(buf: Buffer<ArrayBufferLike>): { seen: Seen; rest: Buffer<ArrayBufferLike> } | null {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
  const [method = '', path = ''] = lines[0]!.split(' ');
  const headers: Record<string, string> = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
  }
  let at = end + 4;
  let body: Buffer<ArrayBufferLike> = Buffer.alloc(0);
  if (headers['content-length'] !== undefined) {
    const n = Number(headers['content-length']);
    if (buf.length < at + n) return null;
    body = buf.subarray(at, at + n);
    at += n;
  } else if (headers['transfer-encoding'] === 'chunked') {
    const parts: Buffer[] = [];
    for (;;) {
      const le = buf.indexOf('\r\n', at);
      if (le < 0) return null;
      const size = parseInt(buf.subarray(at, le).toString('latin1'), 16);
      if (buf.length < le + 2 + size + 2) return null;
      if (size === 0) {
        at = le + 4;
        break;
      }
      parts.push(buf.subarray(le + 2, le + 2 + size));
      at = le + 2 + size + 2;
    }
    body = Buffer.concat(parts);
  }
  return { seen: { method, path, headers, body }, rest: buf.subarray(at) };
}

t.test('lean upstream client', async (t) => {
  const pki = await makeTestPki();
  const up = pki.upstreams['orders']!;
  let connections = 0;
  const requests: Seen[] = [];
  const sockets = new Set<tls.TLSSocket>();
  const server = tls.createServer({ key: up.keyPem, cert: up.chainPem, ca: pki.caBundlePem, requestCert: true, rejectUnauthorized: true }, (sock) => {
    connections++;
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => undefined);
    let buf: Buffer<ArrayBufferLike> = Buffer.alloc(0);
    let answered = 0;
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (let r = takeRequest(buf); r !== null; r = takeRequest(buf)) {
        buf = r.rest;
        requests.push(r.seen);
        const out = answer(r.seen.path, r.seen);
        if (r.seen.path === '/split-interim') {
          // The interim answer in one read, the final one in a later one.
          sock.write('HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n');
          setTimeout(() => sock.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal'), 50);
        } else if (r.seen.path === '/then-unsolicited') {
          // A clean answer, then, once the connection is idle, bytes nobody asked for.
          sock.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
          setTimeout(() => sock.write('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'), 100);
        }
        // No answer: the connection ends (FIN) once the request is read; /drop-reused only on a
        // connection that answered before (the keep-alive race), and /partial-then-drop after a
        // few bytes of a head.
        if (r.seen.path === '/drop') sock.end();
        if (r.seen.path === '/drop-reused') {
          if (answered > 0) sock.end();
          else sock.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
          answered++;
        }
        if (r.seen.path === '/partial-then-drop') sock.end('HTTP/1.1 200 OK\r\nContent-Le');
        if (out === null) continue;
        answered++;
        if (r.seen.path === '/until-close' || r.seen.path === '/cut' || r.seen.path === '/close') sock.end(out, 'latin1');
        else sock.write(out, 'latin1');
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const settings = targetSettings(pki, { protocol: 'http1', http1Client: 'lean' });

  const client = new Http1UpstreamClient(`https://127.0.0.1:${port}`, settings);
  t.teardown(async () => {
    await client.close();
    for (const s of sockets) s.destroy();
    server.close();
  });

  interface Outcome {
    status: number;
    headers: Record<string, string>;
    body: string;
    trailers: Record<string, string>;
    error: (Error & { code?: string }) | null;
    connected: boolean;
  }
  const send = (c: Dispatcher, opts: Partial<Dispatcher.DispatchOptions>, hooks: { onConnect?: (abort: (e?: Error) => void) => void; pauseFirst?: number } = {}) =>
    new Promise<Outcome>((resolve) => {
      const o: Outcome = { status: 0, headers: {}, body: '', trailers: {}, error: null, connected: false };
      let resume: () => void = () => undefined;
      let paused = false;
      c.dispatch({ method: 'GET', path: '/ok', ...opts } as Dispatcher.DispatchOptions, {
        onConnect: (abort: (e?: Error) => void) => {
          o.connected = true;
          hooks.onConnect?.(abort);
        },
        onHeaders: (status: number, h: Buffer[], r: () => void) => {
          o.status = status;
          for (let i = 0; i < h.length; i += 2) o.headers[h[i]!.toString('latin1').toLowerCase()] = h[i + 1]!.toString('latin1');
          resume = r;
          return true;
        },
        onData: (chunk: Buffer) => {
          o.body += chunk.toString('latin1');
          if (hooks.pauseFirst !== undefined && !paused) {
            paused = true;
            setTimeout(() => resume(), hooks.pauseFirst);
            return false;
          }
          return true;
        },
        onComplete: (trailers: unknown) => {
          const list = (trailers ?? []) as Buffer[];
          for (let i = 0; i < list.length; i += 2) o.trailers[list[i]!.toString('latin1').toLowerCase()] = list[i + 1]!.toString('latin1');
          resolve(o);
        },
        onError: (err: Error) => {
          o.error = err as Error & { code?: string };
          resolve(o);
        },
      } as unknown as Dispatcher.DispatchHandler);
    });
  const gatewayCode = (e: Error | null) => (e === null ? null : translateUpstreamError(e, 'orders').code);

  await t.test('keep-alive: sequential requests share one connection, with the Host of the origin', async (t) => {
    const before = connections;
    for (let i = 0; i < 3; i++) {
      const o = await send(client, {});
      t.equal(o.status, 200);
      t.equal(o.body, 'ok');
    }
    t.equal(connections - before, 1, 'one connection for three requests');
    t.equal(client.stats.idle, 1, 'kept idle');
    const echo = await send(client, { path: '/echo' });
    t.equal((JSON.parse(echo.body) as { host: string }).host, `127.0.0.1:${port}`);
  });

  await t.test('Connection: close, bytes after the answer, and a short Keep-Alive hint each close the connection', async (t) => {
    for (const path of ['/close', '/extra', '/ka-hint']) {
      const before = connections;
      const o = await send(client, { path });
      t.equal(o.status, 200, `${path}: answered`);
      t.equal((await send(client, {})).status, 200, `${path}: the next request is served`);
      // The closing exchange ran on the connection already open; the next one needed a new one.
      t.equal(connections - before, 1, `${path}: the next on a new connection`);
    }
  });

  await t.test('interim answers are dropped; 101 to a plain request is a protocol error', async (t) => {
    const o = await send(client, { path: '/interim' });
    t.equal(o.status, 201);
    t.equal(o.body, 'x');
    t.notOk(o.headers['link'], 'no interim header leaks');
    const s = await send(client, { path: '/switch' });
    t.equal(s.status, 0, 'nothing relayed');
    t.equal(gatewayCode(s.error), 'GW_ERR_UPSTREAM_PROTOCOL');
  });

  await t.test('framing: chunked with trailers, body until close, HEAD, 204', async (t) => {
    const c = await send(client, { path: '/chunked' });
    t.equal(c.body, 'abcde');
    t.same(c.trailers, { 'x-t': '1' });
    const u = await send(client, { path: '/until-close' });
    t.equal(u.error, null);
    t.equal(u.body, 'stream', 'a body without length ends with the connection');
    const before = connections;
    const h = await send(client, { path: '/head', method: 'HEAD' });
    t.equal(h.status, 200);
    t.equal(h.body, '', 'no body read after a HEAD answer');
    t.equal((await send(client, { path: '/204' })).status, 204);
    t.equal((await send(client, {})).body, 'ok', 'the connection is in step after HEAD and 204');
    t.equal(connections - before, 1);
  });

  await t.test('failures carry undici codes', async (t) => {
    const cut = await send(client, { path: '/cut' });
    t.equal(cut.status, 200, 'the head was delivered');
    t.equal(cut.error?.code, 'UND_ERR_SOCKET', 'then the cut');
    const hang = await send(client, { path: '/hang', headersTimeout: 200 } as Partial<Dispatcher.DispatchOptions>);
    t.equal(hang.error?.code, 'UND_ERR_HEADERS_TIMEOUT');
    t.equal(gatewayCode(hang.error), 'GW_ERR_UPSTREAM_TIMEOUT');
    const slow = await send(client, { path: '/slow-body', bodyTimeout: 200 } as Partial<Dispatcher.DispatchOptions>);
    t.equal(slow.status, 200);
    t.equal(slow.error?.code, 'UND_ERR_BODY_TIMEOUT');
    const huge = await send(client, { path: '/huge-head' });
    t.equal(huge.status, 0);
    t.equal(huge.error?.code, 'UND_ERR_HEADERS_OVERFLOW');
    t.equal(gatewayCode(huge.error), 'GW_ERR_UPSTREAM_PROTOCOL');
    t.equal((await send(client, {})).status, 200, 'served after every failure');
  });

  await t.test('the keep-alive race: an idempotent request without a body that a kept-alive connection closed under is sent once more on a new one', async (t) => {
    const fresh = new Http1UpstreamClient(`https://127.0.0.1:${port}`, settings);
    t.teardown(() => fresh.close());
    const before = connections;
    t.equal((await send(fresh, {})).status, 200);
    for (const method of ['GET', 'DELETE']) {
      const o = await send(fresh, { path: '/drop-reused', method });
      t.equal(o.error, null, `${method}: no failure`);
      t.equal(o.status, 200, `${method}: answered on the new connection`);
      t.equal(o.body, 'ok');
    }
    t.equal(fresh.stats.replayed, 2, 'each sent twice');
    t.equal(connections - before, 3, 'a new connection for each replay');
    // Once only: the new connection closes as well, and that is the answer.
    const twice = await send(fresh, { path: '/drop' });
    t.match(twice.error?.message, /^other side closed \(FIN on a new connection; (TLS session resumed; )?request sent\)$/, 'the second close is the answer');
    t.equal(fresh.stats.replayed, 3);
    t.equal((await send(fresh, {})).status, 200, 'served after');
  });

  await t.test('what is not sent again: a POST, a request with a body, an answer that had begun, a new connection; the failure says whether the connection was new or reused and how long it idled', async (t) => {
    const fresh = new Http1UpstreamClient(`https://127.0.0.1:${port}`, settings);
    t.teardown(() => fresh.close());
    t.equal((await send(fresh, {})).status, 200);
    await new Promise((r) => setTimeout(r, 30));
    const post = await send(fresh, { path: '/drop', method: 'POST', body: 'x', headers: { 'content-length': '1' } });
    t.equal(post.error?.code, 'UND_ERR_SOCKET');
    t.match(post.error?.message, /^other side closed \(FIN on request 2 on a kept-alive connection idle \d+ ms before it; (TLS session resumed; )?request sent\)$/);
    t.ok(Number(/idle (\d+) ms/.exec(post.error?.message ?? '')?.[1]) >= 25, 'the idle time is the time between the two requests');
    t.equal(gatewayCode(post.error), 'GW_ERR_UPSTREAM_RESET');
    t.equal((await send(fresh, {})).status, 200);
    const put = await send(fresh, { path: '/drop', method: 'PUT', body: Buffer.from('y'), headers: { 'content-length': '1' } });
    t.match(put.error?.message, /^other side closed \(FIN on request 2 on a kept-alive connection/, 'an idempotent request with a body is not sent again');
    t.equal((await send(fresh, {})).status, 200);
    const begun = await send(fresh, { path: '/partial-then-drop' });
    t.equal(begun.error?.code, 'UND_ERR_SOCKET', 'an answer that had begun is not asked for again');
    const opened = await send(fresh, { path: '/drop' });
    t.match(opened.error?.message, /^other side closed \(FIN on a new connection; (TLS session resumed; )?request sent\)$/, 'a new connection that closes is a refusal');
    t.equal(fresh.stats.replayed, 0, 'none was sent again');
    t.equal((await send(fresh, {})).status, 200, 'served after all of them');
  });

  await t.test('a paused relay gets every byte after resume, and no body timeout meanwhile', async (t) => {
    const o = await send(client, { path: '/big', bodyTimeout: 100 } as Partial<Dispatcher.DispatchOptions>, { pauseFirst: 300 });
    t.equal(o.error, null);
    t.equal(o.body.length, 256 * 1024);
  });

  await t.test('request bodies: length as given, chunked when unknown, checked against Content-Length', async (t) => {
    const echo = async (opts: Partial<Dispatcher.DispatchOptions>) => {
      const o = await send(client, { method: 'POST', path: '/echo', ...opts });
      return { ...o, seen: o.body ? (JSON.parse(o.body) as { cl: string | null; te: string | null; bytes: number; body: string }) : null };
    };
    const buf = await echo({ body: Buffer.from('hello') });
    t.match(buf.seen, { cl: '5', te: null, bytes: 5, body: 'hello' });
    const stream = await echo({ body: Readable.from([Buffer.from('ab'), Buffer.from('cde')]), headers: ['content-length', '5'] });
    t.match(stream.seen, { cl: '5', te: null, bytes: 5, body: 'abcde' });
    const chunked = await echo({ body: Readable.from([Buffer.from('ab'), Buffer.from('cde')]) });
    t.match(chunked.seen, { cl: null, te: 'chunked', bytes: 5, body: 'abcde' });
    const none = await echo({});
    t.match(none.seen, { cl: '0', bytes: 0 }, 'a POST without a body says content-length: 0');
    const short = await echo({ body: Readable.from([Buffer.from('ab')]), headers: ['content-length', '5'] });
    t.equal(short.error?.code, 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH');
    const long = await echo({ body: Readable.from([Buffer.from('abcdefgh')]), headers: ['content-length', '5'] });
    t.equal(long.error?.code, 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH');
    t.equal((await send(client, {})).status, 200);
  });

  await t.test('an interim answer and the final one in separate reads; bytes on an idle connection close it', async (t) => {
    const o = await send(client, { path: '/split-interim' });
    t.equal(o.status, 200);
    t.equal(o.body, 'final');
    const u = await send(client, { path: '/then-unsolicited' });
    t.equal(u.body, 'ok');
    await new Promise((r) => setTimeout(r, 300));
    t.equal(client.stats.idle, 0, 'the connection that got unsolicited bytes is closed, not kept');
    const before = connections;
    t.equal((await send(client, {})).status, 200, 'the next request is served');
    t.equal(connections - before, 1, 'on a new connection');
  });

  await t.test('object headers (as health checks send them) with their own Host; upgrades are refused', async (t) => {
    const o = await send(client, { path: '/echo', headers: { host: 'orders.internal', 'user-agent': 'probe' } as unknown as string[] });
    t.equal((JSON.parse(o.body) as { host: string }).host, 'orders.internal', 'the Host given is sent, not the origin\'s');
    const up = await send(client, { upgrade: 'websocket' } as Partial<Dispatcher.DispatchOptions>);
    t.equal(up.connected, false);
    t.equal(up.error?.code, 'UND_ERR_NOT_SUPPORTED');
  });

  await t.test('requests wait for the one connection and are served in order', async (t) => {
    const before = connections;
    const all = await Promise.all([send(client, {}), send(client, { path: '/echo' }), send(client, {})]);
    t.same(all.map((o) => o.status), [200, 200, 200]);
    t.equal(connections - before, 0, 'the idle connection served all three');
  });

  await t.test('an abort in onConnect sends nothing upstream and keeps the connection', async (t) => {
    const seenBefore = requests.length;
    const before = connections;
    const o = await send(client, { path: '/echo' }, { onConnect: (abort) => abort(new Error('client left')) });
    t.equal(o.error?.message, 'client left');
    t.equal(o.connected, true);
    t.equal((await send(client, {})).status, 200);
    t.equal(requests.length - seenBefore, 1, 'only the second request reached the upstream');
    t.equal(connections - before, 0);
  });

  await t.test('a streamed upload waits for a slow upstream (backpressure), and arrives whole', async (t) => {
    let got = 0;
    const slow = tls.createServer({ key: up.keyPem, cert: up.chainPem, ca: pki.caBundlePem, requestCert: true, rejectUnauthorized: true }, (sock) => {
      sock.on('error', () => undefined);
      // Reads in bursts with pauses, so the gateway's writes fill the socket and must wait.
      const tick = setInterval(() => {
        sock.resume();
        setTimeout(() => sock.pause(), 5);
      }, 30);
      sock.pause();
      sock.on('data', (d: Buffer) => {
        got += d.length;
        if (got >= 8 * 1024 * 1024) {
          clearInterval(tick);
          sock.resume();
          sock.end('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
        }
      });
      sock.on('close', () => clearInterval(tick));
    });
    await new Promise<void>((r) => slow.listen(0, '127.0.0.1', r));
    t.teardown(() => slow.close());
    const c3 = new Http1UpstreamClient(`https://127.0.0.1:${(slow.address() as AddressInfo).port}`, settings);
    t.teardown(() => c3.close());
    let pulled = 0;
    const chunk = Buffer.alloc(64 * 1024, 1);
    const body = new Readable({
      highWaterMark: 64 * 1024,
      read() {
        if (pulled >= 8 * 1024 * 1024) return void this.push(null);
        pulled += chunk.length;
        this.push(chunk);
      },
    });
    const o = await send(c3, { method: 'POST', path: '/upload', body, headers: ['content-length', String(8 * 1024 * 1024)] });
    t.equal(o.error, null);
    t.equal(o.status, 200);
    t.ok(got >= 8 * 1024 * 1024, `the upstream got all ${got} bytes`);
  });

  await t.test('a small upload read in one turn goes up whole; one that arrives over several turns is not held past the first; one cut while held closes its connection', async (t) => {
    // An upstream that notes when each request's first byte arrived (requests are read one after
    // the other) and answers with the body's length once the Content-Length body is in.
    const firstByteAt: number[] = [];
    const gotBodies: number[] = [];
    let timedConnections = 0;
    const timed = tls.createServer({ key: up.keyPem, cert: up.chainPem, ca: pki.caBundlePem, requestCert: true, rejectUnauthorized: true }, (sock) => {
      timedConnections++;
      sock.on('error', () => undefined);
      let buf: Buffer<ArrayBufferLike> = Buffer.alloc(0);
      sock.on('data', (d: Buffer) => {
        if (buf.length === 0) firstByteAt.push(Date.now());
        buf = Buffer.concat([buf, d]);
        for (let r = takeRequest(buf); r !== null; r = takeRequest(buf)) {
          buf = r.rest;
          gotBodies.push(r.seen.body.length);
          sock.write(`HTTP/1.1 200 OK\r\nContent-Length: ${String(r.seen.body.length).length}\r\n\r\n${r.seen.body.length}`);
        }
      });
    });
    await new Promise<void>((r) => timed.listen(0, '127.0.0.1', r));
    t.teardown(() => timed.close());
    const c4 = new Http1UpstreamClient(`https://127.0.0.1:${(timed.address() as AddressInfo).port}`, settings);
    t.teardown(() => c4.close());
    const piece = (n: number, fill: number) => Buffer.alloc(n, fill);

    // Four 16 KiB pieces in one turn: the whole request, once.
    const whole = new Readable({ read() {} });
    for (let i = 0; i < 4; i++) whole.push(piece(16 * 1024, 97 + i));
    whole.push(null);
    const o1 = await send(c4, { method: 'POST', path: '/held', body: whole, headers: ['content-length', String(64 * 1024)] });
    t.equal(o1.error, null);
    t.equal(o1.body, String(64 * 1024), 'the upstream read the 64 KiB body whole');

    // 1 KiB now, the rest 300 ms later: the head and the first KiB are upstream before the rest is sent.
    const slow = new Readable({ read() {} });
    let restSentAt = 0;
    slow.push(piece(1024, 120));
    setTimeout(() => {
      restSentAt = Date.now();
      slow.push(piece(3 * 1024, 121));
      slow.push(null);
    }, 300);
    const slowIndex = firstByteAt.length;
    const o2 = await send(c4, { method: 'POST', path: '/slow', body: slow, headers: ['content-length', String(4 * 1024)] });
    t.equal(o2.error, null);
    t.equal(o2.body, String(4 * 1024));
    t.ok(restSentAt > 0 && firstByteAt[slowIndex]! < restSentAt, `its first bytes were upstream ${restSentAt - firstByteAt[slowIndex]!} ms before the rest was sent`);

    // Cut in the turn it began: nothing more of it is sent, its connection closes, the next request is clean.
    // (After the turn that completed /slow, whose connection serves again only from that turn's end.)
    await new Promise((r) => setImmediate(r));
    const cut = new Readable({ read() {} });
    cut.push(piece(2048, 122));
    process.nextTick(() => cut.destroy(new Error('the client left')));
    const connectionsBefore = timedConnections;
    const bodiesBefore = gotBodies.length;
    const o3 = await send(c4, { method: 'POST', path: '/cut', body: cut, headers: ['content-length', String(32 * 1024)] });
    t.not(o3.error, null, 'the cut upload fails');
    const o4 = await send(c4, { method: 'POST', path: '/after', body: Buffer.from('fine'), headers: ['content-length', '4'] });
    t.equal(o4.error, null);
    t.equal(o4.body, '4', 'the next request is read as sent');
    t.same(gotBodies.slice(bodiesBefore), [4], 'the upstream never read the cut request as a whole one');
    t.equal(timedConnections, connectionsBefore + 1, 'the next request came on a new connection');
  });

  await t.test('a streamed body that fails while its request waits for a connection fails that request, not the process', async (t) => {
    // As undici's Request, which listens for the body's error from the start: one connection, busy
    // with the first request, so the second waits in the queue when its body fails.
    const c5 = new Http1UpstreamClient(`https://127.0.0.1:${port}`, settings);
    t.teardown(() => c5.close());
    const first = send(c5, {});
    const failing = new Readable({ read() {} });
    const second = send(c5, { method: 'POST', path: '/queued', body: failing, headers: ['content-length', '10'] });
    t.equal(c5.stats.queued, 1, 'the second request waits');
    process.nextTick(() => failing.destroy(new Error('the client left while queued')));
    t.equal((await first).error, null);
    t.equal((await second).error?.message, 'the client left while queued');
    t.equal((await send(c5, {})).error, null, 'the connection serves the next request');
  });

  await t.test('close() waits for the request in flight, then refuses', async (t) => {
    const c2 = new Http1UpstreamClient(`https://127.0.0.1:${port}`, settings);
    const inflight = send(c2, { path: '/chunked' });
    const closed = c2.close();
    t.equal((await inflight).body, 'abcde');
    await closed;
    t.equal(c2.closed, true);
    t.equal(c2.stats.connections, 0);
    const after = await send(c2, {});
    t.equal(after.error?.code, 'UND_ERR_CLOSED');
  });

  await t.test('a refused connection fails the request with the socket error', async (t) => {
    const dead = new Http1UpstreamClient('https://127.0.0.1:1', settings);
    const o = await send(dead, {});
    t.equal(o.connected, false, 'nothing was sent');
    t.equal(gatewayCode(o.error), 'GW_ERR_UPSTREAM_UNREACHABLE');
    await dead.close();
  });
});
