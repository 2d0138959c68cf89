// CRL over http: conditional GET driven only by validated copies, limits on size and time that
// abort the connection instead of leaving it open, stable failure codes, no redirect following,
// and an atomic disk cache that a restarted gateway can start from.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { KeyObject } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Agent } from 'undici';
import { createRootCa } from '../../src/pki/dev-pki.js';
import { makeBigCrlDer } from '../../src/revocation/crl-writer.js';
import { CrlHttpSource, type CrlHttpSourceOptions, type FetchOutcome } from '../../src/revocation/crl-http-source.js';

type TT = Parameters<Parameters<typeof t.test>[0]>[0];
type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

const NOW = new Date('2030-06-01T12:00:00Z');
const HOUR = 3600_000;
/** Longer than expectConnectionsClosed waits, so only the source's own abort can close the socket in time. */
const LONG = 60_000;

const ca = await createRootCa({ subject: { CN: 'CRL HTTP Test CA' }, now: NOW });
const caKey = KeyObject.from(ca.keys.privateKey);
const crl = (crlNumber: bigint): Buffer => makeBigCrlDer({
  issuerCertDer: ca.der,
  issuerKey: caKey,
  entries: 2000,
  thisUpdate: new Date(NOW.getTime() - HOUR),
  nextUpdate: new Date(NOW.getTime() + 24 * HOUR),
  crlNumber,
});
const crlA = crl(1n);
const crlB = crl(2n);

interface TestServer {
  readonly url: string;
  readonly requests: http.IncomingHttpHeaders[];
  readonly paths: string[];
  /** Resolves when every connection the server has seen so far is closed. */
  allClosed(): Promise<void>;
}

async function startServer(tt: TT, handler: Handler): Promise<TestServer> {
  const sockets = new Set<Socket>();
  const closed: Promise<void>[] = [];
  const requests: http.IncomingHttpHeaders[] = [];
  const paths: string[] = [];
  const server = http.createServer((req, res) => {
    requests.push(req.headers);
    paths.push(req.url ?? '');
    handler(req, res);
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    closed.push(new Promise((resolve) => s.once('close', () => {
      sockets.delete(s);
      resolve();
    })));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  tt.teardown(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/ca.crl`, requests, paths, allClosed: async () => { await Promise.all(closed); } };
}

/** Serves `current()` with an ETag and Last-Modified, answering 304 to a matching If-None-Match. */
function servingCrl(current: () => { body: Buffer; etag: string }): Handler {
  return (req, res) => {
    const { body, etag } = current();
    if (req.headers['if-none-match'] === etag) {
      res.writeHead(304, { etag });
      res.end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/pkix-crl', 'content-length': body.length, etag, 'last-modified': 'Sat, 01 Jun 2030 11:00:00 GMT' });
    res.end(body);
  };
}

function source(tt: TT, opts: Partial<CrlHttpSourceOptions> & { url: string }): CrlHttpSource {
  const s = new CrlHttpSource({ timeoutMs: 5000, maxBytes: 1024 * 1024, cacheFile: null, ...opts });
  tt.teardown(() => s.close());
  return s;
}

async function tmpDir(tt: TT): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'crl-http-source-'));
  tt.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Waits for the server to see its connections close; a leaked connection fails instead of hanging the file. */
async function expectConnectionsClosed(tt: TT, srv: TestServer): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const closed = await Promise.race([
    srv.allClosed().then(() => true),
    new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), 10_000); }),
  ]);
  clearTimeout(timer);
  tt.ok(closed, 'the client closed the connection');
}

function failed(tt: TT, out: FetchOutcome, code: string, reason?: RegExp): void {
  tt.equal(out.kind, 'failed', `failed (${out.kind === 'failed' ? out.reason : out.kind})`);
  if (out.kind !== 'failed') return;
  tt.equal(out.code, code, 'code');
  if (reason) tt.match(out.reason, reason, 'reason');
}

t.test('200, then 304 once the owner saved it, then 200 when the CRL changes', async (tt) => {
  let current = { body: crlA, etag: '"a"' };
  const srv = await startServer(tt, servingCrl(() => current));
  const src = source(tt, { url: srv.url });

  const first = await src.fetch();
  tt.match(first, { kind: 'updated', etag: '"a"', lastModified: 'Sat, 01 Jun 2030 11:00:00 GMT' });
  tt.ok(first.kind === 'updated' && first.bytes.equals(crlA), 'bytes');
  tt.notOk(srv.requests[0]?.['if-none-match'], 'first request is unconditional');

  // Security decision: validators come only from saveCache. Until the owner has validated and
  // saved a copy, a body served with an ETag must not turn later polls into "not modified".
  const again = await src.fetch();
  tt.equal(again.kind, 'updated', 'not saved yet: fetched again in full');
  tt.notOk(srv.requests[1]?.['if-none-match'], 'still unconditional before saveCache');

  if (first.kind !== 'updated') throw new Error('unreachable');
  await src.saveCache(first.bytes, first);
  tt.same(await src.fetch(), { kind: 'not-modified' }, '304 after saveCache');
  tt.equal(srv.requests[2]?.['if-none-match'], '"a"', 'If-None-Match sent');
  tt.equal(srv.requests[2]?.['if-modified-since'], 'Sat, 01 Jun 2030 11:00:00 GMT', 'If-Modified-Since sent');

  current = { body: crlB, etag: '"b"' };
  const changed = await src.fetch();
  tt.match(changed, { kind: 'updated', etag: '"b"' });
  tt.ok(changed.kind === 'updated' && changed.bytes.equals(crlB), 'new bytes');
});

t.test('non-200 statuses fail with CRL_FETCH_HTTP_STATUS', async (tt) => {
  const srv = await startServer(tt, (_req, res) => {
    res.writeHead(500, { 'content-type': 'text/plain' });
    res.end('boom');
  });
  failed(tt, await source(tt, { url: srv.url }).fetch(), 'CRL_FETCH_HTTP_STATUS', /HTTP 500/);
});

t.test('a redirect is reported, not followed', async (tt) => {
  const srv = await startServer(tt, (req, res) => {
    if (req.url === '/ca.crl') {
      res.writeHead(302, { location: '/elsewhere.crl' });
      res.end();
      return;
    }
    res.writeHead(200, { 'content-length': crlA.length });
    res.end(crlA);
  });
  failed(tt, await source(tt, { url: srv.url }).fetch(), 'CRL_FETCH_HTTP_STATUS', /HTTP 302 redirecting to \/elsewhere\.crl/);
  tt.same(srv.paths, ['/ca.crl'], 'the Location was not requested');
});

t.test('a body over maxBytes fails with CRL_FETCH_TOO_LARGE and the connection is closed', async (tt) => {
  tt.test('announced by Content-Length', async (t2) => {
    const srv = await startServer(t2, (_req, res) => {
      // Announces 10 MB and then stalls: only an abort by the client frees the connection.
      res.writeHead(200, { 'content-length': 10_000_000 });
      res.write(Buffer.alloc(100));
    });
    failed(t2, await source(t2, { url: srv.url, maxBytes: 1000, timeoutMs: LONG }).fetch(), 'CRL_FETCH_TOO_LARGE', /Content-Length 10000000/);
    await expectConnectionsClosed(t2, srv);
  });
  tt.test('chunked, counted while streaming', async (t2) => {
    const srv = await startServer(t2, (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/pkix-crl' });
      res.write(Buffer.alloc(600));
      setTimeout(() => res.write(Buffer.alloc(600)), 20);
      // ...and never ends.
    });
    const src = source(t2, { url: srv.url, maxBytes: 1000, timeoutMs: LONG });
    const out = await src.fetch();
    failed(t2, out, 'CRL_FETCH_TOO_LARGE', /exceeds maxBytes 1000/);
    t2.equal(srv.requests[0]?.['content-length'], undefined);
    await expectConnectionsClosed(t2, srv);
  });
  tt.test('exactly maxBytes is accepted', async (t2) => {
    const srv = await startServer(t2, servingCrl(() => ({ body: crlA, etag: '"a"' })));
    const out = await source(t2, { url: srv.url, maxBytes: crlA.length }).fetch();
    t2.equal(out.kind, 'updated');
  });
});

t.test('a server that never answers fails with CRL_FETCH_TIMEOUT', async (tt) => {
  tt.test('no headers', async (t2) => {
    const srv = await startServer(t2, () => { /* holds the request */ });
    failed(t2, await source(t2, { url: srv.url, timeoutMs: 300 }).fetch(), 'CRL_FETCH_TIMEOUT', /300 ms/);
    await expectConnectionsClosed(t2, srv);
  });
  tt.test('headers, then a body that stalls: the budget covers the whole fetch', async (t2) => {
    const srv = await startServer(t2, (_req, res) => {
      res.writeHead(200, { 'content-length': crlA.length });
      res.write(crlA.subarray(0, 100));
    });
    failed(t2, await source(t2, { url: srv.url, timeoutMs: 300 }).fetch(), 'CRL_FETCH_TIMEOUT');
    await expectConnectionsClosed(t2, srv);
  });
});

t.test('a stopped server fails with CRL_FETCH_NETWORK', async (tt) => {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  failed(tt, await source(tt, { url: `http://127.0.0.1:${port}/ca.crl` }).fetch(), 'CRL_FETCH_NETWORK', /ECONNREFUSED/);
});

t.test('disk cache', async (tt) => {
  tt.test('saveCache writes atomically, and a new source starts from it with its validators', async (t2) => {
    const dir = await tmpDir(t2);
    const cacheFile = path.join(dir, 'ca.crl');
    const srv = await startServer(t2, servingCrl(() => ({ body: crlA, etag: '"a"' })));
    const now = () => NOW.getTime();

    const first = source(t2, { url: srv.url, cacheFile, now });
    t2.equal(await first.loadCache(), null, 'no cache yet');
    const out = await first.fetch();
    if (out.kind !== 'updated') throw new Error(`expected updated, got ${out.kind}`);
    t2.same(await readdir(dir), [], 'fetch alone writes nothing');
    await first.saveCache(crlB, { etag: '"old"', lastModified: null });
    await first.saveCache(out.bytes, out);
    t2.same((await readdir(dir)).sort(), ['ca.crl', 'ca.crl.meta.json'], 'the file and its sidecar, no temp files');
    t2.ok((await readFile(cacheFile)).equals(crlA), 'the second save replaced the first');
    await first.close();

    const restarted = source(t2, { url: srv.url, cacheFile });
    const cached = await restarted.loadCache();
    t2.ok(cached?.bytes.equals(crlA), 'bytes');
    t2.equal(cached?.etag, '"a"');
    t2.equal(cached?.lastModified, 'Sat, 01 Jun 2030 11:00:00 GMT');
    t2.equal(cached?.fetchedAt.getTime(), NOW.getTime(), 'fetchedAt from the injected clock');
    t2.same(await restarted.fetch(), { kind: 'not-modified' }, 'the cached validators drive the first conditional fetch');
    t2.equal(srv.requests.at(-1)?.['if-none-match'], '"a"');
  });

  tt.test('bytes that no longer match the sidecar come back without validators', async (t2) => {
    const dir = await tmpDir(t2);
    const cacheFile = path.join(dir, 'ca.crl');
    const srv = await startServer(t2, servingCrl(() => ({ body: crlA, etag: '"a"' })));
    await source(t2, { url: srv.url, cacheFile }).saveCache(crlA, { etag: '"a"', lastModified: null });
    // As after a crash between the two renames, or a damaged disk: a 304 must not pin these bytes.
    await writeFile(cacheFile, crlB);
    const src = source(t2, { url: srv.url, cacheFile });
    const cached = await src.loadCache();
    t2.ok(cached?.bytes.equals(crlB), 'bytes still offered (the owner validates them)');
    t2.equal(cached?.etag, null, 'no validators');
    t2.equal((await src.fetch()).kind, 'updated', 'next fetch is unconditional');
    t2.notOk(srv.requests.at(-1)?.['if-none-match']);
  });

  tt.test('a cache saved for another URL keeps its bytes but not its validators', async (t2) => {
    const dir = await tmpDir(t2);
    const cacheFile = path.join(dir, 'ca.crl');
    await source(t2, { url: 'http://127.0.0.1:1/old.crl', cacheFile }).saveCache(crlA, { etag: '"a"', lastModified: null });
    const cached = await source(t2, { url: 'http://127.0.0.1:1/new.crl', cacheFile }).loadCache();
    t2.ok(cached?.bytes.equals(crlA));
    t2.equal(cached?.etag, null);
  });

  tt.test('a cache path that is a device or a FIFO is no cache, and never hangs or grows memory', async (t2) => {
    const dir = await tmpDir(t2);
    const fifo = path.join(dir, 'fifo.crl');
    execFileSync('mkfifo', [fifo]);
    t2.equal(await source(t2, { url: 'http://127.0.0.1:1/ca.crl', cacheFile: '/dev/zero' }).loadCache(), null, '/dev/zero');
    t2.equal(await source(t2, { url: 'http://127.0.0.1:1/ca.crl', cacheFile: fifo }).loadCache(), null, 'a FIFO');
  });

  tt.test('a failed write leaves no temp file and rejects', async (t2) => {
    const dir = await tmpDir(t2);
    const cacheFile = path.join(dir, 'missing-dir', 'ca.crl');
    await t2.rejects(source(t2, { url: 'http://127.0.0.1:1/ca.crl', cacheFile }).saveCache(crlA, { etag: null, lastModified: null }), { code: 'ENOENT' });
    t2.same(await readdir(dir), []);
  });
});

t.test('lifecycle and configuration', async (tt) => {
  const srv = await startServer(tt, servingCrl(() => ({ body: crlA, etag: '"a"' })));
  const agent = new Agent();
  tt.teardown(() => agent.close());
  const injected = new CrlHttpSource({ url: srv.url, timeoutMs: 1000, maxBytes: 1e6, cacheFile: null, dispatcher: agent });
  tt.equal((await injected.fetch()).kind, 'updated', 'works through an injected dispatcher');
  await injected.close();
  await tt.rejects(injected.fetch(), { code: 'CRL_SOURCE_CLOSED' });
  tt.equal(agent.closed, false, 'an injected dispatcher is left to its owner');

  for (const url of ['ftp://example.org/ca.crl', 'not a url', 'http://user:pw@127.0.0.1/ca.crl']) {
    tt.throws(() => new CrlHttpSource({ url, timeoutMs: 1000, maxBytes: 1e6, cacheFile: null }), { code: 'CRL_SOURCE_CONFIG' }, url);
  }
  tt.throws(() => new CrlHttpSource({ url: srv.url, timeoutMs: 0, maxBytes: 1e6, cacheFile: null }), { code: 'CRL_SOURCE_CONFIG' });
  tt.throws(() => new CrlHttpSource({ url: srv.url, timeoutMs: 1000, maxBytes: -1, cacheFile: null }), { code: 'CRL_SOURCE_CONFIG' });
});
