// `mtls-gateway start --workers 2` as one gateway: the primary hands both workers one session
// ticket key (a client resumes its TLS session on whichever worker the cluster gives it), runs the
// one admin listener (readiness, /status and /metrics over both workers), and decides reloads once:
// a configuration it refuses never reaches a worker, one it accepts reaches both. SIGTERM exits 0.
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import tls from 'node:tls';
import t, { type Test } from 'tap';
import { adminRequest, type AdminResponse } from '../helpers/admin-client.js';
import { cliGatewayFiles, startCli, waitFor } from '../helpers/cli-process.js';
import type { TestPki } from '../helpers/harness.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


interface Exchange {
  status: number;
  reused: boolean;
  /** The client's local port: the gateway logs it as peer.port. */
  localPort: number;
  /** The last session (ticket) the server sent on this connection, if any. */
  session: Buffer | null;
}

/**
 * One GET on a new mTLS connection (billing's certificate), optionally resuming `session`; the
 * request asks for `Connection: close`, and the exchange resolves once the connection closed, so
 * every ticket the server sent on it has arrived.
 */
function exchange(port: number, pki: TestPki, session: Buffer | null, pathname = '/orders/1'): Promise<Exchange> {
  const client = pki.clients['billing']!;
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      servername: 'localhost',
      ca: pki.root.certPem,
      cert: client.chainPem,
      key: client.keyPem,
      ...(session ? { session } : {}),
    });
    let latest: Buffer | null = null;
    let reused = false;
    let localPort = 0;
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => socket.destroy(new Error('client timeout')), 10_000);
    socket.on('session', (s: Buffer) => (latest = s));
    socket.once('secureConnect', () => {
      reused = socket.isSessionReused();
      localPort = socket.localPort ?? 0;
      socket.write(`GET ${pathname} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n`);
    });
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('latin1');
      const m = /^HTTP\/1\.1 (\d{3}) /.exec(text);
      if (!m) return reject(new Error(`no HTTP response: ${JSON.stringify(text.slice(0, 200))}`));
      resolve({ status: Number(m[1]), reused, localPort, session: latest });
    });
  });
}

type AdminAnswer = AdminResponse;
const admin = (port: number, method: 'GET' | 'POST', pathname: string) => adminRequest(port, method, pathname, 20_000);

/** The value of the sample of `name` whose labels include every one in `labels`; null if none. */
function sample(metricsText: string, name: string, labels: Record<string, string>): number | null {
  let found: number | null = null;
  for (const line of metricsText.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have: Record<string, string> = {};
    for (const lm of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) have[lm[1]!] = lm[2]!;
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) found = (found ?? 0) + Number(m[3]);
  }
  return found;
}

t.setTimeout(120_000);

t.test('--workers 2: one ticket key, one admin listener, reloads decided once in the primary', async (t) => {
  // Every line at once: the test reads the log while the processes run.
  const { pki, dir, port, file } = await cliGatewayFiles(t, { log: '{ level: debug, bufferBytes: 0 }' });
  const goodYaml = await readFile(file, 'utf8');
  t.match(goodYaml, new RegExp(`listen: \\{ host: 127\\.0\\.0\\.1, port: ${port} \\}`));
  t.match(goodYaml, /log: \{ level: debug, bufferBytes: 0 \}/);

  const gw = startCli(file, { args: ['--workers', '2'] });
  const workerPids = () => [...new Set(gw.records.filter((r) => r['event'] === 'listening').map((r) => r['pid'] as number))];
  t.teardown(async () => {
    if (gw.child.exitCode === null && gw.child.signalCode === null) gw.child.kill('SIGKILL');
    // Workers exit when their primary's channel closes; these are our own children's children.
    for (const pid of workerPids()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  });
  let exitedEarly = false;
  let stopping = false;
  void gw.exited.then(() => (exitedEarly = !stopping));
  const until = (what: string, ok: () => boolean, ms = 20_000) =>
    waitFor(what, () => ok() || exitedEarly, ms).then(() => {
      if (exitedEarly) throw new Error(`the gateway exited while waiting for ${what}; log:\n${gw.records.map((r) => JSON.stringify(r)).join('\n')}`);
    });

  // Generous: a worker needs about a second of CPU to start, and this machine may be shared.
  await until('the admin listener and two listening workers', () => gw.records.some((r) => r['event'] === 'admin-listening') && workerPids().length === 2, 45_000);
  const primaryPid = gw.child.pid!;
  const adminRecord = gw.records.find((r) => r['event'] === 'admin-listening')!;
  t.equal(adminRecord['pid'], primaryPid, 'the admin listener is the primary\'s');
  t.equal(gw.records.filter((r) => r['event'] === 'admin-listening').length, 1, 'exactly one admin listener');
  const adminPort = adminRecord['port'] as number;
  const pids = workerPids();
  t.notOk(pids.includes(primaryPid), 'the workers are not the primary');
  const byPid = (pid: number, event: string) => gw.records.filter((r) => r['pid'] === pid && r['event'] === event);
  const inWorkers = (event: string) => gw.records.filter((r) => r['event'] === event && pids.includes(r['pid'] as number));
  const inPrimary = (event: string) => gw.records.filter((r) => r['event'] === event && r['pid'] === primaryPid);
  /** Which worker served the connection from local port `localPort` (its `client-connected` record). */
  const servedBy = (localPort: number) =>
    gw.records.find((r) => r['event'] === 'client-connected' && (r['peer'] as { port?: number } | undefined)?.port === localPort);

  /** A full handshake, then 12 connections each resuming the last session: all resume, on both workers. */
  const resumesOnEitherWorker = async (t: Test) => {
    const first = await exchange(port, pki, null);
    t.equal(first.status, 200, 'first connection: 200');
    t.equal(first.reused, false, 'first connection: a full handshake');
    t.ok(first.session, 'the server sent a session ticket');
    let session = first.session!;
    const resumed: Exchange[] = [];
    for (let i = 0; i < 12; i++) {
      const ex = await exchange(port, pki, session);
      resumed.push(ex);
      if (ex.session) session = ex.session;
    }
    t.same(
      resumed.map((e) => e.status),
      resumed.map(() => 200),
      'every resumed connection: GET /orders/1 → 200',
    );
    t.same(
      resumed.map((e) => e.reused),
      resumed.map(() => true),
      'every connection after the first resumed its session (isSessionReused)',
    );
    await until('a client-connected record for every connection', () => [first, ...resumed].every((e) => servedBy(e.localPort) !== undefined), 5_000);
    const served = resumed.map((e) => servedBy(e.localPort)!);
    t.ok(
      served.every((r) => r['resumed'] === true),
      'the gateway logged every one of them as resumed',
    );
    const resumedOn = new Set(served.map((r) => r['pid'] as number));
    t.same([...resumedOn].sort(), [...pids].sort(), `resumed connections were served by both workers (${served.map((r) => r['pid']).join(', ')})`);
    t.equal(servedBy(first.localPort)!['resumed'], false, 'the first connection was logged as a full handshake');
    };

  await t.test('b. one admin listener speaks for both workers', async (t) => {
    // The primary counts a worker as serving once cluster reported its listener.
    let status: AdminAnswer = await admin(adminPort, 'GET', '/status');
    const deadline = Date.now() + 10_000;
    while ((status.json?.workers?.serving?.length ?? 0) < 2 && Date.now() < deadline) {
      await sleep(100);
      status = await admin(adminPort, 'GET', '/status');
    }
    t.equal(status.status, 200);
    t.same([...status.json.workers.serving].sort(), [...pids].sort(), '/status: workers.serving names both worker pids');
    t.equal(status.json.workers.configured, 2);
    t.equal(status.json.generation, 1, '/status: generation 1');
    const healthz = await admin(adminPort, 'GET', '/healthz');
    t.equal(healthz.status, 200, '/healthz 200');
    const readyz = await admin(adminPort, 'GET', '/readyz');
    t.equal(readyz.status, 200, `/readyz 200 (${readyz.body.trim()})`);
    t.same(readyz.json, { ready: true, reasons: [] });
  });

  await t.test('a. a TLS session resumes on either worker (one shared ticket key)', async (t) => {
    // Each worker asked for the primary's key and got it. The primary used to send it at fork, and a
    // worker still loading its config lost the message: it waited 10 s and made a key of its own.
    t.same(
      pids.map((pid) => byPid(pid, 'worker-init').map((r) => r['ticketKeys'])),
      pids.map(() => ['shared']),
      "each worker logged worker-init with the primary's key (ticketKeys: shared)",
    );
    await resumesOnEitherWorker(t);
  });

  let generation = 1;

  await t.test('c. POST /reload and SIGHUP reload both workers', async (t) => {
    const r = await admin(adminPort, 'POST', '/reload');
    t.equal(r.status, 200, `POST /reload → 200 (${r.body.trim()})`);
    t.same(r.json, { result: 'success', generation: 2 });
    generation = 2;
    await until('both workers log reload generation 2', () => pids.every((pid) => byPid(pid, 'reload').some((x) => x['generation'] === 2)), 10_000);
    for (const pid of pids) t.match(byPid(pid, 'reload').find((x) => x['generation'] === 2), { trigger: 'admin', generation: 2 }, `worker ${pid} reloaded to generation 2`);

    process.kill(primaryPid, 'SIGHUP');
    await until('both workers log reload generation 3', () => pids.every((pid) => byPid(pid, 'reload').some((x) => x['generation'] === 3)), 10_000);
    let status = await admin(adminPort, 'GET', '/status');
    const deadline = Date.now() + 5_000;
    // A worker reports generation 3 as soon as it reloaded; the primary records lastReload once
    // every worker answered, so /status may show the new generation a moment before lastReload.
    while ((status.json?.generation !== 3 || status.json?.lastReload?.generation !== 3) && Date.now() < deadline) {
      await sleep(50);
      status = await admin(adminPort, 'GET', '/status');
    }
    t.equal(status.json.generation, 3, 'SIGHUP to the primary: /status generation 3');
    t.match(status.json.lastReload, { result: 'success', trigger: 'SIGHUP', generation: 3 }, 'lastReload: SIGHUP, generation 3');
    generation = 3;
    t.equal(inWorkers('reload').length, 4, 'each worker reloaded exactly twice');
  });

  await t.test('d. a configuration the primary refuses never reaches a worker', async (t) => {
    const workerReloadsBefore = inWorkers('reload').length;
    await writeFile(path.join(dir, 'garbage.crt'), '-----BEGIN CERTIFICATE-----\nnot a certificate at all\n-----END CERTIFICATE-----\n');
    const lastRoute = goodYaml.lastIndexOf('upstream: orders');
    const variants: { name: string; yaml: string }[] = [
      { name: 'a route naming an unknown upstream', yaml: goodYaml.slice(0, lastRoute) + 'upstream: nowhere' + goodYaml.slice(lastRoute + 'upstream: orders'.length) },
      { name: 'tls.cert pointing at a file of garbage', yaml: goodYaml.replace('  cert: ./gateway.crt', '  cert: ./garbage.crt') },
    ];
    t.match(variants[0]!.yaml, /upstream: nowhere/);
    t.match(variants[1]!.yaml, /cert: \.\/garbage\.crt/);
    for (const v of variants) {
      const changesBefore = inPrimary('config-files-changed').length;
      const refusedBefore = inPrimary('reload-refused').length;
      await writeFile(file, v.yaml);
      const r = await admin(adminPort, 'POST', '/reload');
      t.equal(r.status, 422, `${v.name}: POST /reload → 422`);
      t.match(r.json, { result: 'failure', generation, error: { code: /^GW_ERR_/, message: String } }, `${v.name}: failure, generation unchanged, with an error code and message`);
      t.ok(typeof r.json?.error?.message === 'string' && r.json.error.message.length > 0, `${v.name}: error message "${r.json?.error?.message}"`);
      // The file watch notices the same change and tries too; let it finish.
      await until(`${v.name}: the primary's file watch notices the change`, () => inPrimary('config-files-changed').length > changesBefore, 10_000);
      await sleep(750);
      const refusals = inPrimary('reload-refused').slice(refusedBefore);
      t.ok(refusals.length >= 1, `${v.name}: ${refusals.length} reload-refused record(s) in the primary (${refusals.map((x) => x['trigger']).join(', ')})`);
      t.ok(
        refusals.every((x) => x['where'] === 'primary' && x['level'] === 'error'),
        'each says where: "primary"',
      );
      t.ok(
        refusals.some((x) => x['trigger'] === 'admin' || x['trigger'] === 'file-change'),
        'the refusal answers the POST (or the file watch it joined)',
      );
      const status = await admin(adminPort, 'GET', '/status');
      t.equal(status.json.generation, generation, `${v.name}: /status generation still ${generation}`);
      t.match(status.json.lastReload, { result: 'failure' }, `${v.name}: lastReload is the failure`);
      const traffic = await Promise.all([exchange(port, pki, null), exchange(port, pki, null), exchange(port, pki, null)]);
      t.same(
        traffic.map((e) => e.status),
        [200, 200, 200],
        `${v.name}: traffic still gets 200`,
      );
    }
    t.equal(inWorkers('reload').length, workerReloadsBefore, 'no worker reloaded for a refused configuration');
    t.equal(inWorkers('reload-refused').length, 0, 'no worker logged a reload-refused: the refusal happened once, in the primary');
    t.equal(inPrimary('reload-partial').length, 0, 'no reload-partial');

    // Back to the good configuration: the file watch reloads both workers, and so does POST /reload.
    const primaryReloadsBefore = inPrimary('reload').length;
    await writeFile(file, goodYaml);
    await until('the file watch reloads the restored configuration', () => inPrimary('reload').length > primaryReloadsBefore, 10_000);
    t.match(inPrimary('reload').at(-1), { trigger: 'file-change', workers: 2, generation: generation + 1 }, 'the restored file reloads both workers');
    generation++;
    const r = await admin(adminPort, 'POST', '/reload');
    t.equal(r.status, 200, 'after restoring the good config: POST /reload → 200');
    t.same(r.json, { result: 'success', generation: generation + 1 });
    generation++;
    await until(`both workers log reload generation ${generation}`, () => pids.every((pid) => byPid(pid, 'reload').some((x) => x['generation'] === generation)), 10_000);
    t.pass(`both workers at generation ${generation}`);
  });

  await t.test('e. /metrics aggregates the workers; reload results are counted once, in the primary', async (t) => {
    const before = await admin(adminPort, 'GET', '/metrics');
    t.equal(before.status, 200);
    const allow200 = { route: 'orders', decision: 'allow', status: '200' };
    const base = sample(before.body, 'mtls_gateway_requests_total', allow200) ?? 0;
    t.ok(base > 0, `requests so far: ${base}`);
    const ten: Exchange[] = [];
    for (let i = 0; i < 10; i++) ten.push(await exchange(port, pki, null));
    t.same(
      ten.map((e) => e.status),
      ten.map(() => 200),
      '10 GET /orders/1 on separate connections → 200',
    );
    await until('client-connected records for the 10 connections', () => ten.every((e) => servedBy(e.localPort) !== undefined), 5_000);
    const servers = ten.map((e) => servedBy(e.localPort)!['pid'] as number);
    t.same([...new Set(servers)].sort(), [...pids].sort(), `both workers served some of them (${servers.join(', ')})`);
    let after = await admin(adminPort, 'GET', '/metrics');
    const deadline = Date.now() + 3_000;
    // A request is counted as its access record is written, a moment after the client has the answer.
    while ((sample(after.body, 'mtls_gateway_requests_total', allow200) ?? 0) < base + 10 && Date.now() < deadline) {
      await sleep(50);
      after = await admin(adminPort, 'GET', '/metrics');
    }
    t.equal((sample(after.body, 'mtls_gateway_requests_total', allow200) ?? 0) - base, 10, 'mtls_gateway_requests_total{route="orders",decision="allow",status="200"} grew by exactly 10 (the sum over both workers)');

    // Every request this test made, counted by the test itself: 13 in (a), 6 in (d), 10 here.
    t.equal(sample(after.body, 'mtls_gateway_requests_total', allow200), 29, 'requests_total: all 29 allowed requests, over both workers');
    const failures = sample(after.body, 'mtls_gateway_config_reloads_total', { result: 'failure' });
    const successes = sample(after.body, 'mtls_gateway_config_reloads_total', { result: 'success' });
    t.equal(failures, inPrimary('reload-refused').length, `config_reloads_total{result="failure"} = the primary's refusals (${inPrimary('reload-refused').length})`);
    t.equal(successes, inPrimary('reload').length, `config_reloads_total{result="success"} = the primary's reloads (${inPrimary('reload').length}), not one per worker`);
    t.ok((failures ?? 0) >= 2, 'both refused configurations are counted');
    t.ok(/^process_cpu_seconds_total \S+$/m.test(after.body), 'process_cpu_seconds_total (a default metric) is present');
    // Gauges of state are not summed over the workers.
    t.equal(sample(after.body, 'mtls_gateway_config_generation', {}), generation, `mtls_gateway_config_generation is the generation in force (${generation}), not a sum`);
    t.equal(sample(after.body, 'mtls_gateway_ready', {}), 1, 'mtls_gateway_ready is 1, not a sum');
    t.match(after.body, /^# TYPE mtls_gateway_requests_total counter$/m, 'one TYPE line for the aggregated counter');
    t.equal(after.body.match(/^# TYPE mtls_gateway_requests_total /gm)?.length, 1, 'the metric appears once, not once per worker');
  });

  await t.test('e2. a reload that rebuilds the TLS context keeps the shared key: sessions resume on either worker', async (t) => {
    // tls.minVersion is part of the listener's context, so each worker calls setSecureContext with
    // the ticket key of its snapshot. node:cluster also hands the first worker's key to the others
    // as they listen; a worker with a key of its own lost that at its first such reload.
    const yaml = goodYaml.replace('tls:\n  cert:', 'tls:\n  minVersion: TLSv1.3\n  cert:');
    t.match(yaml, /minVersion: TLSv1\.3/);
    await writeFile(file, yaml);
    const r = await admin(adminPort, 'POST', '/reload');
    t.equal(r.status, 200, `POST /reload → 200 (${r.body.trim()})`);
    generation = (r.json as { generation: number }).generation;
    await until(`both workers log reload generation ${generation}`, () => pids.every((pid) => byPid(pid, 'reload').some((x) => x['generation'] === generation)), 10_000);
    await resumesOnEitherWorker(t);
  });

  await t.test('f. SIGTERM: exit code 0', async (t) => {
    stopping = true;
    gw.child.kill('SIGTERM');
    const timer = setTimeout(() => gw.child.kill('SIGKILL'), 30_000);
    const { code, signal } = await gw.exited;
    clearTimeout(timer);
    // A stop that goes wrong names itself: what the processes logged from SIGTERM on, and stderr.
    const drainingAt = gw.records.findIndex((r) => r['event'] === 'draining');
    const told = `records since the stop began:\n${gw.records.slice(drainingAt < 0 ? -20 : drainingAt).map((r) => JSON.stringify(r)).join('\n')}\nstderr:\n${gw.stderr().slice(-4000)}`;
    if (code !== 0) t.comment(told);
    t.equal(code, 0, 'exit code 0');
    t.equal(signal, null);
    t.same(
      gw.records.filter((r) => r['event'] === 'worker-exited').map((r) => r['worker']).sort(),
      [...pids].sort(),
      'both workers exited',
    );
  });
  t.notOk(exitedEarly, 'the primary did not exit before SIGTERM');
});
