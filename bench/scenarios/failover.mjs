// Scenario failover: an upstream fleet of three origins behind the gateway, one of them killed in
// the middle of a keep-alive GET load, failed requests counted one by one (issue 11).
//
// Per variant: three fresh node:https origins (lib/upstream-server.mjs, 127.0.0.1 only, GET /healthz
// enabled), a gateway at its default fleet settings with `targets:` listing them, and a closed-loop
// keep-alive client (--conns connections, GET /) that runs --warmup s (at least 5) unrecorded, then
// --failover-seconds s measured; at the middle origin 2 gets SIGTERM, on which it destroys every
// connection and stops listening. Variants: the defaults (passive outlier detection + connect-failure
// failover), then the same with an active healthCheck.
//
// The load comes from the small undici client at the end of this file (run as a child process), not
// wrk: wrk adds non-2xx answers and socket errors up at the end, and failover needs when each one
// happened. Every non-2xx answer, every connection error, and every request unfinished at the end
// counts as a failure. No nginx or direct-to-origin equivalent exists, so nothing is compared.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { createSecureContext } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { CLK_TCK, groupTicks, machineBusyTicks, processTicks } from '../lib/cpu.mjs';
import { Histogram } from '../lib/histogram.mjs';
import { freePort, trackChild } from '../lib/procs.mjs';

export const id = 'failover';
export const title = 'Failover: one origin of three killed mid-run (gateway only)';

const SELF = fileURLToPath(import.meta.url);
const ORIGINS = 3;
/** Which origin (0-based) is killed. */
const VICTIM = 1;
/** The first seconds of a fresh gateway are slower (JIT): before-kill req/s needs a longer warm-up than --warmup's default. */
const MIN_WARMUP_S = 5;
const HEALTH_CHECK = { path: '/healthz', interval: '1s', timeout: '500ms', unhealthyThreshold: 2, healthyThreshold: 2 };

const VARIANTS = [
  { key: 'defaults', name: 'gw-failover', label: 'defaults: passive outlier detection + connect-failure failover', healthCheck: null },
  { key: 'healthcheck', name: 'gw-failover-hc', label: 'defaults + active healthCheck', healthCheck: HEALTH_CHECK },
];

export async function run(ctx) {
  const seconds = ctx.opts.failoverSeconds;
  const warmupS = Math.max(ctx.opts.warmup, MIN_WARMUP_S);
  const results = [];
  const errors = [];
  for (const v of VARIANTS) {
    try {
      results.push(await runVariant(ctx, v, seconds, warmupS));
    } catch (err) {
      errors.push(`${v.key}: ${err.message}`);
      ctx.log(`failover ${v.key} failed: ${err.stack ?? err}`);
    }
  }
  ctx.extra.failover = { seconds, warmupS, conns: ctx.opts.conns, origins: ORIGINS, victim: VICTIM + 1, results };
  if (errors.length) throw new Error(errors.join('; '));
}

async function runVariant(ctx, v, seconds, warmupS) {
  const names = Array.from({ length: ORIGINS }, (_, i) => `${v.name}-origin-${i + 1}`);
  const origins = [];
  let stopping = null;
  /** performance.timeOrigin + performance.now() when the kill signal was sent. */
  let killAtEpoch = null;
  try {
    for (const n of names) origins.push(await ctx.targets.startUpstream('node', n, { healthz: true }));
    const adminPort = await freePort();
    const hc = v.healthCheck;
    const upstreamExtra = hc
      ? `    healthCheck: { path: ${hc.path}, interval: ${hc.interval}, timeout: ${hc.timeout}, unhealthyThreshold: ${hc.unhealthyThreshold}, healthyThreshold: ${hc.healthyThreshold} }\n`
      : '';
    const gw = await ctx.targets.startGateway(v.name, { upstreamPorts: origins.map((o) => o.port), upstreamExtra, adminPort });
    const victim = origins[VICTIM];
    ctx.log(`failover ${v.key}: ${ctx.opts.conns} connections, ${warmupS} s warm-up + ${seconds} s; ${victim.name} (port ${victim.port}) is killed at ${seconds / 2} s`);
    // CPU over the measured window: the gateway, the origins (the victim until its kill), the client,
    // and the rest of the machine (other work on the box makes req/s noisy), in total and per second.
    const pgids = [gw.pgid, ...origins.map((o) => o.pgid)];
    const snap = (pid) => ({ t: performance.now(), busy: machineBusyTicks(), groups: groupTicks(pgids), client: processTicks(pid) ?? 0 });
    const samples = [];
    let sampler = null;
    const client = await driveLoad(ctx, gw.port, seconds, warmupS, {
      start: (pid) => {
        samples.push(snap(pid));
        sampler = setInterval(() => samples.push(snap(pid)), 1000);
      },
      kill: (pid) => {
        samples.push({ ...snap(pid), kill: true });
        const at = performance.timeOrigin + performance.now();
        stopping = ctx.targets.stop(victim.name);
        killAtEpoch = at;
        return at;
      },
      end: (pid) => {
        clearInterval(sampler);
        samples.push(snap(pid));
      },
    });
    clearInterval(sampler);
    if (stopping === null) throw new Error('the client never asked for the kill');
    const cpu = cpuFromSamples(samples, gw.pgid);
    await stopping;
    const status = await adminGet(adminPort, '/status').then((s) => JSON.parse(s), (err) => ({ error: err.message }));
    const metrics = await adminGet(adminPort, '/metrics').then(parseMetrics, () => ({}));
    // The gateway buffers its log; it is flushed when the gateway exits.
    await ctx.targets.stop(v.name);
    const gatewayLog = summarizeGatewayLog(readFileSync(gw.logFile, 'utf8'), killAtEpoch);
    for (const o of origins) if (o !== victim) await ctx.targets.stop(o.name);
    const served = origins.map((o) => ({ name: o.name, port: o.port, killed: o === victim, ...originCounts(o.logFile) }));
    const r = {
      key: v.key,
      label: v.label,
      healthCheck: hc,
      gatewayConfig: gw.config,
      ...client,
      cpu,
      gateway: { log: gatewayLog, metrics, targets: status?.upstreams?.find?.((u) => u.name === 'bench')?.targets ?? status?.upstreams ?? status },
      served,
    };
    ctx.log(
      `failover ${v.key}: ${r.requests} requests, ${r.failed} failed (${fmtPct(r.failed, r.requests)}), ${r.rpsBefore.toFixed(0)} req/s before the kill, ${r.rpsAfter.toFixed(0)} after; ` +
        `failures ${r.failed > 0 ? `from +${fmtMs(r.firstFailureMs)} to +${fmtMs(r.lastFailureMs)} ms after the kill` : 'none'}; kinds ${JSON.stringify(r.failureKinds)}`,
    );
    return r;
  } finally {
    await ctx.targets.stop(v.name);
    for (const n of names) await ctx.targets.stop(n);
  }
}

/**
 * Runs the client child (this file with --client; the storm scenario uses it too);
 * hooks.start/kill/end(pid) are called as it reaches those points of the measured window.
 * hooks.kill returns when the signal was sent (epoch ms), which is passed back.
 */
export function driveLoad(ctx, port, seconds, warmupS, hooks) {
  const cfg = { port, conns: ctx.opts.conns, warmupS, seconds, cert: ctx.pki.clientCert, key: ctx.pki.clientKey, ca: ctx.pki.caBundle };
  return new Promise((resolve, reject) => {
    const child = trackChild(spawn(process.execPath, [SELF, '--client', JSON.stringify(cfg)], { stdio: ['pipe', 'pipe', 'pipe'] }));
    let pending = '';
    let stderr = '';
    let result = null;
    const timer = setTimeout(() => child.kill('SIGKILL'), (cfg.warmupS + seconds + 90) * 1000);
    child.stdin.on('error', () => undefined);
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d) => {
      pending += d;
      let i;
      while ((i = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, i);
        pending = pending.slice(i + 1);
        let m;
        try {
          m = JSON.parse(line);
        } catch {
          stderr += line + '\n';
          continue;
        }
        if (m.event === 'result') result = m;
        else if (m.event === 'kill') child.stdin.write(`killed ${hooks.kill(child.pid)}\n`);
        else hooks[m.event]?.(child.pid);
      }
    });
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => {
      clearTimeout(timer);
      if (result) resolve(result);
      else reject(new Error(`the load client (failover.mjs --client) exited (${code}) without a result: ${stderr.slice(0, 500)}`));
    });
  });
}

/**
 * Cores used per party over the window and per interval between samples. A group that is gone
 * reads 0 ticks, so the victim counts up to the sample taken just before its kill.
 */
function cpuFromSamples(samples, gatewayPgid) {
  if (samples.length < 2) return null;
  const cores = (a, b) => {
    const dt = (b.t - a.t) / 1000;
    const groupS = (pg) => Math.max(0, (b.groups.get(pg) ?? 0) - (a.groups.get(pg) ?? 0)) / CLK_TCK;
    let gateway = 0;
    let origins = 0;
    for (const pg of a.groups.keys()) {
      if (pg === gatewayPgid) gateway += groupS(pg);
      else origins += groupS(pg);
    }
    const client = Math.max(0, b.client - a.client) / CLK_TCK;
    const busy = (b.busy - a.busy) / CLK_TCK;
    return { dt, gateway: gateway / dt, origins: origins / dt, client: client / dt, other: Math.max(0, busy - gateway - origins - client) / dt };
  };
  const perInterval = [];
  for (let i = 1; i < samples.length; i++) {
    const x = cores(samples[i - 1], samples[i]);
    const prev = perInterval.at(-1);
    // The sample taken at the kill (for the victim's ticks) splits an interval: merge the halves
    // back, so that the series stays one value per second (10 ms ticks over a sliver are noise).
    if (samples[i - 1].kill && prev) {
      const dt = prev.dt + x.dt;
      for (const k of ['gateway', 'origins', 'client', 'other']) prev[k] = (prev[k] * prev.dt + x[k] * x.dt) / dt;
      prev.dt = dt;
    } else perInterval.push(x);
  }
  // Whole window: weighted by interval, so the client's ticks are counted from first to last sample.
  const first = samples[0];
  const lastS = samples.at(-1);
  const wall = (lastS.t - first.t) / 1000;
  const sum = (k) => perInterval.reduce((a, x) => a + x[k] * x.dt, 0) / wall;
  const killSample = samples.findIndex((x) => x.kill);
  const clientS = Math.max(0, lastS.client - first.client) / CLK_TCK;
  const gatewayCores = sum('gateway');
  const originsCores = sum('origins');
  const busyS = (lastS.busy - first.busy) / CLK_TCK;
  return {
    wallS: wall,
    gatewayCores,
    originsCores,
    clientCores: clientS / wall,
    otherCores: Math.max(0, busyS / wall - gatewayCores - originsCores - clientS / wall),
    // Per second: the rest of the machine, and the gateway. killInterval: the one holding the kill,
    // where "other" also holds the killed origin's own shutdown (its group is gone when read).
    killInterval: killSample > 0 ? killSample - 1 : null,
    otherPerInterval: perInterval.map((x) => Number(x.other.toFixed(2))),
    gatewayPerInterval: perInterval.map((x) => Number(x.gateway.toFixed(2))),
  };
}

function adminGet(port, path) {
  return new Promise((resolve, reject) => {
    const req = httpGet({ host: '127.0.0.1', port, path, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`${path}: HTTP ${res.statusCode}`))));
    });
    req.on('timeout', () => req.destroy(new Error(`${path}: timeout`)));
    req.on('error', reject);
  });
}

/** The fleet counters of the Prometheus text, as { "name{labels}": value }. */
function parseMetrics(text) {
  const out = {};
  for (const line of text.split('\n')) {
    if (!/^mtls_gateway_upstream_(retries|retries_refused|rejections|ejections|health_checks)_total\{/.test(line)) continue;
    const sp = line.lastIndexOf(' ');
    out[line.slice('mtls_gateway_upstream_'.length, sp)] = Number(line.slice(sp + 1));
  }
  return out;
}

/** The gateway's warn records: failed requests by code, ejections and health changes, timed from the kill. */
function summarizeGatewayLog(text, killAtEpoch) {
  const failed = {};
  const events = [];
  /** When each failed request was logged, from the kill. */
  let failedAt = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    let rec;
    try {
      rec = JSON.parse(line);
    } catch {
      continue;
    }
    const t = typeof rec.time === 'number' ? rec.time : Date.parse(rec.time);
    const rel = killAtEpoch !== null && Number.isFinite(t) ? t - killAtEpoch : null;
    if (rec.msg === 'upstream failed') {
      const k = `${rec.code}${rec.upstreamError ? ` (${rec.upstreamError})` : ''}`;
      failed[k] = (failed[k] ?? 0) + 1;
      if (rel !== null) failedAt.push(rel);
    } else if (rec.event?.startsWith?.('upstream-target-')) {
      events.push({ event: rec.event, target: rec.target, afterKillMs: rel, ...(rec.forMs !== undefined ? { forMs: rec.forMs } : {}), ...(rec.detail ? { detail: rec.detail } : {}) });
    }
  }
  failedAt = failedAt.sort((a, b) => a - b);
  return { failed, failedFirstMs: failedAt[0] ?? null, failedLastMs: failedAt.at(-1) ?? null, events };
}

/** What an origin's exit line says (lib/upstream-server.mjs writes it on SIGTERM). */
function originCounts(logFile) {
  try {
    const line = readFileSync(logFile, 'utf8').split('\n').findLast((l) => l.includes('"event":"exit"'));
    const j = JSON.parse(line);
    return { served: j.served, healthChecks: j.healthChecks };
  } catch {
    return { served: null, healthChecks: null };
  }
}

const fmtMs = (x) => (x === null || x === undefined ? '–' : x.toFixed(x < 10 ? 1 : 0));
const fmtPct = (a, b) => (b > 0 ? `${((100 * a) / b).toFixed(a > 0 && (100 * a) / b < 0.01 ? 4 : 2)}%` : '–');

// ---------------------------------------------------------------------------------------------
// The client (child process): node failover.mjs --client '<json>'. A closed loop over --conns
// keep-alive connections (undici Pool.dispatch, one request at a time per connection, all
// connections opened before the warm-up). Every measured request's send and completion times are
// kept, so that everything is classified at the end against the moment the harness really sent the
// kill: the client prints {"event":"kill"} at the middle of the window, the harness signals the
// origin and writes back "killed <epoch ms>" on stdin (on a busy machine the pipe round trip takes
// tens of ms). Epoch times on both sides are performance.timeOrigin + performance.now().
// Server certificates are not verified, as in lib/loadgen.mjs.

/** A growable column of doubles. */
class Column {
  constructor() {
    this.a = new Float64Array(1 << 16);
    this.n = 0;
  }
  push(x) {
    if (this.n === this.a.length) {
      const b = new Float64Array(this.a.length * 2);
      b.set(this.a);
      this.a = b;
    }
    this.a[this.n++] = x;
  }
}

async function client(cfg) {
  const { Pool } = await import('undici');
  const out = (o) => new Promise((r) => process.stdout.write(JSON.stringify(o) + '\n', r));
  const epoch = (t) => performance.timeOrigin + t;
  let killedEpoch = null;
  let stdinBuf = '';
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (d) => {
    stdinBuf += d;
    const m = /killed ([\d.]+)\n/.exec(stdinBuf);
    if (m) killedEpoch = Number(m[1]);
  });
  const secureContext = createSecureContext({ cert: readFileSync(cfg.cert), key: readFileSync(cfg.key), ca: readFileSync(cfg.ca) });
  const pool = new Pool(`https://127.0.0.1:${cfg.port}`, {
    connections: cfg.conns,
    pipelining: 1,
    keepAliveTimeout: 120_000,
    headersTimeout: 30_000,
    bodyTimeout: 30_000,
    connect: { secureContext, servername: 'localhost', rejectUnauthorized: false, timeout: 30_000 },
  });
  await Promise.all(Array.from({ length: cfg.conns }, () => pool.request({ path: '/', method: 'GET' }).then((r) => r.body.dump(), () => undefined)));

  const D = cfg.seconds * 1000;
  // Successful requests: send and completion times (ms from the start of the measured window).
  const okStart = new Column();
  const okEnd = new Column();
  // Failed ones, each with its kind.
  const failures = [];
  let sent = 0;
  let inflight = 0;
  let T0 = Infinity;
  let stopAt = Infinity;
  const now = () => performance.now();

  const record = (startedAt, status, err) => {
    if (startedAt < T0) return;
    const t1 = now() - T0;
    if (!err && status >= 200 && status < 300) {
      okStart.push(startedAt - T0);
      okEnd.push(t1);
      return;
    }
    const kind = err ? `${err.code ?? err.name ?? 'error'}${status ? ` after status ${status}` : ''}` : `HTTP ${status}`;
    failures.push({ sentMs: startedAt - T0, atMs: t1, kind });
  };

  const fire = () => {
    const t = now();
    if (t >= stopAt) return;
    if (t >= T0) sent++;
    inflight++;
    let status = 0;
    pool.dispatch(
      { path: '/', method: 'GET' },
      {
        onRequestStart() {},
        onResponseStart(_c, statusCode) {
          status = statusCode;
        },
        onResponseData() {},
        onResponseEnd() {
          inflight--;
          record(t, status, null);
          fire();
        },
        onResponseError(_c, err) {
          inflight--;
          record(t, status, err);
          // A little pause, so that a dead gateway does not turn into a busy loop.
          setTimeout(fire, 10);
        },
      },
    );
  };

  T0 = now() + cfg.warmupS * 1000;
  stopAt = T0 + D;
  for (let i = 0; i < cfg.conns; i++) fire();
  await new Promise((r) => setTimeout(r, T0 - now()));
  await out({ event: 'start' });
  await new Promise((r) => setTimeout(r, T0 + D / 2 - now()));
  const askedAt = now() - T0;
  await out({ event: 'kill' });
  await new Promise((r) => setTimeout(r, stopAt - now()));
  await out({ event: 'end' });
  // Requests still running at the end may finish; the ones that do not count as failures.
  const graceUntil = now() + 10_000;
  while (inflight > 0 && now() < graceUntil) await new Promise((r) => setTimeout(r, 20));
  const unfinished = inflight;
  await pool.destroy().catch(() => undefined);

  // From here on every time is relative to the kill signal.
  const killRel = killedEpoch !== null ? killedEpoch - epoch(T0) : askedAt;
  const after = D - killRel;
  for (const f of failures) {
    f.sentMs -= killRel;
    f.atMs -= killRel;
  }
  const kinds = {};
  for (const f of failures) kinds[f.kind] = (kinds[f.kind] ?? 0) + 1;
  if (unfinished > 0) kinds.unfinished = unfinished;
  const histBefore = new Histogram();
  const histAfter = new Histogram();
  let okBefore = 0;
  let okAfter = 0;
  const seconds = Math.ceil(D / 1000);
  const okPerSecond = new Array(seconds).fill(0);
  const failedPerSecond = new Array(seconds).fill(0);
  // 100 ms slots from 1 s before to 3 s after the kill (less when the window is shorter).
  const AROUND = { fromMs: -1000, toMs: Math.max(100, Math.min(3000, Math.floor(after / 100) * 100)), slotMs: 100 };
  const okAround = new Array((AROUND.toMs - AROUND.fromMs) / AROUND.slotMs).fill(0);
  const slot = (tKillRel) => Math.floor((tKillRel - AROUND.fromMs) / AROUND.slotMs);
  for (let i = 0; i < okEnd.n; i++) {
    const end = okEnd.a[i];
    const lat = (end - okStart.a[i]) * 1000;
    if (end < killRel) {
      okBefore++;
      histBefore.record(lat);
    } else if (end <= D) {
      okAfter++;
      histAfter.record(lat);
    }
    okPerSecond[Math.min(seconds - 1, Math.floor(end / 1000))]++;
    const k = slot(end - killRel);
    if (k >= 0 && k < okAround.length) okAround[k]++;
  }
  let failedBefore = 0;
  let failedAfter = 0;
  for (const f of failures) {
    if (f.atMs < 0) failedBefore++;
    else if (f.atMs <= after) failedAfter++;
    failedPerSecond[Math.min(seconds - 1, Math.max(0, Math.floor((f.atMs + killRel) / 1000)))]++;
  }
  const afterKill = failures.filter((f) => f.atMs >= 0);
  const last = afterKill.reduce((a, f) => (a === null || f.atMs > a.atMs ? f : a), null);
  const pct = (h, p) => (h.percentile(p) === null ? null : h.percentile(p) / 1000);
  await out({
    event: 'result',
    seconds: cfg.seconds,
    conns: cfg.conns,
    killAtS: killRel / 1000,
    killTimedBy: killedEpoch !== null ? 'harness signal' : 'client request (no answer from the harness)',
    killSignalLagMs: killRel - askedAt,
    requests: sent,
    ok: okEnd.n,
    failed: failures.length + unfinished,
    unfinished,
    failedBeforeKill: failedBefore,
    failureKinds: kinds,
    firstFailureMs: afterKill.length ? Math.min(...afterKill.map((f) => f.atMs)) : null,
    lastFailureMs: last?.atMs ?? null,
    lastFailureSentMs: last?.sentMs ?? null,
    // Answered = ok + failed, per second of the window on each side of the kill.
    rpsBefore: (okBefore + failedBefore) / (killRel / 1000),
    rpsAfter: (okAfter + failedAfter) / (after / 1000),
    latencyBefore: { p50: pct(histBefore, 50), p99: pct(histBefore, 99), max: histBefore.max / 1000 },
    latencyAfter: { p50: pct(histAfter, 50), p99: pct(histAfter, 99), max: histAfter.max / 1000 },
    okPerSecond,
    failedPerSecond,
    okAroundKill: { ...AROUND, counts: okAround },
    failures: failures.slice(0, 200),
  });
  process.exit(0);
}

if (process.argv[1] === SELF && process.argv[2] === '--client') await client(JSON.parse(process.argv[3]));
