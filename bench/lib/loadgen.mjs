#!/usr/bin/env node
// The Node load generator, used when wrk/ab are not installed (or with --gen node), and always for
// holding idle connections. Client certificates come from a prebuilt SecureContext (building one per
// connection would cost the generator about a millisecond each). Server certificates are not
// verified by the generator (wrk and ab do not verify either); run.mjs checks the targets first.
//
//   node loadgen.mjs '<json config>'      -> one JSON line on stdout
//   config: { mode: ka|hs|hold, port, path, method, bodyBytes, conns, durationS, threads,
//             resume, preconnect, rate, cert, key, ca, servername, openConcurrency, openDeadlineS, holdMaxS }
//   (resume: offer the last session ticket received, in hs and hold modes)
//
// ka and hs run in `threads` worker threads (connections split between them) and report merged
// latency percentiles. {"event":"start"} and {"event":"end"} lines mark the measured window, so the
// harness can read CPU counters exactly around it (preconnect: keep-alive connections are opened
// before the window). hold opens `conns` keep-alive connections (handshake + one GET each), prints
// {"event":"held",...}, keeps them idle until it reads "release" on stdin (or holdMaxS passes),
// then closes them and exits.
import { readFileSync } from 'node:fs';
import { createSecureContext, connect } from 'node:tls';
import { Worker } from 'node:worker_threads';
import { Histogram } from './histogram.mjs';

const cfg = JSON.parse(process.argv[2]);
for (const k of ['cert', 'key', 'ca']) cfg[k] = readFileSync(cfg[k], 'utf8');
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

function openFilesLimit() {
  const m = /Max open files\s+(\S+)/.exec(readFileSync('/proc/self/limits', 'utf8'));
  return m && m[1] !== 'unlimited' ? Number(m[1]) : Infinity;
}

async function runWorkers() {
  const threads = Math.max(1, Math.min(cfg.threads ?? 1, cfg.conns));
  const cpu0 = process.cpuUsage();
  const workers = [];
  for (let i = 0; i < threads; i++) {
    const conns = Math.floor(cfg.conns / threads) + (i < cfg.conns % threads ? 1 : 0);
    const rate = cfg.rate > 0 ? (cfg.rate * conns) / cfg.conns : 0;
    workers.push(new Worker(new URL('./loadgen-worker.mjs', import.meta.url), { workerData: { ...cfg, conns, rate } }));
  }
  const ask = (w, msg, type) =>
    new Promise((resolve, reject) => {
      const onMsg = (m) => {
        if (m.type !== type) return;
        w.off('message', onMsg);
        resolve(m);
      };
      w.on('message', onMsg);
      w.once('error', reject);
      w.postMessage(msg);
    });
  await Promise.all(workers.map((w) => ask(w, { type: 'prepare' }, 'ready')));
  const startAt = Date.now() + 100;
  const endAt = startAt + cfg.durationS * 1000;
  setTimeout(() => out({ event: 'start' }), startAt - Date.now());
  setTimeout(() => out({ event: 'end' }), endAt - Date.now());
  const results = await Promise.all(workers.map((w) => ask(w, { type: 'start', startAt, endAt }, 'result')));
  await Promise.all(workers.map((w) => w.terminate()));
  const hist = new Histogram();
  const sum = { requests: 0, errors: 0, non2xx: 0, reused: 0, bytesIn: 0, errorKinds: {} };
  for (const r of results) {
    hist.merge(Histogram.from(r.hist));
    for (const k of ['requests', 'errors', 'non2xx', 'reused', 'bytesIn']) sum[k] += r[k];
    for (const [k, v] of Object.entries(r.errorKinds)) sum.errorKinds[k] = (sum.errorKinds[k] ?? 0) + v;
  }
  const cpu = process.cpuUsage(cpu0);
  const ms = (p) => (hist.percentile(p) === null ? null : hist.percentile(p) / 1000);
  out({
    tool: 'node',
    mode: cfg.mode,
    threads,
    ...sum,
    durationS: cfg.durationS,
    rps: sum.requests / cfg.durationS,
    p50: ms(50),
    p90: ms(90),
    p99: ms(99),
    maxMs: hist.max / 1000,
    cpuS: (cpu.user + cpu.system) / 1e6,
  });
}

async function runHold() {
  const limit = openFilesLimit();
  let want = cfg.conns;
  const warnings = [];
  if (want + 64 > limit) {
    want = Math.max(0, limit - 64);
    warnings.push(`generator open-files limit is ${limit}: holding ${want} connections instead of ${cfg.conns}`);
  }
  const secureContext = createSecureContext({ cert: cfg.cert, key: cfg.key, ca: cfg.ca });
  const req = Buffer.from(`GET ${cfg.path} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
  const sockets = [];
  let held = 0;
  let failed = 0;
  let closedWhileHeld = 0;
  let releasing = false;
  let started = 0;
  let reused = 0;
  let session;
  const errorKinds = {};
  const t0 = performance.now();
  const deadline = t0 + cfg.openDeadlineS * 1000;
  const cpu0 = process.cpuUsage();

  await new Promise((resolve) => {
    let inflight = 0;
    const settle = () => {
      inflight--;
      if (performance.now() < deadline && started < want) openOne();
      else if (inflight === 0) resolve();
    };
    const openOne = () => {
      started++;
      inflight++;
      let buf = Buffer.alloc(0);
      let isHeld = false;
      let settled = false;
      const s = connect({ host: '127.0.0.1', port: cfg.port, secureContext, servername: cfg.servername, rejectUnauthorized: false, session: cfg.resume ? session : undefined });
      if (cfg.resume) s.once('session', (sess) => (session = sess));
      s.setTimeout(15_000, () => !isHeld && s.destroy(new Error('timeout')));
      s.once('secureConnect', () => {
        if (s.isSessionReused()) reused++;
        s.write(req);
      });
      const onData = (c) => {
        buf = Buffer.concat([buf, c]);
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buf.subarray(0, end).toString('latin1');
        const len = Number(/content-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
        if (buf.length < end + 4 + len) return;
        s.off('data', onData);
        if (!/^HTTP\/1\.1 2/.test(head)) {
          s.destroy(new Error(`status ${head.slice(9, 12)}`));
          return;
        }
        isHeld = true;
        held++;
        s.setTimeout(0);
        sockets.push(s);
        settled = true;
        settle();
      };
      s.on('data', onData);
      s.on('error', (err) => {
        const k = err.code ?? err.message;
        errorKinds[k] = (errorKinds[k] ?? 0) + 1;
      });
      s.on('close', () => {
        if (isHeld) {
          if (!releasing) closedWhileHeld++;
          return;
        }
        if (!settled) {
          settled = true;
          failed++;
          settle();
        }
      });
    };
    const first = Math.min(cfg.openConcurrency ?? 100, want);
    if (first === 0) resolve();
    for (let i = 0; i < first; i++) openOne();
  });
  const openS = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  out({ event: 'held', tool: 'node', wanted: cfg.conns, held, failed, reused, openS, rate: held / openS, cpuS: (cpu.user + cpu.system) / 1e6, errorKinds, warnings });

  await new Promise((resolve) => {
    const timer = setTimeout(resolve, (cfg.holdMaxS ?? 120) * 1000);
    let line = '';
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (d) => {
      line += d;
      if (line.includes('release')) {
        clearTimeout(timer);
        resolve();
      }
    });
    process.stdin.on('end', () => {
      clearTimeout(timer);
      resolve();
    });
  });
  releasing = true;
  out({ event: 'released', closedWhileHeld });
  for (const s of sockets) s.destroy();
  process.exit(0);
}

if (cfg.mode === 'hold') await runHold();
else await runWorkers();
