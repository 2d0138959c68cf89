// readRegularFile, the one reader of operator-named files: regular files (also through symlinks,
// as Kubernetes Secret volumes present them) are read whole; devices, FIFOs, directories and files
// over the limit are refused with the key, the path and the reason, and never read without end.
import { execFileSync } from 'node:child_process';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { CONFIG_FILE_MAX_BYTES, CRL_FILE_MAX_BYTES, PEM_FILE_MAX_BYTES, formatByteLimit, readRegularFile, unreadableReason } from '../../src/config/read-regular-file.js';
import { tempDir } from '../helpers/harness.js';

const opts = (maxBytes = 1024) => ({ key: 'tls.cert', maxBytes, code: 'GW_ERR_TLS_MATERIAL' as const });

/** Settles within `ms` or fails: a hang is the bug these tests exist for. */
function within<T>(p: Promise<T>, ms = 5_000): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`did not settle within ${ms} ms`)), ms)))]).finally(() => clearTimeout(timer));
}

t.test('the limits are the documented ones', async (t) => {
  t.equal(formatByteLimit(CONFIG_FILE_MAX_BYTES), '1 MiB');
  t.equal(formatByteLimit(PEM_FILE_MAX_BYTES), '1 MiB');
  t.equal(formatByteLimit(CRL_FILE_MAX_BYTES), '512 MiB');
  t.equal(formatByteLimit(1536), '1536 bytes', 'a limit that is not a whole KiB prints in bytes');
});

t.test('regular files and symlinks to them are read whole', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  const file = path.join(dir, 'a.pem');
  await writeFile(file, 'hello\n');
  t.equal((await readRegularFile(file, opts())).toString(), 'hello\n');

  // The Kubernetes Secret layout: name -> ..data/name, ..data -> ..<timestamp>/.
  await mkdir(path.join(dir, '..2024_01_01'));
  await writeFile(path.join(dir, '..2024_01_01', 'tls.crt'), 'via symlinks\n');
  await symlink('..2024_01_01', path.join(dir, '..data'));
  await symlink(path.join('..data', 'tls.crt'), path.join(dir, 'tls.crt'));
  t.equal((await readRegularFile(path.join(dir, 'tls.crt'), opts())).toString(), 'via symlinks\n');

  const exact = path.join(dir, 'exact');
  await writeFile(exact, Buffer.alloc(1024, 0x41));
  t.equal((await readRegularFile(exact, opts(1024))).length, 1024, 'a file of exactly the limit is accepted');

  const empty = path.join(dir, 'empty');
  await writeFile(empty, '');
  t.equal((await readRegularFile(empty, opts())).length, 0);

  // Bigger than the first buffer (8 KiB), so the loop grows it.
  const big = path.join(dir, 'big');
  const content = Buffer.alloc(100_000, 0x42);
  await writeFile(big, content);
  t.ok((await readRegularFile(big, opts(200_000))).equals(content));
});

t.test('a file over the limit is refused, naming the key, the path and the limit', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  const file = path.join(dir, 'big.crl');
  await writeFile(file, Buffer.alloc(2049));
  await t.rejects(readRegularFile(file, { key: 'tls.crl[0]', maxBytes: 2048, code: 'GW_ERR_TLS_MATERIAL' }), {
    code: 'GW_ERR_TLS_MATERIAL',
    message: `tls.crl[0]: cannot read ${file}: larger than 2 KiB`,
    detail: { key: 'tls.crl[0]', file, reason: 'larger than 2 KiB' },
  });
});

t.test('a file whose size stat gets wrong is still read at most to the limit', { skip: existsSync('/proc/self/status') ? false : 'needs /proc' }, async (t) => {
  // /proc files report size 0 and then deliver content: the limit must hold in the read loop,
  // which is also what stops a file that grows while it is read.
  await t.rejects(readRegularFile('/proc/self/status', opts(64)), { message: /larger than 64 bytes/ });
  t.ok((await readRegularFile('/proc/self/status', opts(1024 * 1024))).length > 64, 'read whole when under the limit');
});

t.test('/dev/zero is refused as a character device, without reading it', { skip: existsSync('/dev/zero') ? false : 'needs /dev/zero' }, async (t) => {
  const err = await within(readRegularFile('/dev/zero', opts(CRL_FILE_MAX_BYTES)).then(() => null, (e: unknown) => e));
  t.match(err, { code: 'GW_ERR_TLS_MATERIAL', message: 'tls.cert: cannot read /dev/zero: not a regular file (character device)' });
  t.equal(unreadableReason(err), 'not a regular file (character device)');
});

t.test('a FIFO is refused without waiting for a writer', { skip: process.platform === 'win32' ? 'no mkfifo' : false }, async (t) => {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  const fifo = path.join(dir, 'tls.key');
  execFileSync('mkfifo', [fifo]);
  await t.rejects(within(readRegularFile(fifo, { key: 'tls.key', maxBytes: 1024, code: 'GW_ERR_TLS_MATERIAL' })), {
    message: `tls.key: cannot read ${fifo}: not a regular file (FIFO)`,
  });
  // Through a symlink too: stat follows it, and what it points at decides.
  const link = path.join(dir, 'link.key');
  await symlink(fifo, link);
  await t.rejects(within(readRegularFile(link, opts())), { message: /not a regular file \(FIFO\)/ });
});

t.test('a directory, a missing file and the config code', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  await t.rejects(readRegularFile(dir, opts()), { message: `tls.cert: cannot read ${dir}: not a regular file (directory)` });
  const missing = path.join(dir, 'nope.pem');
  await t.rejects(readRegularFile(missing, opts()), { code: 'GW_ERR_TLS_MATERIAL', message: `tls.cert: cannot read ${missing}: ENOENT`, cause: { code: 'ENOENT' } });
  await t.rejects(readRegularFile(dir, { key: 'config file', maxBytes: 1024, code: 'GW_ERR_CONFIG_UNREADABLE' }), { code: 'GW_ERR_CONFIG_UNREADABLE' });
});
