// Scenario storm: a reconnect storm on the upstream leg. Under a keep-alive GET load through the
// gateway, its one origin loses every connection at once, and the gateway reconnects them all
// together (issue 14), with upstreams.bench.tls.sessionResumption true (the default) and false
// (every upstream connection a full handshake). Two storms:
// - drop: the origin closes every connection (SIGUSR2) and keeps listening: the reconnect alone;
// - restart: the origin is stopped (SIGTERM, which destroys every connection) and started again on
//   the same port with the same TLS session ticket keys (BENCH_UPSTREAM_TICKET_KEYS), as replicas
//   sharing keys would, so it can resume the sessions its predecessor issued.
//
// Per run: a fresh node:https origin (lib/upstream-server.mjs, 127.0.0.1 only), a gateway with that
// one target (outlier detection off, so a single target is never ejected and the recovery is the
// reconnect's alone), and the failover scenario's closed-loop keep-alive client (--conns
// connections, --warmup s at least 5 unrecorded, then STORM_SECONDS measured; its "kill" at the
// middle is the storm). Reported: failed requests (every non-2xx, connection error or unfinished
// request), time to recover (the end of the first 100 ms slot after the storm whose answered
// requests reach 90% of the mean slot before it), the gateway's CPU in the second after the storm
// against the second before, and the origin's TLS handshakes from the gateway after the storm,
// resumed and full. Gateway only: no nginx or direct-to-origin equivalent exists.
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLK_TCK, groupTicks } from '../lib/cpu.mjs';
import { UPSTREAM_SERVERNAME } from '../lib/pki.mjs';
import { freePort, spawnGroup, stopGroup, waitReady } from '../lib/procs.mjs';
import { clientProbe, gatewayConfigYaml } from '../lib/targets.mjs';
import { driveLoad } from './failover.mjs';

export const id = 'storm';
export const title = 'Reconnect storm: the origin drops every connection or restarts under keep-alive load, upstream TLS session resumption on vs off (gateway only)';

const UPSTREAM_SCRIPT = fileURLToPath(new URL('../lib/upstream-server.mjs', import.meta.url));
const STORM_SECONDS = 8;
const MIN_WARMUP_S = 5;
/** The CPU window on each side of the restart. */
const CPU_WINDOW_MS = 1000;
const VARIANTS = [];
for (const storm of ['drop', 'restart']) {
  for (const sessionResumption of [true, false]) VARIANTS.push({ key: `${storm}-${sessionResumption ? 'resumption' : 'no-resumption'}`, storm, sessionResumption });
}

export async function run(ctx) {
  const warmupS = Math.max(ctx.opts.warmup, MIN_WARMUP_S);
  const results = [];
  const errors = [];
  for (const v of VARIANTS) {
    try {
      results.push(await runVariant(ctx, v, warmupS));
    } catch (err) {
      errors.push(`${v.key}: ${err.message}`);
      ctx.log(`storm ${v.key} failed: ${err.stack ?? err}`);
    }
  }
  ctx.extra.storm = { seconds: STORM_SECONDS, warmupS, conns: ctx.opts.conns, results };
  if (errors.length) throw new Error(errors.join('; '));
}

/** The origin on `port` with the variant's fixed ticket keys. */
async function startOrigin(ctx, name, port, ticketKeysHex) {
  const p = ctx.pki;
  const logFile = join(ctx.targets.runDir, `${name}.log`);
  const proc = spawnGroup(name, process.execPath, [UPSTREAM_SCRIPT, String(port), p.upstreamCert, p.upstreamKey, p.caBundle, p.rootCrl, p.intermediateCrl], {
    logFile,
    nofile: ctx.targets.nofile,
    env: { ...process.env, BENCH_UPSTREAM_TICKET_KEYS: ticketKeysHex },
  });
  await waitReady(proc, clientProbe(p, port, { servername: UPSTREAM_SERVERNAME }));
  return proc;
}

async function startGateway(ctx, name, originPort, sessionResumption) {
  const port = await freePort();
  const dir = join(ctx.targets.runDir, name);
  mkdirSync(dir, { recursive: true });
  const config = join(dir, 'gateway.yaml');
  const yaml = gatewayConfigYaml({ port, pki: ctx.pki, upstreamPort: originPort, upstreamExtra: '    outlierDetection: { enabled: false }\n', logLevel: 'warn' });
  const withKey = yaml.replace(/^( {6}servername: .*\n)/m, `$1      sessionResumption: ${sessionResumption}\n`);
  if (withKey === yaml) throw new Error('storm: the generated gateway config has no upstream tls.servername line to put sessionResumption after');
  writeFileSync(config, withKey);
  const args = [join(ctx.checkout, 'dist/cli/main.js'), 'start', '--config', config];
  if (ctx.opts.workers > 1) args.push('--workers', String(ctx.opts.workers));
  const logFile = join(ctx.targets.runDir, `${name}.log`);
  writeFileSync(logFile, '');
  const proc = spawnGroup(name, ctx.opts.node ?? process.execPath, args, { cwd: ctx.checkout, logFile, nofile: ctx.targets.nofile });
  await waitReady(proc, clientProbe(ctx.pki, port), { timeoutMs: 120_000 });
  return Object.assign(proc, { port, config: withKey });
}

async function runVariant(ctx, v, warmupS) {
  const originName = `storm-${v.key}-origin`;
  const gwName = `gw-storm-${v.key}`;
  const originPort = await freePort();
  const ticketKeys = randomBytes(48).toString('hex');
  let origin = null;
  let restarted = null;
  let gw = null;
  try {
    origin = await startOrigin(ctx, originName, originPort, ticketKeys);
    gw = await startGateway(ctx, gwName, originPort, v.sessionResumption);
    ctx.log(`storm ${v.key}: ${ctx.opts.conns} connections, ${warmupS} s warm-up + ${STORM_SECONDS} s; the origin ${v.storm === 'drop' ? 'drops every connection' : 'is restarted'} at ${STORM_SECONDS / 2} s`);
    const samples = [];
    const sample = () => samples.push({ t: performance.timeOrigin + performance.now(), ticks: groupTicks([gw.pgid]).get(gw.pgid) ?? 0 });
    let sampler = null;
    let restartAt = null;
    let readyAt = null;
    let restarting = null;
    const first = origin;
    const client = await driveLoad(ctx, gw.port, STORM_SECONDS, warmupS, {
      start: () => {
        sample();
        sampler = setInterval(sample, 100);
      },
      kill: () => {
        sample();
        restartAt = performance.timeOrigin + performance.now();
        if (v.storm === 'drop') {
          process.kill(-first.pgid, 'SIGUSR2');
          readyAt = restartAt;
          restarting = Promise.resolve();
        } else {
          restarting = stopGroup(first).then(async () => {
            restarted = await startOrigin(ctx, `${originName}-restarted`, originPort, ticketKeys);
            readyAt = performance.timeOrigin + performance.now();
          });
        }
        return restartAt;
      },
      end: () => {
        clearInterval(sampler);
        sample();
      },
    });
    clearInterval(sampler);
    if (restarting === null) throw new Error('the client never asked for the restart');
    await restarting;
    await stopGroup(gw);
    const last = restarted ?? first;
    await stopGroup(last);
    // The handshakes after the storm: the restarted origin's, or the one origin's since its drop.
    const atExit = logLine(last.logFile, 'exit')?.handshakes ?? null;
    const handshakes = v.storm === 'drop' ? minus(atExit, logLine(first.logFile, 'drop')?.handshakes ?? null) : atExit;
    const r = {
      key: v.key,
      storm: v.storm,
      sessionResumption: v.sessionResumption,
      requests: client.requests,
      ok: client.ok,
      failed: client.failed,
      failureKinds: client.failureKinds,
      originDownMs: readyAt - restartAt,
      firstFailureMs: client.firstFailureMs,
      lastFailureMs: client.lastFailureMs,
      recoveredMs: recoveredMs(client.okAroundKill),
      rpsBefore: client.rpsBefore,
      rpsAfter: client.rpsAfter,
      latencyAfter: client.latencyAfter,
      gatewayCores: cpuAround(samples, restartAt),
      // By client certificate CN: the gateway's, and the readiness probe's (billing) after a restart.
      handshakesAfterStorm: handshakes,
      gatewayHandshakesAfterStorm: gatewayHandshakes(handshakes),
      okAroundStorm: client.okAroundKill,
      gatewayConfig: gw.config,
    };
    const gwHs = r.gatewayHandshakesAfterStorm;
    ctx.log(
      `storm ${v.key}: ${r.requests} requests, ${r.failed} failed ${JSON.stringify(r.failureKinds)}; origin down ${r.originDownMs.toFixed(0)} ms; failures until +${fmt(r.lastFailureMs)} ms; ` +
        `recovered at +${fmt(r.recoveredMs)} ms; gateway ${r.gatewayCores.before.toFixed(2)} cores in the ${CPU_WINDOW_MS} ms before, ${r.gatewayCores.after.toFixed(2)} after; ` +
        `handshakes from the gateway after the storm: ${gwHs.resumed} resumed, ${gwHs.full} full`,
    );
    return r;
  } finally {
    for (const p of [gw, origin, restarted]) if (p) await stopGroup(p);
  }
}

/** The gateway's handshakes: every CN but the readiness probe's client (billing). */
function gatewayHandshakes(h) {
  const out = { full: 0, resumed: 0 };
  for (const [cn, c] of Object.entries(h ?? {})) {
    if (cn === 'billing') continue;
    out.full += c.full;
    out.resumed += c.resumed;
  }
  return out;
}

/** The first 100 ms slot end (ms after the restart) whose answers reach 90% of the mean slot before it. */
function recoveredMs(around) {
  const { fromMs, slotMs, counts } = around;
  const pre = counts.slice(0, Math.floor(-fromMs / slotMs));
  const base = pre.reduce((a, b) => a + b, 0) / Math.max(1, pre.length);
  for (let i = pre.length; i < counts.length; i++) if (counts[i] >= 0.9 * base) return fromMs + (i + 1) * slotMs;
  return null;
}

/** Gateway cores over CPU_WINDOW_MS before and after the restart (ticks between the nearest samples). */
function cpuAround(samples, at) {
  const nearest = (t) => samples.reduce((a, s) => (Math.abs(s.t - t) < Math.abs(a.t - t) ? s : a), samples[0]);
  const cores = (a, b) => ((b.ticks - a.ticks) / CLK_TCK) / ((b.t - a.t) / 1000);
  const s0 = nearest(at - CPU_WINDOW_MS);
  const s1 = nearest(at);
  const s2 = nearest(at + CPU_WINDOW_MS);
  return { before: cores(s0, s1), after: cores(s1, s2), windowMs: CPU_WINDOW_MS };
}

/** The last record of an event the origin logged (lib/upstream-server.mjs). */
function logLine(logFile, event) {
  try {
    return JSON.parse(readFileSync(logFile, 'utf8').split('\n').findLast((l) => l.includes(`"event":"${event}"`)));
  } catch {
    return null;
  }
}

/** Handshake counts a - b, per CN. */
function minus(a, b) {
  if (a === null) return null;
  const out = {};
  for (const [cn, c] of Object.entries(a)) out[cn] = { full: c.full - (b?.[cn]?.full ?? 0), resumed: c.resumed - (b?.[cn]?.resumed ?? 0) };
  return out;
}

const fmt = (x) => (x === null || x === undefined ? '–' : x.toFixed(0));
