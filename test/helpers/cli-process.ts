/**
 * The gateway's CLI as a child process, for tests that need the real `start` (signals, workers,
 * the admin listener): spawns `node dist/cli/main.js start --config FILE [args]`, collects its JSON
 * log lines (with the time each arrived), and resolves `exited` with the exit code or signal. Also
 * a fixed free port for cluster tests and a bounded wait.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { gatewayYaml, makeTestPki, startUpstream, tempDir, writePkiFiles, type TestPki } from './harness.js';

export const CLI = new URL('../../dist/cli/main.js', import.meta.url).pathname;

export type LogRecord = Record<string, unknown>;

export interface RunningCli {
  readonly child: ChildProcess;
  /** Every JSON line of stdout, in order. */
  readonly records: LogRecord[];
  /** Date.now() when each record arrived (same index). */
  readonly arrivedAt: number[];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
  /** What the process wrote to stderr so far (its last 64 KiB). */
  stderr(): string;
}

/**
 * `start --config FILE` plus `args`; `preload` is a module imported into every process of it;
 * `nodeArgs` go on node's command line, before the script.
 */
export function startCli(file: string, opts: { args?: readonly string[]; preload?: string; nodeArgs?: readonly string[] } = {}): RunningCli {
  const env = opts.preload ? { ...process.env, NODE_OPTIONS: `${process.env['NODE_OPTIONS'] ?? ''} --import=${pathToFileURL(opts.preload).href}`.trim() } : process.env;
  const child = spawn(process.execPath, [...(opts.nodeArgs ?? []), CLI, 'start', '--config', file, ...(opts.args ?? [])], { stdio: ['ignore', 'pipe', 'pipe'], env });
  const records: LogRecord[] = [];
  const arrivedAt: number[] = [];
  let buf = '';
  child.stdout!.on('data', (c: Buffer) => {
    buf += c.toString();
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      try {
        records.push(JSON.parse(line) as LogRecord);
        arrivedAt.push(Date.now());
      } catch {
        /* not JSON */
      }
    }
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (c: string) => {
    // Bounded: the last 64 KiB, where a crash's stack is.
    stderr = (stderr + c).slice(-64 * 1024);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal, at: Date.now() })));
  return { child, records, arrivedAt, exited, stderr: () => stderr };
}

/**
 * When the test received the process's first record of `event` (Date.now()); null if none came.
 * A stop is timed by its `stopped` record rather than by the exit: under `npm test` a process
 * writes its coverage as it exits, which takes seconds on a loaded machine.
 */
export function arrivalOf(gw: RunningCli, event: string): number | null {
  const i = gw.records.findIndex((r) => r['event'] === event);
  return i < 0 ? null : gw.arrivedAt[i]!;
}

/** Polls `ok` every `everyMs` until it holds; throws naming `what` after `timeoutMs`. */
export async function waitFor(what: string, ok: () => boolean, timeoutMs: number, everyMs = 25): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * A fixed port: a cluster shares the port its primary bound, and with port 0 a new one is chosen
 * once every worker is gone (and workers given port 0 would each get their own). It is picked
 * below the ephemeral range, so that none of the test's own connections, made while the port is
 * closed, can take it as their local port.
 */
export async function freePortBelowEphemeral(): Promise<number> {
  const range = await readFile('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').catch(() => '32768 60999');
  const low = Number(range.trim().split(/\s+/)[0]);
  const bottom = 10_000;
  const top = Number.isInteger(low) && low > bottom + 1_000 ? low : 32_768;
  for (let i = 0; i < 50; i++) {
    const port = bottom + Math.floor(Math.random() * (top - bottom));
    const free = await new Promise<boolean>((resolve) => {
      const srv = net.createServer();
      srv.once('error', () => resolve(false));
      srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
    });
    if (free) return port;
  }
  throw new Error('no free port below the ephemeral range');
}

/** What `cliGatewayFiles` prepared: the PKI, its directory, the upstream, the port and the config file. */
export interface CliGatewayFiles {
  readonly pki: TestPki;
  readonly dir: string;
  readonly upstreamPort: number;
  /** The gateway's fixed listening port (freePortBelowEphemeral). */
  readonly port: number;
  readonly file: string;
}

/**
 * The files a CLI test starts the gateway from: a test PKI written to a temporary directory, an
 * upstream answering `ok`, and `gateway.yaml` (gatewayYaml with `yaml` applied: listening on a
 * fixed port below the ephemeral range, logging at `log` unless `edit` says otherwise). Torn down
 * with `t`.
 */
export async function cliGatewayFiles(
  t: { teardown(fn: () => unknown): void },
  opts: { extra?: string; log?: string; edit?: (yaml: string) => string } = {},
): Promise<CliGatewayFiles> {
  const pki = await makeTestPki();
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  await writePkiFiles(pki, dir);
  const up = await startUpstream({ server: pki.upstreams['orders']!, ca: pki.caBundlePem, handler: (_req, res) => res.end('ok') });
  t.teardown(() => up.close());
  const port = await freePortBelowEphemeral();
  const file = path.join(dir, 'gateway.yaml');
  const yaml = gatewayYaml({ upstreamPort: up.port, ...(opts.extra !== undefined ? { extra: opts.extra } : {}) })
    .replace('listen: { host: 127.0.0.1, port: 0 }', `listen: { host: 127.0.0.1, port: ${port} }`)
    .replace('log: { level: debug }', `log: ${opts.log ?? '{ level: info }'}`);
  await writeFile(file, (opts.edit ?? ((y) => y))(yaml));
  return { pki, dir, upstreamPort: up.port, port, file };
}
