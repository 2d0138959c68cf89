// The admin listener is plain HTTP without authentication (loopback by default, but in Kubernetes
// it listens on the pod network). Whatever reaches it: unknown paths and methods, path spellings
// that might normalize onto an endpoint, oversized or malformed heads, oversized bodies on
// POST /reload, bodies and heads that never finish, and a burst of reloads, it answers within its
// bounds, never runs a reload it refused, and keeps the process and the data plane serving.
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import t from 'tap';
import { adminRequest } from '../helpers/admin-client.js';
import { AdminServer } from '../../src/admin/admin-server.js';
import { gatewayAdminBackend } from '../../src/admin/gateway-backend.js';
import { startStack } from '../helpers/harness.js';
import { guardProcess } from '../helpers/process-guard.js';

interface RawResult {
  /** Everything the server sent, latin1. */
  readonly text: string;
  /** Status codes of the responses in `text`, in order. */
  readonly statuses: number[];
  /** True when the server closed the connection (false: our timeout ended it). */
  readonly closedByServer: boolean;
}

function statusesIn(text: string): number[] {
  return [...text.matchAll(/(?:^|\r\n)HTTP\/1\.[01] (\d{3}) /g)].map((m) => Number(m[1]));
}

/** The head of the first response, lower-cased header names → values. */
function headOf(text: string): Record<string, string> {
  const end = text.indexOf('\r\n\r\n');
  const lines = text.slice(0, end < 0 ? text.length : end).split('\r\n').slice(1);
  return Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
}

function bodyOf(text: string): unknown {
  const end = text.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const len = Number(headOf(text)['content-length'] ?? NaN);
  const body = Number.isFinite(len) ? text.slice(end + 4, end + 4 + len) : text.slice(end + 4);
  try {
    return JSON.parse(body);
  } catch {
    return undefined;
  }
}

/** Writes `payload` on a fresh TCP connection, ends our side, and collects the answer. */
function raw(port: number, payload: string | Buffer, timeoutMs = 3_000): Promise<RawResult> {
  return new Promise((resolve) => {
    let text = '';
    let timedOut = false;
    const sock = net.connect({ host: '127.0.0.1', port }, () => sock.end(payload));
    sock.on('data', (c: Buffer) => (text += c.toString('latin1')));
    sock.on('error', () => undefined);
    sock.on('close', () => resolve({ text, statuses: statusesIn(text), closedByServer: !timedOut }));
    sock.setTimeout(timeoutMs, () => {
      timedOut = true;
      sock.destroy();
    });
  });
}

/**
 * Sends a request head, then streams up to `bodyBytes` of body (as given by `frame`) with
 * backpressure, stopping as soon as the server answers. Resolves when the server closed or after
 * the timeout.
 */
function streamBody(port: number, head: string, bodyBytes: number, frame: (chunk: Buffer) => Buffer, timeoutMs = 5_000): Promise<RawResult & { bytesSent: number }> {
  return new Promise((resolve) => {
    let text = '';
    let timedOut = false;
    let sent = 0;
    let answered = false;
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    const sock = net.connect({ host: '127.0.0.1', port }, () => {
      sock.write(head);
      const pump = () => {
        while (!answered && sent < bodyBytes && !sock.destroyed) {
          const piece = chunk.subarray(0, Math.min(chunk.length, bodyBytes - sent));
          sent += piece.length;
          if (!sock.write(frame(piece))) return void sock.once('drain', pump);
        }
      };
      pump();
    });
    sock.on('data', (c: Buffer) => {
      answered = true;
      text += c.toString('latin1');
    });
    sock.on('end', () => sock.destroy());
    sock.on('error', () => undefined);
    sock.on('close', () => resolve({ text, statuses: statusesIn(text), closedByServer: !timedOut, bytesSent: sent }));
    sock.setTimeout(timeoutMs, () => {
      timedOut = true;
      sock.destroy();
    });
  });
}

const admin = (port: number, method: string, path: string) => adminRequest(port, method, path, 5_000);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface StatusDoc {
  generation: number;
  lastReload: { result: string; generation: number; trigger: string } | null;
}

t.test('the admin listener survives hostile requests', async (t) => {
  const guard = guardProcess();
  t.teardown(() => guard.dispose());
  const s = await startStack();
  t.teardown(() => s.close());
  const adminLogs: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void adminLogs.push(JSON.parse(line) as Record<string, unknown>) });
  const adminServer = new AdminServer({ host: '127.0.0.1', port: 0, backend: gatewayAdminBackend(s.gw.gateway), logger });
  const { port } = (await adminServer.listen()) as AddressInfo;
  t.teardown(() => adminServer.close());

  const status = async () => (await admin(port, 'GET', '/status')).json as StatusDoc;
  const reloadsRequested = () => adminLogs.filter((l) => l['event'] === 'reload-requested').length;
  const get = (target: string, extra = '') => raw(port, `GET ${target} HTTP/1.1\r\nHost: localhost\r\n${extra}Connection: close\r\n\r\n`);

  t.test('unknown paths are 404 and name the endpoints', async (t) => {
    for (const target of ['/', '/admin', '/healthz/', '/reload/', '/metrics.json', '/status/extra', '/favicon.ico', '/.env']) {
      const r = await get(target);
      t.same(r.statuses, [404], `${target} is 404`);
      t.match(bodyOf(r.text), { error: { code: 'not-found' } }, `${target}: JSON error`);
    }
  });

  t.test('wrong methods are 405 with an Allow header, and run nothing', async (t) => {
    const before = (await status()).generation;
    const cases: Array<[string, string, string]> = [
      ['DELETE', '/reload', 'POST'],
      ['GET', '/reload', 'POST'],
      ['HEAD', '/reload', 'POST'],
      ['PUT', '/reload', 'POST'],
      ['POST', '/metrics', 'GET, HEAD'],
      ['PUT', '/status', 'GET, HEAD'],
      ['DELETE', '/healthz', 'GET, HEAD'],
      ['OPTIONS', '/readyz', 'GET, HEAD'],
    ];
    for (const [method, target, allow] of cases) {
      const r = await raw(port, `${method} ${target} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
      t.same(r.statuses, [405], `${method} ${target} is 405`);
      t.equal(headOf(r.text)['allow'], allow, `${method} ${target}: Allow: ${allow}`);
    }
    t.equal((await status()).generation, before, 'no reload ran');
    t.equal(reloadsRequested(), 0, 'no reload was requested');
  });

  t.test('an unknown method is refused by the parser', async (t) => {
    const r = await raw(port, 'FROB /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n');
    t.same(r.statuses, [400], 'FROB /healthz is 400');
    t.ok(r.closedByServer, 'connection closed');
  });

  t.test('path spellings never normalize onto an endpoint', async (t) => {
    for (const target of ['/healthz/../status', '/./status', '//status', '/status%00', '/%73tatus', '/STATUS', '/Status', '/status;x', '/status/', '/status\\']) {
      const r = await get(target);
      t.same(r.statuses, [404], `${JSON.stringify(target)} is 404`);
      t.notMatch(r.text, /"generation"/, `${JSON.stringify(target)} does not serve /status`);
    }
    const absolute = await get('http://x/status');
    t.same(absolute.statuses, [404], 'absolute-form http://x/status is 404');
    t.notMatch(absolute.text, /"generation"/, 'absolute-form does not serve /status');
    const absoluteReload = await raw(port, 'POST http://127.0.0.1/reload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    t.same(absoluteReload.statuses, [404], 'absolute-form POST http://127.0.0.1/reload is 404');
    const asterisk = await raw(port, 'OPTIONS * HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
    t.same(asterisk.statuses, [404], 'asterisk-form OPTIONS * is 404');
    t.equal(reloadsRequested(), 0, 'no reload was requested');
  });

  t.test('a query string does not change the endpoint', async (t) => {
    const readyz = await get('/readyz?x=1');
    t.same(readyz.statuses, [200], '/readyz?x=1 is 200');
    t.match(bodyOf(readyz.text), { ready: true }, 'the readiness document');
    t.same((await get('/healthz?')).statuses, [200], '/healthz? is 200');
    t.same((await get('/status?format=yaml&x=%00')).statuses, [200], '/status with a query is 200');
    t.same((await get('/nope?/status')).statuses, [404], 'a query naming an endpoint does not reach it');
  });

  t.test('HEAD answers without a body', async (t) => {
    const r = await raw(port, 'HEAD /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
    t.same(r.statuses, [200], 'HEAD /healthz is 200');
    t.equal(r.text.slice(r.text.indexOf('\r\n\r\n') + 4), '', 'no body');
  });

  t.test('an oversized head (100 KB header) is refused and the connection closed', async (t) => {
    const r = await raw(port, `GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: ${'a'.repeat(100 * 1024)}\r\n\r\n`);
    t.equal(r.statuses.length, 1, 'one answer');
    t.ok([400, 431].includes(r.statuses[0]!), `431 or 400 (got ${r.statuses[0]})`);
    t.ok(r.closedByServer, 'the server closed the connection');
  });

  t.test('200 header lines are bounded (answered or refused, never crash)', async (t) => {
    const lines = Array.from({ length: 200 }, (_, i) => `X-H${i}: v${i}\r\n`).join('');
    const r = await raw(port, `GET /healthz HTTP/1.1\r\nHost: localhost\r\n${lines}Connection: close\r\n\r\n`);
    t.equal(r.statuses.length, 1, 'one answer');
    t.ok([200, 400, 431].includes(r.statuses[0]!), `200, 400 or 431 (got ${r.statuses[0]})`);
    t.ok(r.closedByServer, 'the connection ends');
  });

  t.test('malformed heads are 400 and closed', async (t) => {
    const cases: Array<[string, string]> = [
      ['an invalid request line', 'GARBAGE\r\n\r\n'],
      ['a bad HTTP version', 'GET /healthz HTTP/9.9\r\nHost: localhost\r\n\r\n'],
      ['a NUL byte in a header value', 'GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-A: a\0b\r\n\r\n'],
      ['a NUL byte in a header name', 'GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-\0A: b\r\n\r\n'],
      ['a space before the colon', 'GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-A : b\r\n\r\n'],
      ['HTTP/1.1 without Host', 'GET /healthz HTTP/1.1\r\n\r\n'],
      ['Content-Length and Transfer-Encoding together', 'POST /reload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
      ['two different Content-Lengths', 'POST /reload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\n'],
    ];
    const before = (await status()).generation;
    for (const [what, payload] of cases) {
      const r = await raw(port, payload);
      t.same(r.statuses, [400], `${what}: 400`);
      t.ok(r.closedByServer, `${what}: connection closed`);
    }
    t.equal((await status()).generation, before, 'no malformed POST /reload ran a reload');
    t.equal(reloadsRequested(), 0, 'no reload was requested');
  });

  t.test('HTTP/1.0 without Host is answered and closed', async (t) => {
    const r = await raw(port, 'GET /healthz HTTP/1.0\r\n\r\n');
    t.same(r.statuses, [200], 'GET /healthz HTTP/1.0 is 200');
    t.match(bodyOf(r.text), { status: 'ok' }, 'the health document');
    t.ok(r.closedByServer, 'closed after the answer');
  });

  t.test('an oversized POST /reload body is 413 and runs no reload', async (t) => {
    const before = await status();
    const sized = await streamBody(port, `POST /reload HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${10 * 1024 * 1024}\r\n\r\n`, 10 * 1024 * 1024, (c) => c);
    t.same(sized.statuses, [413], 'a 10 MB Content-Length body is 413');
    t.match(bodyOf(sized.text), { error: { code: 'body-too-large' } }, 'a JSON error naming the limit');
    t.equal(headOf(sized.text)['connection'], 'close', 'Connection: close');
    t.ok(sized.closedByServer, 'the server closed the connection');
    t.ok(sized.bytesSent < 10 * 1024 * 1024, `the server did not read the whole body (${sized.bytesSent} bytes sent before the answer)`);

    const chunked = await streamBody(port, 'POST /reload HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n', 10 * 1024 * 1024, (c) => Buffer.concat([Buffer.from(`${c.length.toString(16)}\r\n`), c, Buffer.from('\r\n')]));
    t.same(chunked.statuses, [413], 'a 10 MB chunked body is 413');
    t.ok(chunked.closedByServer, 'the server closed the connection');

    await sleep(100);
    const after = await status();
    t.equal(after.generation, before.generation, 'generation unchanged: the reload did not run');
    t.same(after.lastReload, before.lastReload, 'lastReload unchanged');
    t.equal(reloadsRequested(), 0, 'no reload was requested');
  });

  t.test('an unfinished chunked POST /reload trickled slowly neither blocks other requests nor reloads', async (t) => {
    t.equal(adminServer.server.requestTimeout, 10_000, 'a request body is bounded by requestTimeout (10 s)');
    const before = (await status()).generation;
    const sock = net.connect({ host: '127.0.0.1', port });
    sock.on('error', () => undefined);
    let answered = '';
    sock.on('data', (c: Buffer) => (answered += c.toString('latin1')));
    await new Promise<void>((resolve) => sock.once('connect', () => resolve()));
    sock.write('POST /reload HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n');
    const trickle = setInterval(() => sock.write('1\r\na\r\n'), 100);
    try {
      await sleep(300);
      const started = Date.now();
      const health = await admin(port, 'GET', '/healthz');
      t.equal(health.status, 200, '/healthz answers while the body trickles');
      t.ok(Date.now() - started < 1_000, `promptly (${Date.now() - started} ms)`);
      t.equal((await admin(port, 'GET', '/readyz')).status, 200, '/readyz answers while the body trickles');
      t.equal((await status()).generation, before, 'no reload while the body is unfinished');
      await sleep(300);
      t.equal(answered, '', 'the unfinished request got no answer yet');
    } finally {
      clearInterval(trickle);
      sock.destroy();
    }
    await sleep(200);
    t.equal((await status()).generation, before, 'an abandoned request runs no reload');
    t.equal(reloadsRequested(), 0, 'no reload was requested');
  });

  t.test('a slowloris head does not block other requests', async (t) => {
    t.equal(adminServer.server.headersTimeout, 5_000, 'a head is bounded by headersTimeout (5 s)');
    const sock = net.connect({ host: '127.0.0.1', port });
    sock.on('error', () => undefined);
    await new Promise<void>((resolve) => sock.once('connect', () => resolve()));
    sock.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\n');
    let n = 0;
    const drip = setInterval(() => sock.write(`X-S${n++}: y\r\n`), 100);
    try {
      await sleep(300);
      const started = Date.now();
      t.equal((await admin(port, 'GET', '/healthz')).status, 200, '/healthz answers on a new connection meanwhile');
      t.ok(Date.now() - started < 1_000, `promptly (${Date.now() - started} ms)`);
      t.equal((await admin(port, 'GET', '/metrics')).status, 200, '/metrics answers meanwhile');
    } finally {
      clearInterval(drip);
      sock.destroy();
    }
  });

  t.test('50 concurrent POST /reload are coalesced and leave a consistent state', async (t) => {
    const before = await status();
    const answers = await Promise.all(Array.from({ length: 50 }, () => admin(port, 'POST', '/reload')));
    const generations: number[] = [];
    for (const [i, a] of answers.entries()) {
      t.ok(a.status === 200 || a.status === 422, `reload ${i}: 200 or 422 (got ${a.status})`);
      t.match(a.headers['content-type'], /^application\/json/, `reload ${i}: JSON`);
      t.match(a.json, { result: a.status === 200 ? 'success' : 'failure', generation: Number }, `reload ${i}: a reload result`);
      generations.push((a.json as { generation: number }).generation);
    }
    const after = await status();
    t.comment(`50 reload requests ran ${after.generation - before.generation} reloads`);
    t.ok(after.generation > before.generation, 'at least one reload ran');
    t.ok(after.generation <= before.generation + 50, `at most one generation per request (${before.generation} → ${after.generation})`);
    t.ok(generations.every((g) => g > before.generation && g <= after.generation), 'every answer names a generation between the old and the final one');
    t.equal(Math.max(...generations), after.generation, 'the last answer names the generation in force');
    t.match(after.lastReload, { result: 'success', generation: after.generation }, '/status lastReload is the final reload');
    const metrics = (await admin(port, 'GET', '/metrics')).body;
    t.match(metrics, new RegExp(`\\nmtls_gateway_config_generation ${after.generation}\\n`), '/metrics has the same generation');
    t.match(metrics, new RegExp(`\\nmtls_gateway_config_reloads_total\\{result="success"\\} ${after.generation - 1}\\n`), 'one successful reload counted per generation');
    t.match(metrics, /\nmtls_gateway_ready 1\n/, 'still ready');
  });

  t.test('after all of it: alive, ready, and the data plane serves', async (t) => {
    const health = await admin(port, 'GET', '/healthz');
    t.equal(health.status, 200, '/healthz is 200');
    t.same(health.json, { status: 'ok' }, 'the health document');
    t.equal((await admin(port, 'GET', '/readyz')).status, 200, '/readyz is 200');
    const res = await s.send(s.pki.clients['billing']!, { path: '/orders/1' });
    t.equal(res.status, 200, 'billing GET /orders/1 is 200');
    t.equal((await s.send(s.pki.clients['intruder']!, { path: '/orders/1' })).status, 403, 'policy still in force');
    t.same(guard.faults, [], 'no uncaught exception or unhandled rejection');
    t.notOk(adminLogs.some((l) => l['event'] === 'admin-request-failed'), 'no admin request failed with 500');
    t.ok(adminServer.server.listening, 'the admin listener still listens');
  });
});
