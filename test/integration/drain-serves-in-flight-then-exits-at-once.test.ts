// The drain of `mtls-gateway start` (one process) as a load balancer and its clients see it:
// SIGTERM makes /readyz 503 at once while the listener keeps serving new connections for
// server.drainDelay; then it stops accepting, closes idle keep-alive connections at once, lets the
// request in flight finish with `Connection: close` (and closes its connection), and exits 0 as
// soon as nothing is left, long before server.drainTimeout. With an upstream that never answers,
// drainTimeout cuts the connection and the process still exits 0, logging `drain-timeout`.
import http from 'node:http';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import tls from 'node:tls';
import t, { type Test } from 'tap';
import { arrivalOf, startCli, waitFor as waitForCli, type RunningCli } from '../helpers/cli-process.js';
import { gatewayYaml, makeTestPki, startUpstream, tempDir, writePkiFiles, type TestPki, type UpstreamHandler } from '../helpers/harness.js';

/** Polls every 10 ms: the drain's timings are checked to tens of milliseconds. */
const waitFor = (what: string, ok: () => boolean, timeoutMs: number) => waitForCli(what, ok, timeoutMs, 10);

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

interface ParsedResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
  at: number;
}

/**
 * A client-side mTLS connection (billing's certificate) on which the test writes HTTP/1.1 requests
 * itself, so it sees exactly what the gateway does with the connection: the responses, and when
 * the gateway ends it (`endedAt`: the server's end of stream) or it closes (`closedAt`).
 */
class Conn {
  readonly socket: tls.TLSSocket;
  readonly ready: Promise<void>;
  endedAt: number | null = null;
  closedAt: number | null = null;
  error: NodeJS.ErrnoException | null = null;
  #buf = Buffer.alloc(0);
  #waiting: { resolve: (r: ParsedResponse) => void; reject: (e: Error) => void } | null = null;

  constructor(port: number, pki: TestPki) {
    const client = pki.clients['billing']!;
    this.socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: pki.root.certPem, cert: client.chainPem, key: client.keyPem });
    this.ready = new Promise((resolve, reject) => {
      this.socket.once('secureConnect', () => resolve());
      this.socket.once('error', reject);
    });
    this.socket.on('data', (c: Buffer) => {
      this.#buf = Buffer.concat([this.#buf, c]);
      this.#tryParse();
    });
    this.socket.on('end', () => {
      this.endedAt = Date.now();
      this.#waiting?.reject(new Error(`the connection ended before a complete response (${JSON.stringify(this.#buf.toString('latin1').slice(0, 200))})`));
      this.#waiting = null;
    });
    this.socket.on('error', (err: NodeJS.ErrnoException) => {
      this.error = err;
    });
    this.socket.on('close', () => {
      this.closedAt = Date.now();
      this.#waiting?.reject(new Error(`the connection closed before a complete response (${this.error?.code ?? 'no error'})`));
      this.#waiting = null;
    });
  }

  /** Writes a GET and resolves with its response. */
  get(pathname: string, extraHeaders = ''): Promise<ParsedResponse> {
    return new Promise((resolve, reject) => {
      this.#waiting = { resolve, reject };
      this.socket.write(`GET ${pathname} HTTP/1.1\r\nhost: localhost\r\n${extraHeaders}\r\n`);
    });
  }

  #tryParse(): void {
    if (this.#waiting === null) return;
    const end = this.#buf.indexOf('\r\n\r\n');
    if (end < 0) return;
    const lines = this.#buf.subarray(0, end).toString('latin1').split('\r\n');
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(lines[0]!)?.[1] ?? 0);
    const headers: Record<string, string> = {};
    for (const l of lines.slice(1)) {
      const i = l.indexOf(':');
      headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
    }
    const rest = this.#buf.subarray(end + 4);
    let body: Buffer;
    let used: number;
    if (headers['content-length'] !== undefined) {
      const n = Number(headers['content-length']);
      if (rest.length < n) return;
      body = rest.subarray(0, n);
      used = n;
    } else if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
      // Enough for the small bodies here: chunks up to the terminating zero-size chunk.
      const parts: Buffer[] = [];
      let at = 0;
      for (;;) {
        const le = rest.indexOf('\r\n', at);
        if (le < 0) return;
        const size = parseInt(rest.subarray(at, le).toString('latin1'), 16);
        if (size === 0) {
          if (rest.length < le + 4) return;
          used = le + 4;
          break;
        }
        if (rest.length < le + 2 + size + 2) return;
        parts.push(rest.subarray(le + 2, le + 2 + size));
        at = le + 2 + size + 2;
      }
      body = Buffer.concat(parts);
    } else {
      throw new Error(`response without a length: ${lines.join(' | ')}`);
    }
    this.#buf = rest.subarray(used);
    const w = this.#waiting;
    this.#waiting = null;
    w.resolve({ status, headers, body: body.toString('utf8'), at: Date.now() });
  }

  /** Resolves once the socket has closed. */
  closed(timeoutMs: number): Promise<number> {
    return waitFor('the connection to close', () => this.closedAt !== null, timeoutMs).then(() => this.closedAt!);
  }
}

function readyz(adminPort: number): Promise<{ status: number; json: { ready: boolean; reasons: string[] } }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port: adminPort, path: '/readyz', agent: false, timeout: 5_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString('utf8')) as { ready: boolean; reasons: string[] } }));
    });
    req.on('timeout', () => req.destroy(new Error('readyz timed out')));
    req.on('error', reject);
  });
}

/** A new TLS connection attempt: 'connected', or the error code it failed with. */
function tryConnect(port: number, pki: TestPki): Promise<string> {
  const client = pki.clients['billing']!;
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: pki.root.certPem, cert: client.chainPem, key: client.keyPem });
    s.setTimeout(3_000, () => s.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
    s.once('secureConnect', () => {
      s.destroy();
      resolve('connected');
    });
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

async function setup(t: Test, server: string, handler: UpstreamHandler) {
  const pki = await makeTestPki();
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  await writePkiFiles(pki, dir);
  const up = await startUpstream({ server: pki.upstreams['orders']!, ca: pki.caBundlePem, handler });
  t.teardown(() => up.close());
  const file = path.join(dir, 'gateway.yaml');
  const yaml = gatewayYaml({ upstreamPort: up.port, extra: server }).replace('log: { level: debug }', 'log: { level: debug, bufferBytes: 0 }');
  t.match(yaml, /log: \{ level: debug, bufferBytes: 0 \}/);
  await writeFile(file, yaml);
  const gw = startCli(file);
  t.teardown(() => {
    if (gw.child.exitCode === null && gw.child.signalCode === null) gw.child.kill('SIGKILL');
  });
  const event = (name: string) => gw.records.find((r) => r['event'] === name);
  await waitFor('listening and admin-listening', () => (event('listening') !== undefined && event('admin-listening') !== undefined) || gw.child.exitCode !== null, 20_000);
  if (gw.child.exitCode !== null) throw new Error(`the gateway exited with ${gw.child.exitCode}: ${gw.records.map((r) => JSON.stringify(r)).join('\n')}`);
  return { pki, up, gw, event, port: event('listening')!['port'] as number, adminPort: event('admin-listening')!['port'] as number };
}

/** For a failure's diagnostics: every record from SIGTERM on, in ms after it. */
function stopLog(gw: RunningCli, sigterm: number): { stopLog: string[] } {
  return { stopLog: gw.records.map((r, i) => `${gw.arrivedAt[i]! - sigterm} ${String(r['event'] ?? r['msg'])}`).filter((line) => !line.startsWith('-')) };
}

t.setTimeout(120_000);

t.test('SIGTERM: not ready at once, serves through drainDelay, then finishes the in-flight request and exits at once', async (t) => {
  const DELAY = 1_000;
  let drainStarted: () => void = () => undefined;
  const drainStartedSeen = new Promise<void>((r) => (drainStarted = r));
  const timers: NodeJS.Timeout[] = [];
  t.teardown(() => timers.forEach(clearTimeout));
  const { pki, up, gw, event, port, adminPort } = await setup(t, 'server: { drainDelay: 1s, drainTimeout: 20s }', (req, res) => {
    if (req.url?.startsWith('/orders/slow')) {
      // About 1.5 s; and never before the drain started, however slow this machine is, so the
      // request is still in flight when the drain begins.
      const arrived = Date.now();
      void drainStartedSeen.then(() => timers.push(setTimeout(() => res.end('slow done'), Math.max(0, 1_500 - (Date.now() - arrived)))));
      return;
    }
    res.end('ok');
  });
  t.equal((await readyz(adminPort)).status, 200, '/readyz 200 before SIGTERM');

  // An idle keep-alive connection (one request done) and a busy one (a request in flight).
  const idle = new Conn(port, pki);
  await idle.ready;
  const first = await idle.get('/orders/1');
  t.equal(first.status, 200, 'idle connection: its request got 200');
  t.notOk(/close/i.test(first.headers['connection'] ?? ''), 'idle connection: kept alive');
  const busy = new Conn(port, pki);
  await busy.ready;
  const slow = busy.get('/orders/slow');
  slow.catch(() => undefined);
  await waitFor('the slow request to reach the upstream', () => up.seen.some((s) => s.url === '/orders/slow'), 10_000);

  const sigterm = Date.now();
  gw.child.kill('SIGTERM');
  // A new connection during the drainDelay (checked below), made at once.
  const during = new Conn(port, pki);
  const duringAnswer = during.ready.then(() => during.get('/orders/1', 'connection: close\r\n'));
  duringAnswer.catch(() => undefined);

  // Not ready at once.
  let ready = await readyz(adminPort);
  while (ready.status !== 503 && Date.now() - sigterm < 2_000) ready = await readyz(adminPort);
  const readyzAfter = Date.now() - sigterm;
  t.equal(ready.status, 503, `/readyz 503 ${readyzAfter} ms after SIGTERM`);
  t.ok(readyzAfter < DELAY, 'at once (within the drainDelay)');
  t.ok(
    ready.json.reasons.some((r) => /draining/.test(r)),
    `the reasons mention draining (${JSON.stringify(ready.json.reasons)})`,
  );

  // During the drainDelay a new connection is still served.
  const duringRes = await duringAnswer;
  const duringAt = duringRes.at - sigterm;
  t.equal(duringRes.status, 200, `a new connection during the drainDelay: 200 (${duringAt} ms after SIGTERM)`);
  t.ok(duringAt < DELAY, 'answered within the drainDelay');
  t.equal(event('drain-started'), undefined, 'answered before the drain started');
  t.equal(idle.closedAt, null, 'the idle connection is left open during the drainDelay');

  await waitFor('drain-started', () => event('drain-started') !== undefined, 10_000);
  const drainStartedAt = gw.arrivedAt[gw.records.indexOf(event('drain-started')!)]! - sigterm;
  drainStarted();
  t.ok(drainStartedAt >= DELAY - 50, `the drain started after the drainDelay (${drainStartedAt} ms after SIGTERM)`);
  t.match(event('drain-started'), { busy: 1 }, 'one busy connection when the drain started');

  // After the delay the listener no longer accepts.
  await sleep(200);
  t.equal(await tryConnect(port, pki), 'ECONNREFUSED', 'a new connection after the drainDelay is refused');

  // The idle keep-alive connection is closed by the gateway right after the delay.
  const idleClosed = (await idle.closed(3_000)) - sigterm;
  t.ok(idle.endedAt !== null, 'the gateway ended the idle connection');
  t.ok(idleClosed >= DELAY - 50 && idleClosed < DELAY + 1_000, `the idle connection closed ${idleClosed} ms after SIGTERM: right after the drainDelay`);

  // The busy request completes, with Connection: close, and then its connection is closed.
  const slowRes = await slow;
  t.equal(slowRes.status, 200, `the in-flight request completed with 200 (${slowRes.at - sigterm} ms after SIGTERM)`);
  t.equal(slowRes.body, 'slow done');
  t.equal(slowRes.headers['connection']?.toLowerCase(), 'close', 'its response carries Connection: close');
  await busy.closed(3_000);
  t.ok(busy.endedAt !== null && busy.endedAt >= slowRes.at, 'then the gateway ended that connection');

  const { code, signal, at } = await gw.exited;
  const log = stopLog(gw, sigterm);
  t.equal(code, 0, 'exit code 0', log);
  t.equal(signal, null);
  // The gateway's stop is timed by its own `stopped` record. The process's exit after it is timed
  // loosely: under coverage (npm test) it writes its coverage as it exits, over 2 s on a loaded
  // 2-core machine (seen here: the exit 2,288 ms after the last response; `stopped` comes 0-53 ms
  // after it).
  const stoppedAt = arrivalOf(gw, 'stopped');
  t.ok(stoppedAt !== null && stoppedAt - slowRes.at < 2_000, `stopped ${stoppedAt === null ? 'never logged' : `${stoppedAt - slowRes.at} ms`} after the last response`, log);
  t.ok(at - sigterm < 12_000, `exited ${at - sigterm} ms after SIGTERM: not after drainTimeout (20 s)`, log);
  t.ok(event('drained'), 'drained is logged');
  t.equal(event('drain-timeout'), undefined, 'no drain-timeout');
  t.ok(event('stopped'), 'stopped is logged');
});

t.test('drainTimeout cuts a request whose upstream never answers; the process still exits 0', async (t) => {
  const DELAY = 500;
  const { pki, up, gw, event, port } = await setup(t, 'server: { drainDelay: 500ms, drainTimeout: 1s }', (req, res) => {
    if (req.url?.startsWith('/orders/hang')) return; // never answers
    res.end('ok');
  });
  const busy = new Conn(port, pki);
  await busy.ready;
  const hung = busy.get('/orders/hang');
  hung.catch(() => undefined);
  await waitFor('the request to reach the upstream', () => up.seen.some((s) => s.url === '/orders/hang'), 10_000);

  const sigterm = Date.now();
  gw.child.kill('SIGTERM');
  const timer = setTimeout(() => gw.child.kill('SIGKILL'), 30_000);
  const { code, signal, at } = await gw.exited;
  clearTimeout(timer);
  const log = stopLog(gw, sigterm);
  t.equal(code, 0, 'exit code 0: the stop finished within its bound (no stop-timeout)', log);
  t.equal(signal, null);
  // Timed by the gateway's own `stopped` record, right after the cut; the exit itself loosely (see
  // above), but long before the SIGKILL at 30 s that a stop waiting for the upstream would meet.
  const stoppedAt = arrivalOf(gw, 'stopped');
  t.ok(stoppedAt !== null && stoppedAt - sigterm < DELAY + 1_000 + 1_500, `stopped ${stoppedAt === null ? 'never logged' : `${stoppedAt - sigterm} ms`} after SIGTERM (drainDelay 500 ms, drainTimeout 1 s)`, log);
  t.ok(at - sigterm < 15_000, `exited ${at - sigterm} ms after SIGTERM`, log);
  t.match(event('drain-timeout'), { level: 'warn', afterMs: 1_000, connections: 1 }, 'drain-timeout is logged');
  await t.rejects(hung, 'the hung request got no response');
  await busy.closed(3_000);
  t.pass('its connection was cut');
});
