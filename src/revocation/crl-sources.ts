/**
 * Revocation: CRL sources as the config names them, normalized, and the reading of file and
 * directory sources with a change signature. The signature follows symlinks (realpath, inode,
 * size, mtime), so a Kubernetes secret update (the `..data` symlink swap) and an editor that
 * replaces a file both register as changes. Every CRL file is read with readRegularFile: a device,
 * FIFO or socket (also one dropped into a CRL directory) is refused, as is a file over
 * CRL_FILE_MAX_BYTES, with a GW_ERR_TLS_MATERIAL error naming the source's key and the file.
 */
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileSignature } from '../config/file-signature.js';
import { CRL_FILE_MAX_BYTES, readRegularFile, unreadableReason } from '../config/read-regular-file.js';
import type { CrlSourceConfig } from '../config/schema.js';
import { GatewayError } from '../errors/registry.js';

export type CrlSourceSpec =
  | { readonly kind: 'path'; readonly path: string; readonly key: string }
  | { readonly kind: 'file'; readonly path: string; readonly key: string }
  | { readonly kind: 'dir'; readonly path: string; readonly key: string }
  | {
      readonly kind: 'url';
      readonly url: string;
      readonly refreshMs: number;
      readonly timeoutMs: number;
      readonly maxBytes: number;
      readonly cacheFile: string | null;
      readonly key: string;
    };

const URL_RE = /^https?:\/\//i;
const CRL_FILE = /\.(pem|crl|der)$/i;
const URL_DEFAULTS = { refreshMs: 300_000, timeoutMs: 10_000, maxBytes: 67_108_864 };

/** `key` is the config key path (e.g. `tls.crl[1]`), used in every message about the source. */
export function normalizeCrlSources(list: readonly CrlSourceConfig[] | undefined, keyPrefix: string): CrlSourceSpec[] {
  return (list ?? []).map((s, i): CrlSourceSpec => {
    const key = `${keyPrefix}[${i}]`;
    if (typeof s === 'string') {
      return URL_RE.test(s) ? { kind: 'url', url: s, ...URL_DEFAULTS, cacheFile: null, key } : { kind: 'path', path: s, key };
    }
    if ('file' in s) return { kind: 'file', path: s.file, key };
    if ('dir' in s) return { kind: 'dir', path: s.dir, key };
    return { kind: 'url', url: s.url, refreshMs: s.refresh, timeoutMs: s.timeout, maxBytes: s.maxBytes, cacheFile: s.cache ?? null, key };
  });
}

export function describeSource(spec: CrlSourceSpec): string {
  return spec.kind === 'url' ? spec.url : spec.path;
}

export interface ReadFileSource {
  /** One entry per file read: its path (for logs) and bytes. */
  readonly files: ReadonlyArray<{ readonly file: string; readonly bytes: Buffer }>;
  readonly signature: string;
}


async function listDir(dir: string, key: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    throw new GatewayError('GW_ERR_TLS_MATERIAL', {
      message: `${key}: cannot read directory ${dir}: ${unreadableReason(err)}`,
      detail: { key, file: dir, reason: unreadableReason(err) },
      cause: err,
    });
  }
  return names
    .filter((n) => !n.startsWith('.') && CRL_FILE.test(n))
    .sort()
    .map((n) => path.join(dir, n));
}

/** Files a path source covers right now (a directory's CRL files, or the file itself). */
async function filesOf(spec: Exclude<CrlSourceSpec, { kind: 'url' }>): Promise<string[]> {
  if (spec.kind === 'file') return [spec.path];
  if (spec.kind === 'dir') return listDir(spec.path, spec.key);
  const st = await stat(spec.path);
  return st.isDirectory() ? listDir(spec.path, spec.key) : [spec.path];
}

/** Cheap change detection: stat only, no reads. */
export async function pathSourceSignature(spec: Exclude<CrlSourceSpec, { kind: 'url' }>): Promise<string> {
  const files = await filesOf(spec);
  const sigs = await Promise.all(files.map(fileSignature));
  return sigs.join('|');
}

export async function readPathSource(spec: Exclude<CrlSourceSpec, { kind: 'url' }>): Promise<ReadFileSource> {
  const files = await filesOf(spec);
  const out: Array<{ file: string; bytes: Buffer }> = [];
  const sigs: string[] = [];
  for (const file of files) {
    sigs.push(await fileSignature(file));
    out.push({ file, bytes: await readRegularFile(file, { key: spec.key, maxBytes: CRL_FILE_MAX_BYTES, code: 'GW_ERR_TLS_MATERIAL' }) });
  }
  return { files: out, signature: sigs.join('|') };
}
