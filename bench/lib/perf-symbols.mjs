// Linux perf over running targets, by object and symbol: what V8's CPU profiler does not see.
//
// V8's CPU profiler (`node --cpu-prof`) filed as "(idle)" a third of a saturated gateway's main
// thread under keep-alive load and two thirds under full handshakes (bench/README.md, "What the
// CPU profiler does not see"): native work done while the event loop polls, before any JavaScript
// is called (TLS record decryption, a handshake's OpenSSL work in TLSWrap::OnStreamRead, the
// kernel's side of the reads), most likely because Node marks the isolate idle from the loop's
// prepare phase to its check phase. perf samples the whole process, every thread, kernel included. JavaScript is named when the target runs with
// `--perf-basic-prof` (gateway-variants.mjs --perf adds it).
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Every process of a process group (nginx's master and worker; a gateway's primary and workers). */
export async function pidsOfGroup(pgid) {
  const { stdout } = await run('pgrep', ['-g', String(pgid)]).catch(() => ({ stdout: '' }));
  return stdout.split('\n').filter(Boolean);
}

/** Records `pids` at `hz` for `seconds` into `file`; resolves when perf has written it. */
export function recordPerf(pids, file, seconds, hz = 999) {
  return new Promise((resolve, reject) => {
    const p = spawn('perf', ['record', '-q', '-F', String(hz), '-p', pids.join(','), '-o', file, '--', 'sleep', String(seconds)], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d) => (err += d));
    p.on('error', reject);
    p.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`perf record exited ${code}: ${err.trim()}`))));
  });
}

/** A JIT symbol from a perf map, shortened: `JS:*'fn file:///x/dist/a.js:1:2` -> `fn dist/a.js:1`. */
function shortSymbol(dso, sym) {
  if (!dso.startsWith('[JIT]')) return sym;
  const m = /^JS:[*~+^']*'?(.*?) (?:file:\/\/)?(\S*?)(?::(\d+):\d+)?$/.exec(sym);
  if (m === null) return sym;
  const where = m[2].replace(/^.*\/(dist|bench|node_modules)\//, '$1/');
  return `${m[1] || '(anonymous)'} ${where}${m[3] ? `:${m[3]}` : ''}`;
}

/** The object a sample ran in, by kind: the node binary (V8, OpenSSL, libuv), JIT code, the kernel, libc. */
function dsoKind(dso) {
  if (dso.startsWith('[JIT]')) return 'JavaScript and WebAssembly (JIT)';
  if (dso === '[kernel.kallsyms]') return 'kernel';
  if (dso === 'node') return 'node binary (V8, OpenSSL, libuv)';
  if (dso.startsWith('libc.so')) return 'libc';
  return dso.startsWith('nginx') ? 'nginx binary' : `other: ${dso}`;
}

/**
 * What a sample's symbol was doing, by name: the same areas for a Node target (V8, OpenSSL and
 * libuv linked into the node binary) and nginx (OpenSSL in libssl/libcrypto). By symbol name only,
 * no call graph: a kernel sample taken as interrupts are enabled again lands in
 * `_raw_spin_unlock_irqrestore` or `finish_task_switch`, which are counted as scheduling, so that
 * split is approximate.
 */
const NODE_AREAS = [
  ['V8: garbage collection', /Scaveng|Heap::|heap::|MarkCompact|Sweep|ConcurrentMarking|Evacuat|MemoryAllocator|MemoryChunk|PagedSpace|NewSpace|SemiSpace|Marking|GCTracer|RecordWrite|MinorMS|Worklist|Remembered|SlotSet|FreeList|ArrayBufferSweeper/],
  ['V8: builtins (inline caches, strings, calls)', /^Builtins_/],
  ['OpenSSL', /^(SSL|BIO|EVP|ERR|CRYPTO|OPENSSL|OSSL|WPACKET|PACKET|ossl|tls1|tls_|tls13|ssl3|ssl_|aes|gcm|ChaCha|sha|OBJ_|ASN1|X509|RAND|BN_|bn_|ec_|EC_|rsa|RSA|evp|int_|md_|x25519|ghash)|aesni|_gcm/],
  ['libuv', /^uv_|^uv__/],
  ['Node C++ (TLSWrap, streams, callbacks)', /node::/],
  ['V8: runtime and API', /v8::|Runtime_|^v8_|V8/],
];
const KERNEL_AREAS = [
  ['kernel: scheduling and wake-ups', /^(_raw_spin_unlock_irq|finish_task_switch|__schedule|schedule|irqentry_exit_to_user_mode)|sched|futex|wake|switch_|pick_next|enqueue_|dequeue_|update_curr|update_load|ep_|epoll|hrtimer|ttwu|select_task/],
  ['kernel: TCP/IP and loopback', /tcp|ip_|ipv4|skb|sock|inet|net|loopback|dev_|bbr|napi|sk_|raw_local_deliver|process_backlog|validate_xmit|release_sock|__sys_(send|recv)/],
  ['kernel: memory', /page|fault|folio|mmap|munmap|madvise|slab|kmem|kfree|kmalloc|alloc|pte|tlb|vma|memcg|lru/],
];

/** The area of one sample: `kind` from dsoKind(), `dso` and `sym` as perf reports them. */
function areaOf(kind, dso, sym) {
  if (kind === 'JavaScript and WebAssembly (JIT)') return 'JavaScript and WebAssembly';
  if (kind === 'kernel') return (KERNEL_AREAS.find(([, re]) => re.test(sym)) ?? ['kernel: system calls and other'])[0];
  if (kind.startsWith('node binary')) return (NODE_AREAS.find(([, re]) => re.test(sym)) ?? ['node binary: other'])[0];
  if (dso.startsWith('libssl') || dso.startsWith('libcrypto')) return 'OpenSSL';
  if (kind === 'libc') return /mem|str/.test(sym) ? 'libc: copies (memmove, memcpy, str*)' : 'libc: malloc and other';
  if (kind === 'nginx binary') return 'nginx';
  return kind;
}

/**
 * { totalNs, bySymbol: Map<"kind\tsymbol", ns>, byKind: Map<kind, ns>, byArea: Map<area, ns> } of one perf.data file. With
 * cpu-clock, perf's event count is in ns of CPU.
 */
export async function perfBySymbol(file) {
  const { stdout } = await run('perf', ['report', '-i', file, '--no-children', '-g', 'none', '--sort', 'dso,sym', '--stdio'], { maxBuffer: 64 * 1024 * 1024 });
  const total = /Event count \(approx\.\): (\d+)/.exec(stdout);
  const totalNs = total ? Number(total[1]) : 0;
  const bySymbol = new Map();
  const byKind = new Map();
  const byArea = new Map();
  for (const line of stdout.split('\n')) {
    const m = /^\s+([\d.]+)%\s+(\[JIT\] tid \d+|\S+)\s+\[[.k]\]\s+(.*)$/.exec(line);
    if (m === null) continue;
    const ns = (Number(m[1]) / 100) * totalNs;
    const kind = dsoKind(m[2]);
    const sym = m[3].trim();
    const key = `${kind}\t${shortSymbol(m[2], sym)}`;
    bySymbol.set(key, (bySymbol.get(key) ?? 0) + ns);
    byKind.set(kind, (byKind.get(kind) ?? 0) + ns);
    const area = areaOf(kind, m[2], sym);
    byArea.set(area, (byArea.get(area) ?? 0) + ns);
  }
  return { totalNs, bySymbol, byKind, byArea };
}

/**
 * Markdown: µs per request by kind of object for every target, then by area, then the `top` symbols whose cost
 * differs most from the first target's. `runs` is [{ name, perf, requests }].
 */
export function perfMarkdown(runs, top = 30) {
  const per = (r, ns) => ns / 1000 / r.requests;
  const f = (v) => (v === undefined || v === 0 ? '–' : v.toFixed(2));
  const head = `| | ${runs.map((r) => r.name).join(' | ')} |\n|---|${runs.map(() => '---:').join('|')}|`;
  /** One row per key of `field` (byKind or byArea), the first run's largest first. */
  const rows = (field) =>
    [...new Set(runs.flatMap((r) => [...r.perf[field].keys()]))]
      .sort((a, b) => (runs[0].perf[field].get(b) ?? 0) - (runs[0].perf[field].get(a) ?? 0))
      .map((k) => `| ${k} | ${runs.map((r) => f(per(r, r.perf[field].get(k) ?? 0))).join(' | ')} |`);
  const lines = ['µs of CPU per request, every thread of each target, by the object the sample ran in:', '', head, ...rows('byKind')];
  lines.push(`| **all** | ${runs.map((r) => `**${f(per(r, r.perf.totalNs))}**`).join(' | ')} |`);
  lines.push('', 'The same, by area (by symbol name: see areaOf() in lib/perf-symbols.mjs):', '', head, ...rows('byArea'));
  if (runs.length < 2) return lines.join('\n');
  const [a, ...rest] = runs;
  const keys = [...new Set(runs.flatMap((r) => [...r.perf.bySymbol.keys()]))];
  const diff = (k) => Math.max(...rest.map((r) => Math.abs(per(a, a.perf.bySymbol.get(k) ?? 0) - per(r, r.perf.bySymbol.get(k) ?? 0))));
  keys.sort((x, y) => diff(y) - diff(x));
  lines.push('', `The ${top} symbols whose µs per request differ most from ${a.name}'s:`, '', `| object | symbol | ${runs.map((r) => r.name).join(' | ')} |`, `|---|---|${runs.map(() => '---:').join('|')}|`);
  for (const k of keys.slice(0, top)) {
    const [kind, sym] = k.split('\t');
    lines.push(`| ${kind.startsWith('other: ') ? kind.slice(7) : kind.split(' ')[0]} | \`${sym.replaceAll('|', '\\|').replaceAll('`', "'")}\` | ${runs.map((r) => f(per(r, r.perf.bySymbol.get(k) ?? 0))).join(' | ')} |`);
  }
  return lines.join('\n');
}
