/**
 * Helpers for the CLI, demo and deployment tests of issue 4: run `node dist/cli/main.js` as a user
 * would, and lay out a copy of the shipped config next to a PKI written for this run, so tests
 * exercise config/gateway.yaml itself without touching the repository's certs/ directory.
 */
import { execFile } from 'node:child_process';
import { copyFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createDevPki, type DevPki } from '../../src/pki/dev-pki.js';
import { writeDevPki } from '../../src/pki/write-dev-pki.js';

const run = promisify(execFile);
export const REPO = fileURLToPath(new URL('../../', import.meta.url));
export const CLI = path.join(REPO, 'dist', 'cli', 'main.js');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function cli(args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): Promise<CliResult> {
  try {
    const r = await run(process.execPath, [CLI, ...args], { cwd: opts.cwd ?? REPO, env: { ...process.env, ...opts.env }, timeout: 30_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/**
 * `<root>/config/gateway.yaml` (a copy of the shipped file) and `<root>/certs/` (a dev PKI made now),
 * the same layout as the repository, so the config's relative paths resolve unchanged.
 */
export async function shippedLayout(root: string, opts: { pki?: boolean } = {}): Promise<{ config: string; certs: string; pki: DevPki | null }> {
  const configDir = path.join(root, 'config');
  const certs = path.join(root, 'certs');
  await mkdir(configDir, { recursive: true });
  const config = path.join(configDir, 'gateway.yaml');
  await copyFile(path.join(REPO, 'config', 'gateway.yaml'), config);
  let pki: DevPki | null = null;
  if (opts.pki !== false) {
    pki = await createDevPki();
    await writeDevPki(pki, certs);
  }
  return { config, certs, pki };
}

/**
 * Runs a command function in this process with its stdout and stderr captured (not in parallel:
 * the capture replaces process.stdout.write for the duration). Much faster than spawning.
 */
export async function captured(fn: () => Promise<number>): Promise<CliResult> {
  const out: string[] = [];
  const err: string[] = [];
  const o = process.stdout.write.bind(process.stdout);
  const e = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((chunk: string | Uint8Array) => out.push(String(chunk)) > 0) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string | Uint8Array) => err.push(String(chunk)) > 0) as typeof process.stderr.write;
  try {
    const code = await fn();
    return { code, stdout: out.join(''), stderr: err.join('') };
  } finally {
    process.stdout.write = o;
    process.stderr.write = e;
  }
}
