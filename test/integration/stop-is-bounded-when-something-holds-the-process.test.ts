// After SIGTERM a gateway process is gone by server.drainDelay + server.drainTimeout + a grace
// (src/cli/stop-deadline-timer.ts), whatever holds it. Found in CI: once, the primary of
// `--workers 2` did not exit within 300 s of SIGTERM, with nothing in its log to say why. Here the
// gateway's processes are made to misbehave on SIGTERM the way a leak or a bug would (a module
// preloaded into them, test only), and attacked where the stop used to wait:
//  - a handle that outlives the drain (a ref'd interval): `exit-held` names it, exit 0;
//  - connections still in their TLS handshake (silent, half a ClientHello): cut at drainTimeout;
//  - repeated SIGTERM and SIGINT, to one process and to every process of --workers: no drain cut;
//  - a worker killed while the primary hands it connections: the primary still exits;
//  - a worker whose event loop is blocked for good (Atomics.wait): it cannot run its own timer, so
//    the primary logs `worker-stop-timeout`, SIGKILLs it and exits 1;
//  - the timer's two paths, called directly.
import { writeFile } from 'node:fs/promises';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import pino from 'pino';
import t, { type Test } from 'tap';
import { armStopDeadline, STOP_GRACE_MS, stopBoundMs } from '../../src/cli/stop-deadline-timer.js';
import { arrivalOf, cliGatewayFiles, startCli, waitFor, type RunningCli } from '../helpers/cli-process.js';
import { enginesUnderTest, type TestPki } from '../helpers/harness.js';

const DRAIN_TIMEOUT_MS = 1_000;
/** A worker's bound, then the primary's kill, then the primary's own bound. */
const WORKER_BOUND_MS = stopBoundMs({ drainDelay: 0, drainTimeout: DRAIN_TIMEOUT_MS });

/** On SIGTERM, in the processes `who` selects: keep a ref'd interval (a leaked handle). */
const leakHook = (who: 'all' | 'workers') =>
  `import cluster from 'node:cluster';\nprocess.on('SIGTERM', () => { if (${who === 'workers' ? 'cluster.isWorker' : 'true'}) setInterval(() => {}, 60_000); });\n`;
/** On SIGTERM, in a cluster worker: block the event loop for good, without spinning a core. */
const BLOCK_HOOK = `import cluster from 'node:cluster';\nprocess.on('SIGTERM', () => { if (cluster.isWorker) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0); });\n`;

t.setTimeout(180_000);

async function setUp(
  t: Test,
  hookSource: string,
  workers: number,
  engine?: 'node' | 'lean',
  server = '',
): Promise<{ gw: RunningCli; pki: TestPki; port: number; sentAt: () => number; stop: () => void }> {
  const { pki, dir, port, file } = await cliGatewayFiles(t, {
    extra: `server: { drainTimeout: ${DRAIN_TIMEOUT_MS}ms${engine ? `, engine: ${engine}` : ''}${server} }`,
    // Long, so that only the drain can cut a handshake that does not finish.
    edit: (yaml: string) => yaml.replace('tls:\n  cert:', 'tls:\n  handshakeTimeout: 60s\n  cert:'),
  });
  const hook = path.join(dir, 'stop-hook.mjs');
  await writeFile(hook, hookSource);
  const gw = startCli(file, { args: workers > 1 ? ['--workers', String(workers)] : [], ...(hookSource === '' ? {} : { preload: hook }) });
  t.teardown(() => {
    if (gw.child.exitCode === null && gw.child.signalCode === null) gw.child.kill('SIGKILL');
  });
  await waitFor(`${workers} listening process(es)`, () => gw.records.filter((r) => r['event'] === 'listening').length >= workers, 60_000);
  let sent = 0;
  return {
    gw,
    pki,
    port,
    sentAt: () => sent,
    stop: () => {
      sent = Date.now();
      gw.child.kill('SIGTERM');
    },
  };
}

const events = (gw: RunningCli, name: string) => gw.records.filter((r) => r['event'] === name);

t.test('one process: a handle left after the drain is named, and the process exits 0 anyway', async (t) => {
  const { gw, sentAt, stop } = await setUp(t, leakHook('all'), 1);
  stop();
  const { code, at } = await gw.exited;
  t.equal(code, 0, 'exit code 0: the drain itself completed');
  t.equal(events(gw, 'stopped').length, 1, 'the drain completed (`stopped`)');
  const held = events(gw, 'exit-held');
  t.equal(held.length, 1, 'exit-held is logged once');
  t.match(held[0], { level: 'error', code: 0, boundMs: WORKER_BOUND_MS, resources: { Timeout: Number } }, 'at error level, naming the timer that held the process');
  t.equal(events(gw, 'stop-timeout').length, 0, 'the stop itself did not time out');
  t.ok(at - sentAt() < WORKER_BOUND_MS + 5_000, `gone ${at - sentAt()} ms after SIGTERM (bound ${WORKER_BOUND_MS} ms)`);
});

for (const engine of enginesUnderTest()) {
  t.test(`${engine} engine: a connection still in its TLS handshake is cut at drainTimeout, not left to hold the stop`, async (t) => {
    // Before: the drain's cut missed it (it is no connection of node:http's yet), and the stop
    // waited for tls.handshakeTimeout (10 s by default, 60 s here; the bound ended it at 4 s, exit 1).
    const { gw, port, sentAt, stop } = await setUp(t, '', 1, engine);
    // One that sent nothing, one that sent half a ClientHello.
    const silent = net.connect(port, '127.0.0.1');
    const partial = net.connect(port, '127.0.0.1', () => partial.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc])));
    for (const s of [silent, partial]) {
      s.on('error', () => {});
      t.teardown(() => s.destroy());
    }
    await Promise.all([silent, partial].map((s) => new Promise((r) => s.once('connect', r))));
    const closed = Promise.all([silent, partial].map((s) => new Promise((r) => s.once('close', r))));
    stop();
    const { code, at } = await gw.exited;
    await closed;
    t.equal(code, 0, 'exit code 0');
    t.equal(events(gw, 'drain-timeout').length, 1, 'the drain timed out on them and cut them');
    t.equal(events(gw, 'stop-timeout').length + events(gw, 'exit-held').length, 0, 'the stop finished by itself');
    // Timed by the gateway's own `stopped` record (arrivalOf); the exit only to the bound's order.
    const stopped = arrivalOf(gw, 'stopped');
    const stoppedAt = stopped === null ? null : stopped - sentAt();
    t.ok(stoppedAt !== null && stoppedAt < DRAIN_TIMEOUT_MS + 1_500, `stopped ${String(stoppedAt)} ms after SIGTERM (drainTimeout ${DRAIN_TIMEOUT_MS} ms)`);
    t.ok(at - sentAt() < DRAIN_TIMEOUT_MS + STOP_GRACE_MS + 5_000, `gone ${at - sentAt()} ms after SIGTERM`);
  });
}

/** One GET on a new mTLS connection: its status, or the error code. */
function get(port: number, pki: TestPki): Promise<number | string> {
  const client = pki.clients['billing']!;
  return new Promise((resolve) => {
    const req = https.get({ host: '127.0.0.1', port, servername: 'localhost', path: '/orders/1', agent: false, ca: pki.root.certPem, cert: client.chainPem, key: client.keyPem, timeout: 5_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('client timeout'), { code: 'TIMEOUT' })));
    req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('one process: repeated SIGTERM and SIGINT during the drain neither kill it nor cut the drain', async (t) => {
  // drainDelay keeps the listener serving, so a request shows the drain is still going on.
  const { gw, pki, port, stop } = await setUp(t, '', 1, undefined, ', drainDelay: 1500ms');
  t.equal(await get(port, pki), 200, 'serving before the stop');
  stop();
  await sleep(200);
  gw.child.kill('SIGTERM');
  gw.child.kill('SIGINT');
  await sleep(200);
  t.equal(await get(port, pki), 200, 'still serving during drainDelay, after the repeated signals');
  const { code, signal } = await gw.exited;
  t.same({ code, signal }, { code: 0, signal: null }, 'exit code 0, not killed by the second signal');
  t.same(events(gw, 'signal-while-stopping').map((r) => r['signal']).sort(), ['SIGINT', 'SIGTERM'], 'each repeated signal is logged');
  t.equal(events(gw, 'stopped').length, 1, 'the drain completed');
});

t.test('workers: SIGTERM to every process at once (systemd, pkill) drains each worker once', async (t) => {
  const { gw, pki, port, stop } = await setUp(t, '', 2, undefined, ', drainDelay: 1500ms');
  const pids = events(gw, 'listening').map((r) => r['pid'] as number);
  stop();
  // What KillMode=control-group does: the signal reaches the workers directly too, and then the
  // primary forwards its own.
  for (const pid of pids) process.kill(pid, 'SIGTERM');
  await sleep(300);
  t.equal(await get(port, pki), 200, 'still serving during drainDelay');
  const { code, signal } = await gw.exited;
  t.same({ code, signal }, { code: 0, signal: null }, 'the primary exits 0');
  t.match(events(gw, 'worker-exited'), [{ code: 0, signal: null }, { code: 0, signal: null }], 'no worker was killed by the second SIGTERM');
  t.equal(events(gw, 'stopped').length, 2, 'both workers completed their drain');
});

t.test('workers: a worker killed while the primary hands it a connection does not keep the primary alive', async (t) => {
  // node:cluster's primary hands each accepted connection to a worker and waits for its ACK; a
  // worker killed in that window never ACKs, and its channel's 'disconnect' never fires. In a bare
  // cluster script (Node 20 and 24) that leaves the handed-over connection open in the primary for
  // good, 6 runs of 6; through the gateway's CLI the same steps have left nothing held so far. A
  // suspect for the one held primary seen in CI. Either way the primary must exit 0 within its
  // bound, and an exit-held record, if any, must name the gateway's port. A frozen (SIGSTOP)
  // worker makes the window as wide as the test needs.
  const { gw, port, sentAt, stop } = await setUp(t, '', 2);
  const [frozen] = events(gw, 'listening').map((r) => r['pid'] as number);
  process.kill(frozen!, 'SIGSTOP');
  t.teardown(() => {
    try {
      process.kill(frozen!, 'SIGKILL');
    } catch {
      /* gone */
    }
  });
  // Round-robin: some of these are handed to the frozen worker.
  const clients: net.Socket[] = [];
  t.teardown(() => clients.forEach((c) => c.destroy()));
  for (let i = 0; i < 8; i++) {
    clients.push(net.connect(port, '127.0.0.1').on('error', () => {}));
    await sleep(50);
  }
  await sleep(300);
  process.kill(frozen!, 'SIGKILL');
  await waitFor('the primary sees the frozen worker exit', () => events(gw, 'worker-exited').some((r) => r['worker'] === frozen), 10_000);
  await waitFor('a replacement listening', () => events(gw, 'listening').length >= 3, 30_000);
  clients.forEach((c) => c.destroy());
  stop();
  const { code, signal, at } = await gw.exited;
  t.same({ code, signal }, { code: 0, signal: null }, 'the primary exits 0');
  const bound = WORKER_BOUND_MS + 2 * STOP_GRACE_MS;
  t.ok(at - sentAt() < bound + 2_000, `gone ${at - sentAt()} ms after SIGTERM (the primary's bound: ${bound} ms)`);
  // Node decides whether the leak happens; when it does, the record names what was held.
  const held = events(gw, 'exit-held');
  for (const r of held) t.comment(`exit-held: ${JSON.stringify(r)}`);
  t.ok(
    held.every((r) => (r['sockets'] as string[]).some((x) => x.includes(`:${port}`))),
    held.length === 0 ? 'no exit-held this time' : `exit-held names a socket on the gateway's port ${port}`,
  );
});

t.test('workers: a worker whose event loop is stuck is killed by the primary, which exits 1', async (t) => {
  const { gw, sentAt, stop } = await setUp(t, BLOCK_HOOK, 2);
  const pids = events(gw, 'listening').map((r) => r['pid']);
  stop();
  const { code, at } = await gw.exited;
  t.equal(code, 1, 'exit code 1: requests may have been lost');
  const killed = events(gw, 'worker-stop-timeout');
  t.same(killed.map((r) => r['worker']).sort(), [...pids].sort(), 'worker-stop-timeout names each stuck worker');
  t.match(killed[0], { level: 'error', afterMs: WORKER_BOUND_MS + STOP_GRACE_MS }, 'after the workers\' bound and one grace');
  t.match(events(gw, 'worker-exited'), [{ signal: 'SIGKILL' }, { signal: 'SIGKILL' }], 'they were SIGKILLed');
  t.equal(events(gw, 'exit-held').length + events(gw, 'stop-timeout').length, 0, 'the primary itself was not held');
  const took = at - sentAt();
  t.ok(took >= WORKER_BOUND_MS + STOP_GRACE_MS - 100 && took < WORKER_BOUND_MS + STOP_GRACE_MS + 5_000, `gone ${took} ms after SIGTERM`);
});

t.test('the bound itself: a stop that never finishes ends the process with stop-timeout, exit 1', async (t) => {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) });
  const exits: number[] = [];
  armStopDeadline({ boundMs: 50, logger, exit: (c) => exits.push(c) });
  await waitFor('the bound', () => exits.length > 0, 5_000);
  t.same(exits, [1], 'exit 1');
  t.match(lines, [{ event: 'stop-timeout', level: 50, boundMs: 50, resources: Object }], 'stop-timeout, with what held the loop');

  const finishedExits: number[] = [];
  const d = armStopDeadline({ boundMs: 60_000, logger, exit: (c) => finishedExits.push(c) });
  d.finished(0);
  const held = setInterval(() => {}, 60_000);
  t.teardown(() => clearInterval(held));
  // A listening server too: `sockets` names it by its address.
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  const { port } = server.address() as net.AddressInfo;
  await waitFor('exit-held', () => finishedExits.length > 0, STOP_GRACE_MS + 5_000);
  t.same(finishedExits, [0], 'a finished stop that is held exits with its own code, a grace later (not at the 60 s bound)');
  t.match(lines.at(-1), { event: 'exit-held', code: 0, resources: { Timeout: Number, TCPServerWrap: Number } });
  t.ok((lines.at(-1)!['sockets'] as string[]).includes(`Server 127.0.0.1:${port}`), `sockets names the listening server (${JSON.stringify(lines.at(-1)!['sockets'])})`);
});
