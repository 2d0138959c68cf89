// Turns the measurements into medians, ratios and markdown: results.json and results.md in the run's
// results directory, and the generated section of bench/README.md (between the results markers).
import { readFileSync, writeFileSync } from 'node:fs';
import { profileComparisonMarkdown, profileMarkdown } from './summarize-cpuprofile.mjs';

export const START = '<!-- results:start -->';
export const END = '<!-- results:end -->';

export function median(xs) {
  const v = xs.filter((x) => x !== null && x !== undefined && !Number.isNaN(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

const fx = (x, d = 0) => (x === null || x === undefined || Number.isNaN(x) ? '–' : Number(x).toFixed(d));
const ratio = (a, b) => (a === null || b === null || !b ? null : a / b);

/** Groups rows by (label, target) in first-seen order; medians over rounds. */
export function summarize(rows) {
  const groups = new Map();
  for (const r of rows) {
    const k = `${r.label}\u0000${r.target}`;
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k).push(r);
  }
  const out = [];
  for (const rs of groups.values()) {
    const m = (f) => median(rs.map((r) => r[f]));
    const rps = rs.map((r) => r.rps).filter((x) => !Number.isNaN(x));
    out.push({
      scenario: rs[0].scenario,
      label: rs[0].label,
      target: rs[0].target,
      tool: rs[0].tool,
      n: rs.length,
      rps: m('rps'),
      rpsMin: rps.length ? Math.min(...rps) : null,
      rpsMax: rps.length ? Math.max(...rps) : null,
      p50: m('p50'),
      p99: m('p99'),
      errors: rs.reduce((a, r) => a + (r.errors || 0), 0),
      requests: rs.reduce((a, r) => a + (r.requests || 0), 0),
      reused: rs.some((r) => r.reused !== undefined) ? rs.reduce((a, r) => a + (r.reused || 0), 0) : null,
      targetUs: m('targetUsPerReq'),
      upstreamUs: m('upstreamUsPerReq'),
      genUs: m('genUsPerReq'),
      genCores: m('genCores'),
      targetCores: m('targetCores'),
      upstreamCores: m('upstreamCores'),
      foreignCores: m('foreignCores'),
      foreignMax: Math.max(...rs.map((r) => r.foreignCores)),
    });
  }
  for (const s of out) {
    const same = (t) => out.find((o) => o.label === s.label && o.target === t);
    const direct = same('direct');
    const nginx = same('nginx');
    const floor = same('floor');
    const lean = same('lean');
    const proxy = s.target !== 'direct';
    // Every proxy against the node floor (for the gateway: how much of its cost is its own code) and
    // against the lean floor (how much of that is node:https and undici).
    s.xFloor = floor && proxy && s.target !== 'floor' ? ratio(s.rps, floor.rps) : null;
    s.usOverFloor = floor && proxy ? ratio(s.targetUs, floor.targetUs) : null;
    s.xLean = lean && proxy && s.target !== 'lean' ? ratio(s.rps, lean.rps) : null;
    s.xDirect = direct ? ratio(s.rps, direct.rps) : null;
    s.xNginx = nginx && s.target !== 'nginx' && s.target !== 'direct' ? ratio(s.rps, nginx.rps) : null;
    s.p99OverDirect = direct && s.target !== 'direct' && s.p99 !== null && direct.p99 !== null ? s.p99 - direct.p99 : null;
    s.usOverNginx = nginx && s.target !== 'nginx' && s.target !== 'direct' ? ratio(s.targetUs, nginx.targetUs) : null;
  }
  return out;
}

/** A goal row: the gateway's req/s against nginx's in measurement `label`. */
function vsNginxRow(get, label, goal, what) {
  const g = get(label, 'gateway');
  const n = get(label, 'nginx');
  if (!g || !n) return { goal: what, measured: 'not measured (needs gateway and nginx targets)', status: 'n/a' };
  const x = g.rps / n.rps;
  return { goal: what, measured: `${fx(g.rps)} / ${fx(n.rps)} req/s = ${x.toFixed(2)}× nginx`, status: x >= goal ? 'met' : 'NOT met' };
}

/** A goal row: the gateway's p99 over direct's, ≤ 2 ms, at the paced load (else at saturation). */
function p99Row(sum, get, what) {
  const paced = sum.find((s) => s.label.startsWith('keep-alive GET 100 B, latency at') && s.target === 'gateway')?.label;
  const latLabel = paced ?? 'keep-alive GET 100 B';
  const g = get(latLabel, 'gateway');
  const d = get(latLabel, 'direct');
  if (!g || !d || g.p99 === null || d.p99 === null) return { goal: what, measured: 'not measured', status: 'n/a' };
  const o = g.p99 - d.p99;
  return { goal: `${what} (${latLabel})`, measured: `${fx(g.p99, 2)} − ${fx(d.p99, 2)} = ${o.toFixed(2)} ms`, status: o <= 2 ? 'met' : 'NOT met' };
}

/** Looks up one measurement of the summary by label and target. */
function finder(sum) {
  return (label, target) => sum.find((s) => s.label === label && s.target === target);
}

function goals(sum) {
  const get = finder(sum);
  return [
    vsNginxRow(get, 'keep-alive GET 100 B', 0.7, 'keep-alive small GET ≥ 0.7× nginx (stretch: parity)'),
    p99Row(sum, get, 'p99 overhead over direct ≤ 2 ms at 50 connections'),
    vsNginxRow(get, 'full handshake per request', 0.8, 'full handshakes ≥ 0.8× nginx'),
    vsNginxRow(get, 'keep-alive POST 64 KiB', 0.7, '64 KiB POST bodies ≥ 0.7× nginx'),
    vsNginxRow(get, 'keep-alive GET 64 KiB', 0.7, '64 KiB GET responses ≥ 0.7× nginx'),
  ];
}

/**
 * Issue 14's targets (per worker, the gateway at its defaults, all from this run): against nginx,
 * against the floor the gateway runs on (lean-wasm: undici's llhttp on raw TLS sockets, the stack
 * of the default server.engine: lean; gateway-node against the node floor), the CPU it spends
 * above that floor, the paced p99 and the memory per idle connection. A row whose targets were not
 * measured says so.
 */
function goals14(sum, idleRows) {
  const get = finder(sum);
  const ka = 'keep-alive GET 100 B';
  const hs = 'full handshake per request';
  const rows = [
    vsNginxRow(get, ka, 0.8, 'keep-alive GET ≥ 0.8× nginx'),
    vsNginxRow(get, hs, 1.0, 'full handshakes ≥ 1.0× nginx'),
    vsNginxRow(get, 'keep-alive POST 64 KiB', 0.6, '64 KiB POST bodies ≥ 0.6× nginx'),
    vsNginxRow(get, 'keep-alive GET 64 KiB', 0.6, '64 KiB GET responses ≥ 0.6× nginx'),
  ];
  const na = (goal, needs) => rows.push({ goal, measured: `not measured (needs ${needs})`, status: 'n/a' });
  const pairs = [
    ['gateway', 'lean-wasm', 'the gateway (server.engine: lean) against lean-wasm, the stack it runs on'],
    ['gateway-node', 'floor', 'gateway-node (server.engine: node) against the node floor'],
  ];
  for (const [gw, fl, who] of pairs) {
    for (const label of [ka, 'keep-alive POST 64 KiB', 'keep-alive GET 64 KiB', hs]) {
      const g = get(label, gw);
      const f = get(label, fl);
      if (!g || !f) continue;
      const x = g.rps / f.rps;
      rows.push({ goal: `${label}: ${who}, ≥ 0.9× its req/s`, measured: `${fx(g.rps)} / ${fx(f.rps)} req/s = ${x.toFixed(2)}×`, status: x >= 0.9 ? 'met' : 'NOT met' });
    }
    for (const [label, limit] of [[ka, 10], [hs, 150]]) {
      const g = get(label, gw);
      const f = get(label, fl);
      if (!g || !f || g.targetUs == null || f.targetUs == null) continue;
      const d = g.targetUs - f.targetUs;
      rows.push({ goal: `${label}: ${who}, ≤ ${limit} µs CPU above it`, measured: `${fx(g.targetUs)} − ${fx(f.targetUs)} = ${d >= 0 ? '+' : ''}${fx(d)} µs`, status: d <= limit ? 'met' : 'NOT met' });
    }
  }
  if (!rows.some((r) => r.goal.includes('against lean-wasm'))) na('the gateway against the floor it runs on', 'gateway and lean-wasm');
  rows.push(p99Row(sum, get, 'p99 over direct ≤ 2 ms'));
  const idle = (idleRows ?? []).find((r) => r.target === 'gateway');
  if (idle) rows.push({ goal: 'memory per idle connection ≤ 40 KB', measured: `${fx(idle.kbPerConn, 1)} KB`, status: idle.kbPerConn <= 40 ? 'met' : 'NOT met' });
  else na('memory per idle connection ≤ 40 KB', 'the idle scenario with the gateway');
  return rows;
}

function machineSection(r) {
  const m = r.machine;
  const o = r.options;
  const lines = [
    `Run ${m.date}, ${r.elapsedS ? `${Math.round(r.elapsedS)} s` : ''}${o.quick ? ' (--quick)' : ''}.`,
    '',
    `* Machine: ${m.cpuModel}, ${m.cores} cores, ${m.memGiB} GiB, ${m.kernel}; load average at start ${m.loadavg}`,
    `* Software: Node ${m.node} (OpenSSL ${m.openssl}), ${m.gateway}; nginx ${m.nginx ?? 'not installed'}; ${m.wrk ?? 'no wrk'}; ${m.ab ?? 'no ab'}`,
  ];
  // Standalone scenarios (failover) describe their own setup in their section.
  if (r.mainTargets.length === 0) {
    lines.push(`* Standalone scenarios only (${o.scenarios.join(', ')}): their own origins and gateway (${o.workers} worker(s)), no main targets.`);
    return lines.join('\n');
  }
  lines.push(
    `* Upstream (origin): ${r.upstream}, ${o.workers} worker. Targets: ${r.mainTargets.join(', ')}; gateway and nginx with ${o.workers} worker(s).`,
    `* Generators: keep-alive ${r.generators.ka}, full handshakes ${r.generators.hs}, resumed handshakes ${r.generators['hs-resume']} (wrk 1 thread; Node generator ${r.generators.threads.node} worker thread(s) for keep-alive, ${r.generators.threads.nodeHandshakes ?? 1} for handshakes); idle connections: Node generator.`,
    `* ${o.rounds} interleaved round(s) × ${o.duration} s per target and scenario after ${o.warmup} s warm-up, ${o.conns} connections; medians over rounds. PKI: ECDSA P-256, TLS 1.3, client chain leaf → intermediate → root, CRLs of both levels.`,
  );
  return lines.join('\n');
}

function mainTable(sum) {
  const lines = [
    '| scenario | target | gen | req/s (min–max) | ×direct | ×nginx | ×floor | ×lean | p50 ms | p99 ms | p99 − direct | errors | target µs CPU/req | gen cores (µs/req) | target / upstream / foreign cores |',
    '|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|',
  ];
  for (const s of sum) {
    const range = s.n > 1 ? ` (${fx(s.rpsMin)}–${fx(s.rpsMax)})` : '';
    const reuse = s.reused !== null && s.label.startsWith('resumed') && s.requests > 0 ? ` [${fx((100 * s.reused) / s.requests)}% resumed]` : '';
    lines.push(
      `| ${s.label}${reuse} | ${s.target} | ${s.tool} | ${fx(s.rps)}${range} | ${fx(s.xDirect, 2)} | ${fx(s.xNginx, 2)} | ${fx(s.xFloor, 2)} | ${fx(s.xLean, 2)} | ${fx(s.p50, 2)} | ${fx(s.p99, 2)} | ${s.p99OverDirect === null ? '–' : `${s.p99OverDirect >= 0 ? '+' : ''}${s.p99OverDirect.toFixed(2)}`} | ${s.errors} | ${fx(s.targetUs)} | ${fx(s.genCores, 2)} (${fx(s.genUs)}) | ${fx(s.targetCores, 2)} / ${fx(s.upstreamCores, 2)} / ${fx(s.foreignCores, 2)}${s.foreignMax > 0.15 ? ` (max ${fx(s.foreignMax, 2)})` : ''} |`,
    );
  }
  return lines.join('\n');
}

/**
 * Target CPU per request over the node floor's, per measurement and proxy: the like-for-like cost
 * comparison (issue 14). Empty without a floor row.
 */
function floorCpuSection(sum) {
  const labels = [...new Set(sum.filter((s) => s.target === 'floor' && s.targetUs).map((s) => s.label))];
  if (labels.length === 0) return '';
  const targets = [...new Set(sum.filter((s) => labels.includes(s.label) && s.target !== 'direct').map((s) => s.target))];
  const cell = (label, t) => {
    const s = sum.find((x) => x.label === label && x.target === t);
    return s ? `${fx(s.usOverFloor, 2)} (${fx(s.targetUs)})` : '–';
  };
  return [
    `| measurement | ${targets.join(' | ')} |`,
    `|---|${targets.map(() => '---:').join('|')}|`,
    ...labels.map((l) => `| ${l} | ${targets.map((t) => cell(l, t)).join(' | ')} |`),
    '',
    "Each cell: the target's CPU per request ÷ the node floor's in the same measurement (µs CPU per request in brackets); below 1 is cheaper than the floor.",
  ].join('\n');
}

function generatorSection(r, sum) {
  const main = sum.filter((s) => !s.label.startsWith('CRL') && !s.label.includes('profiled'));
  if (main.length === 0) return '';
  const byTool = new Map();
  for (const s of main) {
    const k = `${s.tool}|${s.label.includes('handshake') ? 'handshakes' : 'keep-alive'}`;
    const e = byTool.get(k) ?? { tool: s.tool, kind: k.split('|')[1], cores: [], us: [] };
    e.cores.push(s.genCores);
    e.us.push(s.genUs);
    byTool.set(k, e);
  }
  const lines = ['| generator | load | cores used (min–max over rows) | share of the machine | µs CPU per request (min–max) |', '|---|---|---:|---:|---:|'];
  for (const e of byTool.values()) {
    const c = e.cores.filter((x) => x !== null);
    const u = e.us.filter((x) => x !== null && !Number.isNaN(x));
    lines.push(`| ${e.tool} | ${e.kind} | ${fx(Math.min(...c), 2)}–${fx(Math.max(...c), 2)} | ${fx((100 * Math.max(...c)) / r.machine.cores)}% max | ${fx(Math.min(...u))}–${fx(Math.max(...u))} |`);
  }
  const threads = (s) => (s.tool !== 'node' ? 1 : s.label.includes('handshake') ? r.generators.threads.nodeHandshakes ?? 1 : r.generators.threads.node);
  const bound = main.filter((s) => s.genCores > 0.9 * threads(s));
  const maxCores = Math.max(...main.map((s) => s.genCores ?? 0));
  lines.push(
    '',
    `wrk and ab are single-threaded; the Node generator ran ${r.generators.threads.node} worker thread(s) for keep-alive load and ${r.generators.threads.nodeHandshakes ?? 1} for handshakes. A row whose generator used more than 0.9 cores per thread may be generator-bound. ` +
      (bound.length ? `Rows at that limit (their req/s is a lower bound of the target's capacity): ${bound.map((s) => `${s.label} / ${s.target} (${fx(s.genCores, 2)} cores)`).join('; ')}.` : `No row came near that (max ${fx(maxCores, 2)} cores).`) +
      ` On a ${r.machine.cores}-core machine the generator, the target and the upstream share the cores: the generator's share is CPU the target cannot use, so ×direct reads as "fraction of what this box can do" and µs CPU/req is the efficiency figure.`,
  );
  return lines.join('\n');
}

function loggingSection(l) {
  if (!l) return '';
  const warn = [l.warn].flat();
  const info = [l.info].flat();
  const m = (rows, f) => median(rows.map((r) => r[f]));
  const d = m(info, 'targetUsPerReq') - m(warn, 'targetUsPerReq');
  return [
    '| gateway log level | req/s | p99 ms | target µs CPU/req | foreign cores | log bytes/req |',
    '|---|---:|---:|---:|---:|---:|',
    `| warn (no access log) | ${fx(m(warn, 'rps'))} | ${fx(m(warn, 'p99'), 2)} | ${fx(m(warn, 'targetUsPerReq'))} | ${fx(m(warn, 'foreignCores'), 2)} | 0 |`,
    `| info, the default (access log to a file) | ${fx(m(info, 'rps'))} | ${fx(m(info, 'p99'), 2)} | ${fx(m(info, 'targetUsPerReq'))} | ${fx(m(info, 'foreignCores'), 2)} | ${fx(l.logBytesPerReq)} |`,
    '',
    `Logging cost: ${fx(d)} µs CPU per request (${fx((100 * d) / m(warn, 'targetUsPerReq'))}%), throughput ${fx(100 * (m(info, 'rps') / m(warn, 'rps') - 1))}% ` +
      `(${info.length} pair(s) of runs back to back, warn then info; medians).`,
  ].join('\n');
}

function idleSection(rows) {
  if (!rows || rows.length === 0) return '';
  const mb = (kb) => fx(kb / 1024, 1);
  const lines = [
    '| target | connections held | failed | resumed | opened/s | target µs CPU per opened conn | RSS before MB | RSS held MB | **KB per connection** | RSS after release MB | closed by target while held |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    lines.push(`| ${r.target} | ${r.held} / ${r.wanted} | ${r.failed} | ${r.reused ?? 0} | ${fx(r.openRate)} | ${fx(r.targetCpuPerConnUs)} | ${mb(r.rssBeforeKb)} | ${mb(r.rssHeldKb)} | **${fx(r.kbPerConn, 1)}** | ${mb(r.rssAfterKb)} | ${r.closedWhileHeld} |`);
  }
  const warns = rows.flatMap((r) => r.warnings ?? []);
  if (warns.length) lines.push('', ...warns.map((w) => `* WARNING: ${w}`));
  const how = rows[0]?.resume ? 'a TLS handshake resuming the session of an earlier connection (--idle-resume)' : 'a full TLS handshake';
  lines.push(
    '',
    `Each target is a fresh instance (warmed up with 100 connections), so memory it freed earlier cannot hide the cost. Each connection did ${how} and one GET, then stayed idle. ` +
      "RSS is summed over the target's process group (nginx: master + worker; direct: the upstream). Opening is capped in time: fewer held than wanted means the cap was reached.",
  );
  return lines.join('\n');
}

function crlSection(info, sum) {
  if (!info || info.length === 0) return '';
  const get = finder(sum);
  const base = info.find((i) => i.entries === 0)?.target;
  const lines = [
    '| client CRL | startup ms | RSS after start MB | full handshakes/s | ×no CRL | µs CPU per handshake | hs p99 ms | keep-alive req/s | ×no CRL | ka p99 ms | revoked client refused |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|',
  ];
  for (const i of info) {
    const hs = get('CRL: full handshake per request', i.target);
    const ka = get('CRL: keep-alive GET 100 B', i.target);
    const hb = get('CRL: full handshake per request', base);
    const kb = get('CRL: keep-alive GET 100 B', base);
    const name = i.entries === 0 ? 'none' : `${i.entries.toLocaleString('en')} entries`;
    lines.push(
      `| ${name} | ${fx(i.startupMs)} | ${fx(i.rssKb / 1024, 1)} | ${fx(hs?.rps)} | ${fx(ratio(hs?.rps ?? null, hb?.rps ?? null), 2)} | ${fx(hs?.targetUs)} | ${fx(hs?.p99, 1)} | ${fx(ka?.rps)} | ${fx(ratio(ka?.rps ?? null, kb?.rps ?? null), 2)} | ${fx(ka?.p99, 2)} | ${i.revokedRefused === null ? '–' : i.revokedRefused ? 'yes' : 'NO'} |`,
    );
  }
  lines.push(
    '',
    'Startup = process start until the first request with a client certificate answered 200. "none" means no `tls.crl` at all (no revocation check). ' +
      'Full handshakes: the same generator as the handshake scenario. Keep-alive: the Node generator with all connections opened before the clock starts, so the opening burst of handshakes (slow with a big CRL) is left out; its req/s is therefore not comparable with the wrk rows above.',
  );
  return lines.join('\n');
}

function failoverSection(f) {
  if (!f || !f.results || f.results.length === 0) return '';
  const ms = (x) => (x === null || x === undefined ? '–' : `${x < 0 ? '−' : '+'}${fx(Math.abs(x), Math.abs(x) < 10 ? 1 : 0)} ms`);
  const pct = (a, b) => (b > 0 ? `${((100 * a) / b).toFixed(a > 0 && (100 * a) / b < 0.01 ? 4 : 2)}%` : '–');
  const lines = [
    `This scenario has no nginx or direct-to-origin equivalent: it measures the gateway alone and compares it with nothing. ` +
      `Per variant: ${f.origins} fresh origins (\`lib/upstream-server.mjs\`, 127.0.0.1) as the \`targets\` of one upstream, every fleet setting at its default ` +
      `(round-robin; outlier detection: 5 consecutive failures, 30 s base ejection, at most 50% ejected; retries: attempts 1 on connect-failure, reset and refused-stream, within a 20% budget), ` +
      `a Node keep-alive client (undici, ${f.conns} connections, closed loop, GET / 100 B), ${f.warmupS} s warm-up, then ${f.seconds} s measured. ` +
      `At ${f.seconds / 2} s origin ${f.victim} gets SIGTERM: it destroys its connections and stops listening. ` +
      'A failure is a non-2xx answer, a connection error, or a request unfinished at the end; times are from the kill signal to the failure reaching the client.',
    '',
    '| variant | requests | failed | share failed | req/s before kill | req/s after kill | first failure after kill | last failure after kill | failed before kill | p99 ms before / after | max ms after |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of f.results) {
    lines.push(
      `| ${r.label} | ${r.requests} | ${r.failed} | ${pct(r.failed, r.requests)} | ${fx(r.rpsBefore)} | ${fx(r.rpsAfter)} | ${ms(r.firstFailureMs)} | ${ms(r.lastFailureMs)} | ${r.failedBeforeKill} | ${fx(r.latencyBefore.p99, 2)} / ${fx(r.latencyAfter.p99, 2)} | ${fx(r.latencyAfter.max, 1)} |`,
    );
  }
  for (const r of f.results) {
    const g = r.gateway ?? {};
    const ev = (g.log?.events ?? []).map((e) => `${e.event.replace('upstream-target-', '')} ${e.target} at ${ms(e.afterKillMs)}${e.forMs ? ` for ${fx(e.forMs / 1000)} s` : ''}${e.detail ? ` (${e.detail})` : ''}`);
    const m = Object.entries(g.metrics ?? {}).map(([k, v]) => `${k} ${v}`);
    const failedSecs = r.failedPerSecond.map((n, i) => (n > 0 ? `${i}–${i + 1} s: ${n}` : null)).filter(Boolean);
    const hc = r.healthCheck ? ` (healthCheck: ${Object.entries(r.healthCheck).map(([k, v]) => `${k} ${v}`).join(', ')})` : '';
    lines.push(
      '',
      `**${r.label}**${hc}`,
      '',
      `* Failures seen by the client: ${r.failed === 0 ? 'none' : Object.entries(r.failureKinds).map(([k, v]) => `${k} × ${v}`).join(', ')}${r.lastFailureSentMs !== null ? `; the last one was sent at ${r.lastFailureSentMs >= 0 ? '+' : ''}${fx(r.lastFailureSentMs, 1)} ms` : ''}.`,
      `* Gateway log: failed requests ${Object.keys(g.log?.failed ?? {}).length ? Object.entries(g.log.failed).map(([k, v]) => `${k} × ${v}`).join(', ') + ` (from ${ms(g.log.failedFirstMs)} to ${ms(g.log.failedLastMs)})` : 'none'}; fleet events: ${ev.length ? ev.join('; ') : 'none'}.`,
      `* Gateway counters at the end: ${m.length ? m.join(', ') : 'none'}.`,
      `* Target state at the end (/status): ${Array.isArray(g.targets) ? g.targets.map((t) => `${t.origin} ${t.healthy ? 'healthy' : 'UNHEALTHY'}${t.ejected ? ', ejected' : ''}${t.timesEjected ? ` (ejected ${t.timesEjected}×)` : ''}`).join('; ') : JSON.stringify(g.targets ?? null).slice(0, 200)}.`,
      `* Requests served per origin (whole run, warm-up and probes included): ${r.served.map((o) => `${o.name.replace(/^.*-origin-/, 'origin ')}${o.killed ? ' (killed)' : ''} ${o.served ?? '?'}${o.healthChecks ? ` incl. ${o.healthChecks} health checks` : ''}`).join(', ')}.`,
      r.cpu
        ? `* CPU over the measured window, in cores: gateway ${fx(r.cpu.gatewayCores, 2)}, origins ${fx(r.cpu.originsCores, 2)}, client ${fx(r.cpu.clientCores, 2)}, rest of the machine ${fx(r.cpu.otherCores, 2)}${r.cpu.otherCores > 0.15 ? ' (other work on the box: req/s is noisy)' : ''}.`
        : '* CPU: not measured.',
      `* Answered per second: ${r.okPerSecond.map((n, i) => n + r.failedPerSecond[i]).join(' ')}; failed per second: ${failedSecs.length ? failedSecs.join(', ') : 'none'}.`,
    );
    if (r.okAroundKill) {
      const a = r.okAroundKill;
      const before = -a.fromMs / a.slotMs;
      lines.push(`* Successful answers per ${a.slotMs} ms, from ${a.fromMs / 1000} s to +${a.toMs / 1000} s around the kill (at "|"): ${a.counts.slice(0, before).join(' ')} | ${a.counts.slice(before).join(' ')}.`);
    }
    if (r.cpu?.otherPerInterval) {
      const mark = (xs) => xs.map((x, i) => (i === r.cpu.killInterval ? `[${x}]` : x)).join(' ');
      lines.push(
        `* Per second, in cores (the second of the kill in brackets; there "rest" also holds the killed origin's own shutdown): rest of the machine ${mark(r.cpu.otherPerInterval)}; the gateway ${mark(r.cpu.gatewayPerInterval)}.`,
      );
    }
    if (r.killTimedBy) lines.push(`* Times are from the moment the harness sent SIGTERM (${r.killTimedBy}; it came ${fx(r.killSignalLagMs, 1)} ms after the client asked for it).`);
  }
  return lines.join('\n');
}

/** The HTTP/2 scenarios' setup, and the gRPC origin's own count of successful calls. */
function http2Section(h) {
  if (!h) return '';
  const lines = [];
  if (h.h2) {
    lines.push(
      `* h2: ${h.h2.conns} connections × ${h.h2.streams} concurrent streams, GET / (100 B), generator ${h.h2.tool}. The gateway and nginx take h2 from the client and forward over HTTP/1.1 mTLS to the usual origin; direct is h2 to that origin. Every non-2xx answer counts as an error.`,
    );
  }
  if (h.grpc) {
    const g = h.grpc;
    lines.push(
      `* grpc: ${g.conns} connections × ${g.streams} concurrent unary calls (64-byte message), generator ${g.tool}; origin \`lib/grpc-origin.mjs\` (node:http2, mTLS); the gateway's upstream has \`protocol: http2\`, nginx uses \`grpc_pass grpcs://\`. ` +
        `A call counts only with grpc-status 0 and its message echoed whole. The origin answered ${g.originOk ?? '?'} calls with grpc-status 0 (of ${g.originServed ?? '?'}, warm-ups and checks included); the clients counted ${g.clientOkMeasured} in the measured windows.`,
    );
  }
  return lines.join('\n');
}

function checksSection(checks) {
  if (!checks || checks.length === 0) return '';
  return checks
    .map((c) => `* ${c.name}: ${c.ok ? (c.scope === 'basic' ? 'basic checks passed (a plain mTLS proxy: no identity, policy or revocation checks)' : 'all functional checks passed') : 'FAILED: ' + c.results.filter((x) => !x.ok).map((x) => `${x.what} (${x.detail})`).join('; ')}`)
    .join('\n');
}

export function renderMarkdown(r) {
  const sum = summarize(r.rows);
  r.summary = sum;
  const parts = [];
  parts.push(machineSection(r));
  const ck = checksSection(r.checks);
  if (ck) parts.push('**Functional checks before measuring**\n\n' + ck);
  if (sum.length > 0) {
    const g = goals(sum);
    parts.push('### Targets from issue 5\n\n| goal | measured | status |\n|---|---|---|\n' + g.map((x) => `| ${x.goal} | ${x.measured} | ${x.status} |`).join('\n'));
    const g14 = goals14(sum, r.extra.idle);
    parts.push('### Targets from issue 14\n\n| goal | measured | status |\n|---|---|---|\n' + g14.map((x) => `| ${x.goal} | ${x.measured} | ${x.status} |`).join('\n'));
  }
  const main = sum.filter((s) => !s.label.startsWith('CRL'));
  if (main.length) parts.push('### Throughput, latency, CPU\n\n' + mainTable(main));
  const vsFloor = floorCpuSection(main);
  if (vsFloor) parts.push('### CPU per request against the node floor\n\n' + vsFloor);
  const gen = generatorSection(r, sum);
  if (gen) parts.push('### Load generator CPU share\n\n' + gen);
  const lg = loggingSection(r.extra.logging);
  if (lg) parts.push('### Logging cost (gateway)\n\n' + lg);
  const idle = idleSection(r.extra.idle);
  if (idle) parts.push('### Idle keep-alive connections\n\n' + idle);
  const crl = crlSection(r.extra.crl, sum);
  if (crl) parts.push('### Client CRL size (gateway)\n\n' + crl);
  const h2 = http2Section(r.extra.http2);
  if (h2) parts.push('### HTTP/2 and gRPC\n\n' + h2);
  const fo = failoverSection(r.extra.failover);
  if (fo) parts.push('### Failover: one origin of three killed mid-run (gateway only)\n\n' + fo);
  if (r.extra.profile) {
    const p = r.extra.profile;
    parts.push(`### Gateway CPU profile, ${p.kind === 'hs' ? 'full handshake per request' : p.kind === 'post' ? 'keep-alive POST 64 KiB' : 'keep-alive GET'} (${fx(p.rps)} req/s, ${fx(p.usPerReq)} µs CPU/req while profiled)\n\n` + profileMarkdown(p.summary));
    // [heading, a, b]: each pair profiled, compared by area in µs per request.
    const g = { name: 'gateway', ...p };
    const f = r.extra.profileFloor && { name: 'floor', ...r.extra.profileFloor };
    const w = r.extra.profileLeanWork && { name: 'lean-work', ...r.extra.profileLeanWork };
    const l = r.extra.profileLeanWasm && { name: 'lean-wasm', ...r.extra.profileLeanWasm };
    const pairs = [
      ['Gateway against the node floor, by area', g, f],
      ['Gateway against lean-work, by area', g, w],
      ['Gateway against lean-wasm, by area', g, l],
      ['lean-work against lean-wasm, by area: what the work at the defaults costs', w, l],
    ];
    for (const [heading, a, b] of pairs) {
      if (!a || !b || !(a.requests > 0) || !(b.requests > 0)) continue;
      parts.push(
        `### ${heading} (profiled: ${a.name} ${fx(a.rps)} req/s, ${b.name} ${fx(b.rps)} req/s)\n\n` +
          'Self time of the profiled seconds divided by the requests served in them, the same load on each; the profiler itself inflates both. ' +
          "V8's profiler files native work done while the event loop polls (TLS reads, a handshake's OpenSSL work) as idle, so this compares the JavaScript and what it calls, not the processes: `gateway-variants.mjs --perf` samples all of it.\n\n" +
          profileComparisonMarkdown(a, b),
      );
    }
  }
  const foreign = Math.max(0, ...r.rows.map((x) => x.foreignCores));
  const notes = [...r.notes];
  if (foreign > 0.15) notes.push(`Foreign CPU (work on the machine that is not the generator, target, upstream or harness) reached ${foreign.toFixed(2)} cores in some measurements: those numbers are noisy; rerun rows with high foreign values.`);
  if (notes.length) parts.push('### Notes\n\n' + notes.map((n) => `* ${n}`).join('\n'));
  return parts.join('\n\n') + '\n';
}

export function writeResults(r, outDir) {
  const md = renderMarkdown(r);
  writeFileSync(`${outDir}/results.md`, `# mtls-gateway benchmark results\n\n${md}`);
  writeFileSync(`${outDir}/results.json`, JSON.stringify({ ...r, extra: { ...r.extra, profile: r.extra.profile ? { ...r.extra.profile } : undefined } }, null, 2));
  return md;
}

export function updateReadme(readmePath, md) {
  const text = readFileSync(readmePath, 'utf8');
  const a = text.indexOf(START);
  const b = text.indexOf(END);
  if (a < 0 || b < a) throw new Error(`${readmePath} has no ${START} ... ${END} section`);
  const body = `${START}\n<!-- generated by bench/run.mjs; do not edit by hand -->\n\n${md}\n`;
  writeFileSync(readmePath, text.slice(0, a) + body + text.slice(b));
}
