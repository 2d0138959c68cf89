// Load generators. With --gen auto: wrk (1 thread, client certificate through the LD_PRELOAD shim in
// tools/mtls-preload.c) for keep-alive load, ab (native client certificates, a full handshake per
// request, latency including connect + handshake) for full handshakes. Resumed handshakes always use
// the Node generator: wrk busy-polls while a handshake is pending (see the shim) and its latency
// leaves the handshake out; the Node generator counts how many sessions were actually resumed.
// Without wrk/ab, or with --gen node: the Node generator in loadgen.mjs (undici over worker_threads)
// for everything. HTTP/2 load (the h2 and grpc scenarios): h2load (nghttp2-client, 1 thread, the
// same client-certificate shim as wrk) for GET, the Node HTTP/2 generator in h2-loadgen.mjs for
// gRPC calls (h2load cannot see trailers, hence not grpc-status) and for GET without h2load.
// Every generator runs as a child process of the harness, so its CPU time shows up in the
// harness's cutime/cstime once it exits (see measure.mjs).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { which } from './machine.mjs';
import { ULIMIT_WRAPPER, trackChild } from './procs.mjs';

const BENCH = fileURLToPath(new URL('..', import.meta.url));
const LOADGEN = join(BENCH, 'lib/loadgen.mjs');
const H2_LOADGEN = join(BENCH, 'lib/h2-loadgen.mjs');
const SHIM_SRC = join(BENCH, 'tools/mtls-preload.c');
const POST_LUA = join(BENCH, 'tools/post64k.lua');

/** "1.23ms" / "850.00us" / "2.01s" -> ms */
function wrkTimeMs(v) {
  if (!v) return null;
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(v);
  if (!m) return null;
  const x = Number(m[1]);
  return m[2] === 'us' ? x / 1000 : m[2] === 'ms' ? x : m[2] === 's' ? x * 1000 : x * 60_000;
}

export function parseWrk(text) {
  const num = (re) => Number(re.exec(text)?.[1] ?? NaN);
  const pct = (p) => wrkTimeMs(new RegExp(`^\\s*${p}%\\s+(\\S+)`, 'm').exec(text)?.[1]);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const errors = (sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0) + (Number(/Non-2xx or 3xx responses: (\d+)/.exec(text)?.[1]) || 0);
  return { rps: num(/Requests\/sec:\s+([\d.]+)/), requests: num(/(\d+) requests in/), p50: pct(50), p99: pct(99), errors };
}

export function parseAb(text) {
  const n = (re) => Number(re.exec(text)?.[1] ?? NaN);
  const pct = (p) => {
    const v = new RegExp(`^\\s*${p}%\\s+(\\d+)`, 'm').exec(text)?.[1];
    return v === undefined ? null : Number(v);
  };
  const errors = (Number(/Failed requests:\s+(\d+)/.exec(text)?.[1]) || 0) + (Number(/Non-2xx responses:\s+(\d+)/.exec(text)?.[1]) || 0);
  return { rps: n(/Requests per second:\s+([\d.]+)/), requests: n(/Complete requests:\s+(\d+)/), p50: pct(50), p99: pct(99), errors };
}

/**
 * h2load's summary. Every request that did not end in a 2xx answer is an error: a proxy that
 * refuses the client certificate answers 401/403 quickly, and those must not count as throughput.
 * p50/p99 come from its per-request log (--log-file), when given.
 */
export function parseH2load(text, logText = '') {
  const req = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(text);
  const codes = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(text);
  const ok = codes ? Number(codes[1]) : 0;
  // "failed" already holds the errored and timed-out requests and the 4xx/5xx answers; h2load
  // counts 3xx as succeeded, this suite does not.
  const errors = req ? Number(req[5]) + (codes ? Number(codes[2]) : 0) : 1;
  const fin = /finished in ([\d.]+)(us|ms|s),/.exec(text);
  const secs = fin ? Number(fin[1]) / (fin[2] === 'us' ? 1e6 : fin[2] === 'ms' ? 1e3 : 1) : NaN;
  const protocol = /Application protocol: (\S+)/.exec(text)?.[1] ?? null;
  // Log lines: start time (µs since the epoch), status, duration (µs).
  const lat = logText
    .split('\n')
    .map((l) => l.split('\t'))
    .filter((f) => f.length >= 3 && f[1].startsWith('2'))
    .map((f) => Number(f[2]))
    .sort((a, b) => a - b);
  const pct = (p) => (lat.length ? lat[Math.min(lat.length - 1, Math.ceil((p / 100) * lat.length) - 1)] / 1000 : null);
  return { rps: secs > 0 ? ok / secs : NaN, requests: ok, p50: pct(50), p99: pct(99), errors, protocol };
}

export class Generators {
  constructor({ workDir, pki, opts, log }) {
    Object.assign(this, { workDir, pki, opts, log });
    this.wrk = opts.gen === 'auto' ? which('wrk') : null;
    this.ab = opts.gen === 'auto' ? which('ab') : null;
    this.h2load = opts.gen === 'auto' ? which('h2load') : null;
    this.shim = null;
    if (this.wrk || this.h2load) this.shim = this.buildShim();
    if (!this.shim) this.wrk = this.h2load = null;
  }

  buildShim() {
    const so = join(this.workDir, 'mtls-preload.so');
    if (existsSync(so) && statSync(so).mtimeMs > statSync(SHIM_SRC).mtimeMs) return so;
    const cc = which('cc') ?? which('gcc');
    if (!cc) {
      this.log('wrk is installed but no C compiler to build tools/mtls-preload.c: using the Node generator instead');
      return null;
    }
    const r = spawnSync(cc, ['-O2', '-Wall', '-shared', '-fPIC', '-o', so, SHIM_SRC, '-ldl'], { encoding: 'utf8' });
    if (r.status !== 0) {
      this.log(`cannot build the wrk client-certificate shim (${r.stderr?.trim()}): using the Node generator instead`);
      return null;
    }
    return so;
  }

  /** Which tool serves a kind of load: ka (keep-alive), hs (full handshakes), hs-resume, h2 (GET over HTTP/2), grpc. */
  toolFor(kind) {
    if (kind === 'hs') return this.ab ? 'ab' : 'node';
    if (kind === 'hs-resume') return 'node';
    if (kind === 'h2') return this.h2load ? 'h2load' : 'node-h2';
    if (kind === 'grpc') return 'node-h2';
    return this.wrk ? 'wrk' : 'node';
  }

  describe() {
    return {
      ka: this.toolFor('ka'),
      hs: this.toolFor('hs'),
      'hs-resume': this.toolFor('hs-resume'),
      h2: this.toolFor('h2'),
      grpc: this.toolFor('grpc'),
      threads: { wrk: 1, node: this.opts.genThreads, nodeHandshakes: this.opts.genThreadsHs },
    };
  }

  /**
   * Runs one measurement. spec: { kind, port, path, method, bodyBytes, servername, durationS, conns,
   * preconnect, tool? }. hooks.onStart(pid) / hooks.onEnd(pid) are called at the edges of the
   * measured window when the generator reports them (the Node generator does).
   * Resolves { tool, rps, requests, p50, p99, errors, raw }.
   */
  async run(spec, hooks = {}) {
    const tool = spec.tool ?? this.toolFor(spec.kind);
    const d = Math.max(1, Math.round(spec.durationS));
    const url = `https://127.0.0.1:${spec.port}${spec.path}`;
    const env = { ...process.env };
    let cmd;
    let args;
    let logFile = null;
    if (tool === 'wrk') {
      cmd = this.wrk;
      args = ['-t1', `-c${spec.conns}`, `-d${d}s`, '--timeout', '5s', '--latency'];
      if (spec.method === 'POST') {
        args.push('-s', POST_LUA);
        env.POST_BYTES = String(spec.bodyBytes);
      }
      if (spec.kind !== 'ka') args.push('-H', 'Connection: close');
      args.push(url);
      Object.assign(env, {
        MTLS_CERT: this.pki.clientCert,
        MTLS_KEY: this.pki.clientKey,
        LD_PRELOAD: this.shim,
        MTLS_RESUME: spec.kind === 'hs-resume' ? '1' : '0',
        // Keep-alive: wait in poll() for the server's handshake flight instead of spinning.
        MTLS_WAIT_MS: spec.kind === 'ka' ? '200' : '0',
      });
    } else if (tool === 'h2load') {
      cmd = this.h2load;
      logFile = join(this.workDir, `h2load-${process.pid}.log`);
      // h2load has no client-certificate option: the shim loads it into h2load's SSL_CTX.
      args = ['-t1', `-c${spec.conns}`, `-m${spec.streams}`, `-D${d}`, '--warm-up-time=1', `--log-file=${logFile}`, url];
      Object.assign(env, { MTLS_CERT: this.pki.clientCert, MTLS_KEY: this.pki.clientKey, LD_PRELOAD: this.shim, MTLS_RESUME: '0', MTLS_WAIT_MS: '0' });
    } else if (tool === 'node-h2') {
      cmd = process.execPath;
      const cfg = { port: spec.port, path: spec.path, grpc: spec.kind === 'grpc', conns: spec.conns, streams: spec.streams, durationS: spec.durationS, cert: this.pki.clientCert, key: this.pki.clientKey, ca: this.pki.caBundle, servername: spec.servername };
      args = [H2_LOADGEN, JSON.stringify(cfg)];
    } else if (tool === 'ab') {
      cmd = this.ab;
      args = ['-q', '-r', '-l', '-s', '30', '-c', String(spec.conns), '-t', String(d), '-n', '100000000', '-E', this.pki.clientPem, url];
    } else {
      cmd = process.execPath;
      const cfg = {
        mode: spec.kind === 'ka' ? 'ka' : 'hs',
        resume: spec.kind === 'hs-resume',
        port: spec.port,
        path: spec.path,
        method: spec.method,
        bodyBytes: spec.bodyBytes ?? 0,
        conns: spec.conns,
        durationS: spec.durationS,
        threads: spec.kind === 'ka' ? this.opts.genThreads : this.opts.genThreadsHs,
        preconnect: spec.preconnect ?? false,
        rate: spec.rate ?? 0,
        cert: this.pki.clientCert,
        key: this.pki.clientKey,
        ca: this.pki.caBundle,
        servername: spec.servername,
      };
      args = [LOADGEN, JSON.stringify(cfg)];
    }
    const onLine = (line, pid) => {
      if (line === '{"event":"start"}') hooks.onStart?.(pid);
      else if (line === '{"event":"end"}') hooks.onEnd?.(pid);
    };
    const raw = await runChild(cmd, args, env, (d + (spec.preconnect ? 120 : 30)) * 1000, tool.startsWith('node') ? onLine : null);
    let res;
    if (tool === 'wrk') res = parseWrk(raw);
    else if (tool === 'h2load') {
      res = parseH2load(raw, existsSync(logFile) ? readFileSync(logFile, 'utf8') : '');
      rmSync(logFile, { force: true });
      if (res.protocol !== 'h2') {
        this.log(`WARNING: h2load negotiated ${res.protocol ?? 'no protocol'}, not h2: counted as failed`);
        res.errors += res.requests;
        res.requests = 0;
        res.rps = NaN;
      }
    }
    else if (tool === 'ab') res = parseAb(raw);
    else {
      try {
        const j = JSON.parse(raw.trim().split('\n').findLast((l) => l.startsWith('{"tool"')));
        res = { rps: j.rps, requests: j.requests, p50: j.p50, p99: j.p99, errors: j.errors + j.non2xx, reused: j.reused, errorKinds: j.errorKinds };
      } catch {
        res = { rps: NaN, requests: 0, p50: null, p99: null, errors: 1 };
      }
    }
    if (!(res.requests > 0)) this.log(`WARNING: no result from ${tool}: ${raw.slice(0, 400).replace(/\n/g, ' | ')}`);
    return { tool, ...res, raw };
  }

  /** Starts the Node generator in hold mode; see the idle scenario. */
  spawnHold(cfg, nofile) {
    const json = JSON.stringify({ ...cfg, mode: 'hold', cert: this.pki.clientCert, key: this.pki.clientKey, ca: this.pki.caBundle });
    // The shell raises the open-files limit (up to the hard limit) and execs node in its place.
    return trackChild(spawn('bash', ['-c', ULIMIT_WRAPPER, 'bash', String(nofile), process.execPath, LOADGEN, json], { stdio: ['pipe', 'pipe', 'pipe'] }));
  }
}

function runChild(cmd, args, env, timeoutMs, onLine) {
  return new Promise((resolve) => {
    const child = trackChild(spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] }));
    let out = '';
    let pending = '';
    child.stdout.on('data', (d) => {
      out += d;
      if (!onLine) return;
      pending += d;
      let i;
      while ((i = pending.indexOf('\n')) >= 0) {
        onLine(pending.slice(0, i), child.pid);
        pending = pending.slice(i + 1);
      }
    });
    child.stderr.on('data', (d) => (out += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve(`spawn error: ${err.message}`);
    });
    child.on('close', () => {
      clearTimeout(timer);
      resolve(out);
    });
  });
}
