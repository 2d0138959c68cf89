// Child processes: every target (upstream, gateway, nginx) runs in its own process group so that its
// CPU can be summed over all its processes and it can be stopped by that group id. Only groups started
// here are ever signalled. Also: free loopback ports and an HTTPS readiness probe with a client cert.
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { request } from 'node:https';
import { createServer } from 'node:net';

const started = new Set();
const children = new Set();

/** Remembers a short-lived child (a generator) so that an interrupted run can stop it by its pid. */
export function trackChild(child) {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** Raises the soft open-files limit of the child (up to the hard limit) before exec. */
export const ULIMIT_WRAPPER = 'ulimit -n "$1" 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null; shift; exec "$@"';

/**
 * Starts `cmd args` in a new process group (setsid), stdout and stderr to logFile.
 * Returns { name, pid, pgid, child, exited: Promise<{code, signal}>, logFile, startedAt }.
 */
export function spawnGroup(name, cmd, args, { cwd, env, logFile, nofile } = {}) {
  const fd = openSync(logFile, 'a');
  const [file, argv] = nofile ? ['bash', ['-c', ULIMIT_WRAPPER, 'bash', String(nofile), cmd, ...args]] : [cmd, args];
  const child = spawn(file, argv, { cwd, env: env ?? process.env, detached: true, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  const proc = { name, pid: child.pid, pgid: child.pid, child, logFile, startedAt: performance.now(), alive: true };
  proc.exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      proc.alive = false;
      resolve({ code, signal });
    });
    child.once('error', (err) => {
      proc.alive = false;
      resolve({ code: null, signal: null, error: err });
    });
  });
  started.add(proc);
  return proc;
}

function signalGroup(proc, sig) {
  try {
    process.kill(-proc.pgid, sig);
  } catch {
    // the group is already gone
  }
}

/** SIGTERM to the group, then SIGKILL after graceMs. */
export async function stopGroup(proc, graceMs = 8000) {
  if (!proc) return;
  signalGroup(proc, 'SIGTERM');
  const timer = new Promise((r) => setTimeout(r, graceMs, 'timeout'));
  const res = await Promise.race([proc.exited, timer]);
  if (res === 'timeout') {
    signalGroup(proc, 'SIGKILL');
    await Promise.race([proc.exited, new Promise((r) => setTimeout(r, 2000))]);
  }
  // Members that outlived the leader (e.g. cluster workers) go too.
  signalGroup(proc, 'SIGKILL');
  started.delete(proc);
}

/** Emergency cleanup on exit or interrupt: kill every group started here, by its id. */
export function killAllStarted() {
  for (const p of started) signalGroup(p, 'SIGKILL');
  started.clear();
  for (const c of children) c.kill('SIGKILL');
  children.clear();
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** One HTTPS request over a fresh connection; resolves { status, body, error }. */
export function httpsProbe({ port, path = '/', method = 'GET', cert, key, ca, servername = 'localhost', body, headers = {}, timeoutMs = 5000 }) {
  return new Promise((resolve) => {
    const req = request(
      { host: '127.0.0.1', port, path, method, cert, key, ca, servername, agent: false, headers: { ...headers, connection: 'close' }, timeout: timeoutMs },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks), headers: res.headers }));
        res.on('error', (err) => resolve({ status: 0, error: err }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err) => resolve({ status: 0, error: err }));
    req.end(body);
  });
}

/** Waits until GET / with the given client cert answers 200; returns the ms since the process started. */
export async function waitReady(proc, probe, { timeoutMs = 60_000 } = {}) {
  const deadline = performance.now() + timeoutMs;
  let last;
  while (performance.now() < deadline) {
    if (!proc.alive) throw new Error(`${proc.name} exited during startup (log: ${proc.logFile})`);
    last = await probe();
    if (last.status === 200) return performance.now() - proc.startedAt;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${proc.name} not ready after ${timeoutMs} ms (last probe: ${last?.status} ${last?.error?.message ?? ''}; log: ${proc.logFile})`);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
