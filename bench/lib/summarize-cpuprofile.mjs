#!/usr/bin/env node
// Aggregates the self time of a V8 .cpuprofile (node --cpu-prof) by function + script URL, and by
// coarse area (the gateway's own code, fastify, undici, pino, node internals, GC, ...).
//   node bench/lib/summarize-cpuprofile.mjs FILE.cpuprofile [--top N] [--lines] [--last S] [--json]
// Self time of a node = the sum of the sample intervals (timeDeltas) attributed to it. Percentages
// are of the non-idle time. --lines keeps functions with the same name at different lines apart.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Shortens a script URL: node_modules/<pkg>/..., dist/..., node:internal/... */
export function shortUrl(url) {
  if (!url) return '';
  let u = url.replace(/^file:\/\//, '');
  const nm = u.lastIndexOf('/node_modules/');
  if (nm >= 0) return u.slice(nm + 14);
  const dist = u.lastIndexOf('/dist/');
  if (dist >= 0) return u.slice(dist + 1);
  return u;
}

// Native stream methods: the TLS encryption (OpenSSL runs inside them) plus the write syscall.
const SOCKET_WRITES = new Set(['writev', 'writeBuffer', 'writeLatin1String', 'writeUtf8String', 'writeAsciiString', 'writeUcs2String']);

export function areaOf(url, fn) {
  if (!url && SOCKET_WRITES.has(fn)) return 'socket writes (native: TLS encrypt + write syscall)';
  if (!url) {
    if (fn === '(garbage collector)') return 'GC';
    if (fn === '(idle)') return 'idle';
    if (fn === '(program)') return '(program): native, outside JS (TLS, syscalls, ...)';
    return fn && fn.startsWith('(') ? fn : 'native / builtins';
  }
  const s = shortUrl(url);
  if (url.startsWith('node:')) return 'node core';
  const nm = /^(@[^/]+\/[^/]+|[^/]+)\//.exec(s);
  if (url.includes('/node_modules/') && nm) {
    const pkg = nm[1];
    if (pkg === 'fastify' || pkg.startsWith('@fastify/') || ['find-my-way', 'avvio', 'light-my-request', 'fast-json-stringify', 'secure-json-parse', 'toad-cache'].includes(pkg)) return 'fastify (+ router, helmet)';
    if (pkg === 'undici') return 'undici';
    if (pkg === 'pino' || pkg === 'sonic-boom' || pkg.startsWith('pino-') || pkg === 'thread-stream') return 'pino';
    return `other: ${pkg}`;
  }
  if (s.startsWith('dist/')) return `gateway: ${s.split('/')[1]}/`;
  return 'other';
}

export function summarizeProfile(profile, { top = 15, byLine = false, lastSeconds = null } = {}) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map();
  const { samples = [], timeDeltas = [] } = profile;
  // With lastSeconds, only the samples of the profile's last seconds count (the measured load just
  // before the process was stopped), not its start-up and warm-up.
  const from = lastSeconds === null ? -Infinity : profile.endTime - lastSeconds * 1e6;
  let at = profile.startTime;
  let counted = 0;
  for (let i = 0; i < samples.length; i++) {
    at += timeDeltas[i] ?? 0;
    if (at < from) continue;
    counted++;
    // timeDeltas[i] is the time since the previous sample; attribute the next interval to sample i.
    const dt = timeDeltas[i + 1] ?? 0;
    selfUs.set(samples[i], (selfUs.get(samples[i]) ?? 0) + Math.max(0, dt));
  }
  const fns = new Map();
  const areas = new Map();
  let total = 0;
  let idle = 0;
  for (const [id, us] of selfUs) {
    const cf = byId.get(id)?.callFrame ?? {};
    const name = cf.functionName || '(anonymous)';
    total += us;
    if (name === '(idle)') {
      idle += us;
      continue;
    }
    const key = byLine ? `${name}\u0000${cf.url}\u0000${cf.lineNumber}` : `${name}\u0000${cf.url}`;
    const e = fns.get(key) ?? { fn: name, url: shortUrl(cf.url), line: cf.url ? cf.lineNumber + 1 : null, selfUs: 0, area: areaOf(cf.url, name) };
    e.selfUs += us;
    fns.set(key, e);
    const area = areaOf(cf.url, name);
    areas.set(area, (areas.get(area) ?? 0) + us);
  }
  const busy = total - idle;
  const pct = (us) => (busy > 0 ? (100 * us) / busy : 0);
  const list = [...fns.values()].sort((a, b) => b.selfUs - a.selfUs);
  return {
    totalMs: total / 1000,
    busyMs: busy / 1000,
    idleMs: idle / 1000,
    samples: counted,
    top: list.slice(0, top).map((e) => ({ ...e, selfMs: e.selfUs / 1000, pct: pct(e.selfUs) })),
    areas: [...areas.entries()].sort((a, b) => b[1] - a[1]).map(([area, us]) => ({ area, selfMs: us / 1000, pct: pct(us) })),
  };
}

/**
 * Two profiles of the same load side by side, by area, in µs of self time per request: `a` and `b`
 * are { name, summary, requests } (requests served in the profiled window).
 */
export function profileComparisonMarkdown(a, b) {
  const per = (p) => new Map(p.summary.areas.map((x) => [x.area, (x.selfMs * 1000) / p.requests]));
  const pa = per(a);
  const pb = per(b);
  const areas = [...new Set([...pa.keys(), ...pb.keys()])].sort((x, y) => (pa.get(y) ?? 0) - (pb.get(y) ?? 0) - ((pa.get(x) ?? 0) - (pb.get(x) ?? 0)));
  const f = (v) => (v === undefined ? '–' : v.toFixed(1));
  const lines = [`| area | ${a.name} µs/req | ${b.name} µs/req | difference |`, '|---|---:|---:|---:|'];
  let ta = 0;
  let tb = 0;
  for (const area of areas) {
    const x = pa.get(area) ?? 0;
    const y = pb.get(area) ?? 0;
    ta += x;
    tb += y;
    if (Math.abs(x) < 0.05 && Math.abs(y) < 0.05) continue;
    lines.push(`| ${area} | ${f(pa.get(area))} | ${f(pb.get(area))} | ${(x - y >= 0 ? '+' : '') + (x - y).toFixed(1)} |`);
  }
  lines.push(`| **busy, all areas** | **${ta.toFixed(1)}** | **${tb.toFixed(1)}** | **${(ta - tb >= 0 ? '+' : '') + (ta - tb).toFixed(1)}** |`);
  return lines.join('\n');
}

export function profileMarkdown(s) {
  const lines = [];
  lines.push(`Busy time ${(s.busyMs / 1000).toFixed(2)} s of ${(s.totalMs / 1000).toFixed(2)} s profiled (${s.samples} samples); percentages are of busy time.`, '');
  lines.push('| # | self % | self ms | function | where |', '|---:|---:|---:|---|---|');
  s.top.forEach((e, i) => lines.push(`| ${i + 1} | ${e.pct.toFixed(1)} | ${e.selfMs.toFixed(0)} | \`${e.fn}\` | ${e.url ? `${e.url}:${e.line}` : '(native)'} |`));
  lines.push('', '| area | self % | self ms |', '|---|---:|---:|');
  for (const a of s.areas.slice(0, 12)) lines.push(`| ${a.area} | ${a.pct.toFixed(1)} | ${a.selfMs.toFixed(0)} |`);
  return lines.join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const args = process.argv.slice(2);
  const valueOf = (flag) => {
    const i = args.indexOf(flag);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const file = args.find((a, i) => !a.startsWith('--') && args[i - 1] !== '--top' && args[i - 1] !== '--last');
  const top = Number(valueOf('--top') ?? 15);
  const last = valueOf('--last') === undefined ? null : Number(valueOf('--last'));
  if (!file || !(top > 0) || (last !== null && !(last > 0))) {
    process.stderr.write('usage: node bench/lib/summarize-cpuprofile.mjs FILE.cpuprofile [--top N] [--lines] [--last S] [--json]\n  --last S: only the last S seconds of the profile\n');
    process.exit(2);
  }
  const s = summarizeProfile(JSON.parse(readFileSync(file, 'utf8')), { top, byLine: args.includes('--lines'), lastSeconds: last });
  process.stdout.write(args.includes('--json') ? JSON.stringify(s, null, 2) + '\n' : profileMarkdown(s) + '\n');
}
