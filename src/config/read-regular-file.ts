/**
 * Configuration: the one way the gateway reads a file an operator named (the config file, and every
 * certificate, key, CA bundle and CRL file it names). Only regular files are read, and never more
 * than a limit per kind of file: `/dev/zero` as `tls.cert` once made `config check` and `start`
 * grow to gigabytes, and a FIFO made them wait forever. Symlinks are followed (Kubernetes Secret
 * volumes are `..data` symlinks); what they point at must be a regular file.
 *
 * It lives here rather than in src/pki because config is the lowest layer: pki, revocation and the
 * CLI already depend on it, and the config file itself is read through it.
 */
import { constants, type Stats } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { GatewayError, isGatewayError } from '../errors/registry.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** A config file is a few KiB of YAML; 1 MiB leaves room for very long route lists. */
export const CONFIG_FILE_MAX_BYTES = 1 * MiB;

/**
 * Certificates, chains, private keys and CA bundles (PEM). A whole public-CA bundle
 * (ca-certificates.crt) is about 220 KiB; 1 MiB holds several hundred certificates.
 */
export const PEM_FILE_MAX_BYTES = 1 * MiB;

/**
 * One CRL file (or one file of a CRL directory). CRLs can legitimately be big: the 1M-entry CRL of
 * bench/crl-load.mjs is 37 MiB as DER, about 50 MiB as PEM. 512 MiB is ten times that, still far
 * below what would exhaust the process, and within the 1 GiB a URL source's `maxBytes` may be set
 * to (its default, 64 MiB, is what a network peer may send unasked; a file is the operator's own).
 */
export const CRL_FILE_MAX_BYTES = 512 * MiB;

export interface ReadRegularFileOptions {
  /** The config key that names the file (`tls.cert`, `tls.crl[0]`); every message starts with it. */
  readonly key: string;
  readonly maxBytes: number;
  /** The registry code the refusal carries: GW_ERR_TLS_MATERIAL for material, GW_ERR_CONFIG_UNREADABLE for the config file. */
  readonly code: 'GW_ERR_TLS_MATERIAL' | 'GW_ERR_CONFIG_UNREADABLE';
}

/** `1 MiB`, `512 MiB`, `1536 bytes`: limits are powers of two, so they print exactly. */
export function formatByteLimit(bytes: number): string {
  if (bytes >= MiB && bytes % MiB === 0) return `${bytes / MiB} MiB`;
  if (bytes >= KiB && bytes % KiB === 0) return `${bytes / KiB} KiB`;
  return `${bytes} bytes`;
}

function kindOf(st: Stats): string {
  if (st.isCharacterDevice()) return 'character device';
  if (st.isBlockDevice()) return 'block device';
  if (st.isFIFO()) return 'FIFO';
  if (st.isSocket()) return 'socket';
  if (st.isDirectory()) return 'directory';
  return 'unknown file type';
}

function refuse(file: string, opts: ReadRegularFileOptions, reason: string, cause?: unknown): GatewayError {
  return new GatewayError(opts.code, {
    message: `${opts.key}: cannot read ${file}: ${reason}`,
    detail: { key: opts.key, file, reason, maxBytes: opts.maxBytes },
    cause,
  });
}

/**
 * Why a file could not be read, in a few words (`ENOENT`, `not a regular file (FIFO)`, `larger
 * than 1 MiB`), for callers that phrase their own message or log a reason field.
 */
export function unreadableReason(err: unknown): string {
  if (isGatewayError(err) && typeof err.detail?.['reason'] === 'string') return err.detail['reason'];
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' ? code : err instanceof Error ? err.message : String(err);
}

// O_NONBLOCK: opening a FIFO for reading otherwise blocks until a writer appears, and the stat
// check below cannot exclude a FIFO swapped in after it. It changes nothing for regular files.
// O_NOCTTY: a terminal device must never become the controlling terminal by being opened here.
const OPEN_FLAGS = constants.O_RDONLY | (constants.O_NONBLOCK ?? 0) | (constants.O_NOCTTY ?? 0);

/**
 * Reads a whole regular file of at most `opts.maxBytes` bytes. Refuses, with an error naming the
 * key and the path, anything that is not a regular file (checked before opening and again on the
 * open handle), a file whose size is over the limit, and a file that grows past the limit while
 * it is read: at most limit + 1 bytes are ever read.
 */
export async function readRegularFile(file: string, opts: ReadRegularFileOptions): Promise<Buffer> {
  let st: Stats;
  try {
    st = await stat(file);
  } catch (err) {
    throw refuse(file, opts, unreadableReason(err), err);
  }
  // Checked before opening: opening some devices has side effects, and a FIFO would block.
  if (!st.isFile()) throw refuse(file, opts, `not a regular file (${kindOf(st)})`);
  const tooLarge = () => refuse(file, opts, `larger than ${formatByteLimit(opts.maxBytes)}`);
  if (st.size > opts.maxBytes) throw tooLarge();

  let handle;
  try {
    handle = await open(file, OPEN_FLAGS);
  } catch (err) {
    throw refuse(file, opts, unreadableReason(err), err);
  }
  try {
    const opened = await handle.stat();
    if (!opened.isFile()) throw refuse(file, opts, `not a regular file (${kindOf(opened)})`);
    // The size is a hint only (it changes under a writer, and /proc files report 0): the loop
    // stops at end of file or once it holds limit + 1 bytes, whichever comes first.
    let buf = Buffer.allocUnsafe(Math.min(opts.maxBytes + 1, Math.max(opened.size + 1, 8 * KiB)));
    let total = 0;
    for (;;) {
      if (total === buf.length) {
        if (buf.length > opts.maxBytes) throw tooLarge();
        const bigger = Buffer.allocUnsafe(Math.min(opts.maxBytes + 1, buf.length * 2));
        buf.copy(bigger, 0, 0, total);
        buf = bigger;
      }
      const { bytesRead } = await handle.read(buf, total, buf.length - total, total);
      if (bytesRead === 0) break;
      total += bytesRead;
    }
    // A file that shrank after the buffer grew would otherwise pin the larger allocation.
    return buf.length - total > 64 * KiB ? Buffer.from(buf.subarray(0, total)) : buf.subarray(0, total);
  } catch (err) {
    if (isGatewayError(err)) throw err;
    throw refuse(file, opts, unreadableReason(err), err);
  } finally {
    await handle.close();
  }
}
