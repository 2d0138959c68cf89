#!/usr/bin/env node
// mtls-gateway benchmark suite (`npm run bench`, after `npm run build`). See bench/README.md.
// Starts an mTLS origin, the gateway (and nginx as the same mTLS proxy, when installed), checks that
// they do the same job, runs the scenarios in bench/scenarios/ with every target interleaved, and
// writes bench/.work/results/<timestamp>/results.{md,json} plus the results section of bench/README.md.
// All traffic stays on 127.0.0.1; every process started here runs in its own process group and is
// stopped by that group id.
import { appendFileSync, existsSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ALL_TARGETS, DEFAULT_TARGETS, NODE_REFERENCES, STANDALONE_SCENARIOS, USAGE, parseOptions } from './lib/args.mjs';
import { checkTarget } from './lib/checks.mjs';
import { Generators } from './lib/generators.mjs';
import { machineInfo, which } from './lib/machine.mjs';
import { ensurePki } from './lib/pki.mjs';
import { killAllStarted } from './lib/procs.mjs';
import { updateReadme, writeResults } from './lib/report.mjs';
import { Targets } from './lib/targets.mjs';

const BENCH = dirname(fileURLToPath(import.meta.url));
const SCENARIO_FILES = {
  ka: 'keepalive-get.mjs',
  body64k: 'body-64k.mjs',
  hs: 'handshakes.mjs',
  idle: 'idle-connections.mjs',
  crl: 'big-crl.mjs',
  ocsp: 'ocsp.mjs',
  profile: 'profile.mjs',
  failover: 'failover.mjs',
  h2: 'http2.mjs',
  grpc: 'grpc.mjs',
  storm: 'storm.mjs',
};

let opts;
try {
  opts = parseOptions(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`${err.message}\n\n${USAGE}`);
  process.exit(2);
}
if (opts.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
if (process.platform !== 'linux') {
  process.stderr.write('bench/run.mjs reads /proc for CPU and memory accounting: Linux only\n');
  process.exit(2);
}

const checkout = resolve(opts.checkout ?? join(BENCH, '..'));
if (!existsSync(join(checkout, 'dist/cli/main.js'))) {
  process.stderr.write(`${checkout}/dist/cli/main.js not found: run npm run build first\n`);
  process.exit(2);
}
const workDir = join(BENCH, '.work');
const stamp = new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19);
const outDir = resolve(opts.out ?? join(workDir, 'results', stamp));
mkdirSync(outDir, { recursive: true });
const t0 = performance.now();
const log = (msg) => {
  const line = `[${new Date().toISOString().slice(11, 19)}] ${msg}`;
  process.stderr.write(line + '\n');
  appendFileSync(join(outDir, 'run.log'), line + '\n');
};

const cleanup = () => killAllStarted();
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    log(`${sig}: stopping everything started by the benchmark`);
    cleanup();
    process.exit(130);
  });
}

const machine = machineInfo(checkout, opts.node);
const nginx = which('nginx');
// Standalone scenarios (failover) start their own origins and gateway: with only those selected,
// the main upstream and targets are not started or checked.
const standaloneOnly = opts.scenarios.every((s) => STANDALONE_SCENARIOS.includes(s));
const isNginx = (t) => t === 'nginx' || t === 'nginx-log';
let mainTargets = standaloneOnly ? [] : (opts.targets ?? DEFAULT_TARGETS.filter((t) => nginx || !isNginx(t)));
if (mainTargets.some(isNginx) && !nginx) {
  log(`WARNING: target(s) ${mainTargets.filter(isNginx).join(', ')} requested but nginx is not installed (apt-get install -y nginx): skipped`);
  mainTargets = mainTargets.filter((t) => !isNginx(t));
}
// Order: direct first, then the gateway, then the references, in every round.
mainTargets = ALL_TARGETS.filter((t) => mainTargets.includes(t));
const upstreamKind = opts.upstream === 'auto' ? (nginx ? 'nginx' : 'node') : opts.upstream;
if (upstreamKind === 'nginx' && !nginx) {
  process.stderr.write('--upstream nginx: nginx is not installed\n');
  process.exit(2);
}
const needsGateway = ['crl', 'profile'].some((s) => opts.scenarios.includes(s));

log(`mtls-gateway benchmark: ${machine.cpuModel}, ${machine.cores} cores, Node ${machine.node}; ${machine.gateway}`);
log(`scenarios ${opts.scenarios.join(',')}; targets ${mainTargets.join(',') || 'none (standalone scenarios only)'}; upstream ${upstreamKind}; ${opts.rounds} round(s) × ${opts.duration} s, ${opts.conns} connections; results in ${outDir}`);

const pki = await ensurePki(checkout, workDir, log);
const gens = new Generators({ workDir, pki, opts, log });
const targets = new Targets({ checkout, workDir, pki, opts, log });
const ctx = { opts, checkout, workDir, pki, gens, targets, log, mainTargets, rows: [], extra: {}, notes: [], checks: [] };
log(`generators: keep-alive ${gens.toolFor('ka')}, full handshakes ${gens.toolFor('hs')}, resumed handshakes ${gens.toolFor('hs-resume')}`);

let failed = false;
try {
  if (!standaloneOnly) await targets.startUpstream(upstreamKind);
  if (needsGateway && !mainTargets.includes('gateway')) await targets.startGateway('gateway');
  for (const name of mainTargets.filter((t) => t !== 'direct')) await targets.startTarget(name);
  // The Node references do not do the gateway's job (no identity, policy or revocation): basic checks only.
  for (const name of mainTargets.filter((t) => t !== 'direct')) {
    const c = await checkTarget(pki, name, targets.get(name).port, { scope: NODE_REFERENCES.includes(name) ? 'basic' : 'full' });
    ctx.checks.push(c);
    if (!c.ok) log(`WARNING: ${name} failed functional checks: ${c.results.filter((r) => !r.ok).map((r) => `${r.what}: ${r.detail}`).join('; ')}`);
    else log(`${name}: ${c.scope === 'basic' ? 'basic ' : ''}functional checks passed`);
  }
  for (const id of opts.scenarios) {
    const mod = await import(`./scenarios/${SCENARIO_FILES[id]}`);
    const s0 = performance.now();
    log(`== scenario ${id}: ${mod.title}`);
    try {
      await mod.run(ctx);
    } catch (err) {
      failed = true;
      log(`scenario ${id} failed: ${err.stack ?? err}`);
      ctx.notes.push(`scenario ${id} failed: ${err.message}`);
    }
    log(`== scenario ${id} done in ${((performance.now() - s0) / 1000).toFixed(0)} s`);
  }
} catch (err) {
  failed = true;
  log(`benchmark aborted: ${err.stack ?? err}`);
  ctx.notes.push(`benchmark aborted: ${err.message}`);
} finally {
  await targets.stopAll();
}

const report = {
  machine,
  options: opts,
  upstream: upstreamKind === 'nginx' ? `nginx ${machine.nginx}` : 'node:https (bench/lib/upstream-server.mjs)',
  mainTargets,
  generators: gens.describe(),
  elapsedS: (performance.now() - t0) / 1000,
  checks: ctx.checks,
  rows: ctx.rows,
  extra: ctx.extra,
  notes: ctx.notes,
};
const md = writeResults(report, outDir);
process.stdout.write(md);
if (opts.readme && ctx.rows.length > 0) {
  updateReadme(join(BENCH, 'README.md'), md);
  log('bench/README.md results section regenerated');
}
log(`done in ${Math.round(report.elapsedS)} s: ${outDir}/results.md`);
process.exitCode = failed ? 1 : 0;
