// Pins a security decision: a path in the configuration (or the config file itself) that names
// something other than a regular file is refused, and every file is read only up to a limit per
// kind. `/dev/zero` as `tls.cert` once made `config check` and `start` grow to 4.4 GB and never
// exit; a FIFO made them wait forever. Here each such config must make the real CLI exit by itself,
// quickly, with code 1 and a message naming the config key and the path; and on a CRL reload the
// same refusal is logged and the last good CRL stays in force.
import { execFileSync, spawn } from 'node:child_process';
import { copyFile, mkdir, rename, symlink, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t, { type Test } from 'tap';
import { gatewayYaml, makeTestPki, startStack, tempDir, writePkiFiles } from '../helpers/harness.js';

const CLI = new URL('../../dist/cli/main.js', import.meta.url).pathname;
/** Far more than a refusal needs; a child still running then is the hang this file guards against. */
const CHILD_TIMEOUT_MS = 20_000;

interface Run {
  code: number | null;
  /** True when the child had to be killed: it did not exit by itself. */
  timedOut: boolean;
  stderr: string;
  ms: number;
}

function runCli(args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    let timedOut = false;
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      if (stderr.length < 64 * 1024) stderr += d;
    });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, CHILD_TIMEOUT_MS);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, timedOut, stderr, ms: Date.now() - started });
    });
  });
}

function mkfifo(file: string): void {
  execFileSync('mkfifo', [file]);
}

interface Case {
  readonly name: string;
  /** Prepares files in `dir` and returns the config text. */
  setup(dir: string, base: string): Promise<string>;
  readonly error: RegExp;
}

const CASES: readonly Case[] = [
  {
    name: 'tls.cert is /dev/zero',
    setup: async (_dir, base) => base.replace('cert: ./gateway.crt', 'cert: /dev/zero'),
    error: /tls\.cert: cannot read \/dev\/zero: not a regular file \(character device\)/,
  },
  {
    name: 'tls.clientCA is /dev/zero',
    setup: async (_dir, base) => base.replace('clientCA: ./ca-bundle.pem', 'clientCA: /dev/zero'),
    error: /tls\.clientCA: cannot read \/dev\/zero: not a regular file \(character device\)/,
  },
  {
    name: 'tls.key is a FIFO',
    setup: async (dir, base) => {
      mkfifo(path.join(dir, 'fifo.key'));
      return base.replace('key: ./gateway.key', 'key: ./fifo.key');
    },
    error: /tls\.key: cannot read \S*fifo\.key: not a regular file \(FIFO\)/,
  },
  {
    name: 'tls.cert is a directory',
    setup: async (dir, base) => {
      await mkdir(path.join(dir, 'certdir'));
      return base.replace('cert: ./gateway.crt', 'cert: ./certdir');
    },
    error: /tls\.cert: cannot read \S*certdir: not a regular file \(directory\)/,
  },
  {
    name: 'an upstream tls.ca is /dev/zero',
    setup: async (_dir, base) => base.replace('ca: ./ca-bundle.pem', 'ca: /dev/zero'),
    error: /upstreams\.orders\.tls\.ca: cannot read \/dev\/zero: not a regular file \(character device\)/,
  },
  {
    name: 'an upstream tls.key is a FIFO',
    setup: async (dir, base) => {
      mkfifo(path.join(dir, 'upstream-fifo.key'));
      return base.replace('key: ./gateway-client.key', 'key: ./upstream-fifo.key');
    },
    error: /upstreams\.orders\.tls\.key: cannot read \S*upstream-fifo\.key: not a regular file \(FIFO\)/,
  },
  {
    name: 'a CRL file source is /dev/zero',
    setup: async (_dir, base) => base.replace('  crl: [./root.crl.pem, ./intermediate.crl.pem]', '  crl: [./root.crl.pem, { file: /dev/zero }]'),
    error: /tls\.crl\[1\]: cannot read \/dev\/zero: not a regular file \(character device\)/,
  },
  {
    name: 'a CRL path source (plain string) is /dev/zero',
    setup: async (_dir, base) => base.replace('  crl: [./root.crl.pem, ./intermediate.crl.pem]', '  crl: [/dev/zero]'),
    error: /tls\.crl\[0\]: cannot read \/dev\/zero: not a regular file \(character device\)/,
  },
  {
    name: 'a CRL directory holds a FIFO',
    setup: async (dir, base) => {
      await mkdir(path.join(dir, 'crl'));
      await copyFile(path.join(dir, 'intermediate.crl.pem'), path.join(dir, 'crl', 'intermediate.crl.pem'));
      mkfifo(path.join(dir, 'crl', 'zz-never-ends.crl'));
      return base.replace('  crl: [./root.crl.pem, ./intermediate.crl.pem]', '  crl: [./root.crl.pem, { dir: ./crl }]');
    },
    error: /tls\.crl\[1\]: cannot read \S*zz-never-ends\.crl: not a regular file \(FIFO\)/,
  },
];

function assertRefused(t: Test, r: Run, error: RegExp, what: string): void {
  t.notOk(r.timedOut, `${what}: exited by itself (after ${r.ms} ms), not killed after ${CHILD_TIMEOUT_MS} ms`);
  t.equal(r.code, 1, `${what}: exit code 1`);
  t.match(r.stderr, error, `${what}: the error names the key and the path`);
}

// Dozens of real CLI processes (about 1 s of CPU each to start): more than the suite's default
// 120 s on a loaded 2-core CI machine.
t.setTimeout(300_000);

t.test('config check and start refuse config paths that are not regular files, and exit', async (t) => {
  const pki = await makeTestPki();
  const { dir: root, cleanup } = await tempDir();
  t.teardown(cleanup);
  const base = gatewayYaml({ upstreamPort: 9 });

  // The control: the same config with the real files passes, so each failure below is the file's.
  const okDir = path.join(root, 'ok');
  await mkdir(okDir);
  await writePkiFiles(pki, okDir);
  await writeFile(path.join(okDir, 'gateway.yaml'), base);
  const ok = await runCli(['config', 'check', '--config', path.join(okDir, 'gateway.yaml')]);
  t.equal(ok.code, 0, `control config passes config check: ${ok.stderr}`);

  for (const [i, c] of CASES.entries()) {
    const dir = path.join(root, `case-${i}`);
    await mkdir(dir);
    await writePkiFiles(pki, dir);
    const config = path.join(dir, 'gateway.yaml');
    await writeFile(config, await c.setup(dir, base));
    const [check, start] = await Promise.all([runCli(['config', 'check', '--config', config]), runCli(['start', '--config', config])]);
    assertRefused(t, check, c.error, `${c.name}: config check`);
    assertRefused(t, start, c.error, `${c.name}: start`);
  }
});

t.test('--config naming /dev/zero or a FIFO is refused, and the process exits', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  const fifo = path.join(dir, 'gateway.yaml');
  mkfifo(fifo);
  const cases = [
    { config: '/dev/zero', error: /cannot read config file \/dev\/zero: not a regular file \(character device\)/ },
    { config: fifo, error: /cannot read config file \S*gateway\.yaml: not a regular file \(FIFO\)/ },
    { config: dir, error: /cannot read config file \S+: not a regular file \(directory\)/ },
  ];
  for (const c of cases) {
    const [check, start] = await Promise.all([runCli(['config', 'check', '--config', c.config]), runCli(['start', '--config', c.config])]);
    assertRefused(t, check, c.error, `config check --config ${c.config}`);
    assertRefused(t, start, c.error, `start --config ${c.config}`);
  }

  // Over the 1 MiB limit: refused before parsing, whatever the content.
  const big = path.join(dir, 'big.yaml');
  await writeFile(big, `# ${'x'.repeat(1024 * 1024)}\n`);
  assertRefused(t, await runCli(['config', 'check', '--config', big]), /cannot read config file \S*big\.yaml: larger than 1 MiB/, 'config check of a 1 MiB+ config');
});

t.test('cert inspect and policy explain refuse a certificate argument that is not a regular file', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  const fifo = path.join(dir, 'client.crt');
  mkfifo(fifo);
  assertRefused(t, await runCli(['cert', 'inspect', '/dev/zero']), /cannot read a certificate from \/dev\/zero: not a regular file \(character device\)/, 'cert inspect /dev/zero');
  assertRefused(t, await runCli(['cert', 'inspect', fifo]), /not a regular file \(FIFO\)/, 'cert inspect FIFO');

  const pki = await makeTestPki();
  await writePkiFiles(pki, dir);
  const config = path.join(dir, 'gateway.yaml');
  await writeFile(config, gatewayYaml({ upstreamPort: 9 }));
  assertRefused(t, await runCli(['policy', 'explain', '--config', config, '--cert', fifo, '--path', '/orders']), /--cert: cannot read \S*client\.crt: not a regular file \(FIFO\)/, 'policy explain --cert FIFO');
});

t.test('on reload, a CRL file replaced by a FIFO or /dev/zero is refused and logged; the last good CRL stays in force', async (t) => {
  const s = await startStack({ crlYaml: '  crl: [./root.crl.pem, ./intermediate.crl.pem]\n  revocation: { pollInterval: 1h }' });
  t.teardown(() => s.close());
  const revoked = s.pki.clients['revoked']!;
  const file = path.join(s.dir, 'intermediate.crl.pem');
  t.equal((await s.send(revoked, { path: '/orders' })).status, 401, 'revoked by the intermediate CRL');
  const generation = s.gw.gateway.revocation.get('clients')!.index.generation;

  const refusedWith = (reason: string) => s.gw.logs.filter((l) => l['event'] === 'crl-refused' && l['code'] === 'CRL_SOURCE_UNREADABLE' && l['reason'] === reason);

  // A FIFO swapped in atomically, as a rename-over would.
  const tmpFifo = path.join(s.dir, '.intermediate.fifo.tmp');
  mkfifo(tmpFifo);
  await rename(tmpFifo, file);
  await s.gw.gateway.reload('test');
  t.match(refusedWith('not a regular file (FIFO)'), [{ key: 'tls.crl[1]', source: file, file }], 'the refusal is logged with its reason');
  t.equal((await s.send(revoked, { path: '/orders' })).status, 401, 'still revoked: the last good CRL stays in force');

  await unlink(file);
  await symlink('/dev/zero', file);
  await s.gw.gateway.reload('test');
  // The CRL file watch sees the swap too: its debounced poll (150 ms) may refuse the file a second
  // time before this line runs on a busy machine, so at least one refusal, each with this reason.
  t.ok(refusedWith('not a regular file (character device)').length >= 1, 'a symlink to /dev/zero is refused by what it points at');
  t.equal((await s.send(revoked, { path: '/orders' })).status, 401, 'still revoked');
  t.equal((await s.send(s.pki.clients['billing']!, { path: '/orders' })).status, 200, 'the gateway keeps serving');
  t.equal(s.gw.gateway.revocation.get('clients')!.index.generation, generation, 'the revocation index was not replaced');
});
