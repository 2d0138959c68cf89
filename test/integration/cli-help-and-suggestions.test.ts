// The CLI's help and typo handling as a user meets them: a group's --help (or -h) lists its
// commands and exits 0, a group alone is a usage error (exit 2) that still shows the group,
// one command's --help shows that command only, a mistyped command gets the closest one, and
// `pki ticket-key` writes a 48-byte, mode-0600 session ticket key file without ever overwriting
// one unless told to. Spawns `node dist/cli/main.js` (build first), concurrently where it can.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

// Not the shared helpers: they load the PKI and gateway modules, seconds this file need not spend.
const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, stdout, stderr });
    });
  });
}

const GROUPS: Record<string, string[]> = {
  config: ['check', 'schema'],
  cert: ['inspect'],
  policy: ['explain'],
  pki: ['init', 'issue', 'revoke', 'crl', 'ticket-key'],
};
// Every command as [words, an option only its usage shows].
const COMMANDS: [string[], string][] = [
  [['start'], '--workers N'],
  [['config', 'check'], '--config FILE'],
  [['config', 'schema'], 'config schema'],
  [['cert', 'inspect'], '--json'],
  [['policy', 'explain'], '--expect allow|deny'],
  [['pki', 'init'], '--if-absent'],
  [['pki', 'issue'], '--spiffe URI'],
  [['pki', 'revoke'], '--reason REASON'],
  [['pki', 'crl'], '--dir DIR'],
  [['pki', 'ticket-key'], '--out FILE [--force]'],
];
const ALL = COMMANDS.map(([w]) => w.join(' '));

// Each group's --help, one -h and one `help GROUP`.
const GROUP_HELP = [...Object.keys(GROUPS).map((g) => [g, '--help']), ['pki', '-h'], ['help', 'config']];
const TYPOS: [string[], RegExp][] = [
  [['strat'], /^mtls-gateway: unknown command "strat"; did you mean "start"\?$/m],
  [['pki', 'isue'], /^mtls-gateway: unknown command "pki isue"; did you mean "pki issue"\?$/m],
  [['pki', 'ticketkey', '--out', 'x'], /unknown command "pki ticketkey"; did you mean "pki ticket-key"\?/],
  [['conifg', 'check'], /unknown command "conifg check"; did you mean "config check"\?/],
  [['polcy', 'explian'], /unknown command "polcy explian"; did you mean "policy explain"\?/],
  [['--verison'], /unknown option "--verison"; did you mean "--version"\?/],
  [['cert', 'inspect', 'x.crt', '--jsn'], /Unknown option '--jsn'; did you mean "--json"\?/],
];
const FAR: [string[], RegExp, string[]][] = [
  [['frobnicate'], /unknown command "frobnicate"\n/, ALL],
  [['pki', 'zzzzzz'], /unknown command "pki zzzzzz"\n/, GROUPS['pki']!.map((s) => `pki ${s}`)],
];

// Spawned all at once, now: the subtests below only wait for their answers.
const groupHelp = Promise.all(GROUP_HELP.map((args) => cli(args)));
const ALONE = ['pki', 'config'];
const groupAlone = Promise.all([...ALONE.map((g) => cli([g])), cli(['pki', '--force'])]);
const commandHelp = Promise.all([...COMMANDS.map(([words]) => cli([...words, '--help'])), cli(['--help']), cli(['--version'])]);
const typos = Promise.all([...TYPOS, ...FAR].map(([args]) => cli(args)));

// First, so its runs (one after another) overlap the batch above.
t.test('pki ticket-key writes 48 random bytes, mode 0600, and overwrites only with --force', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mtls-gw-ticket-key-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const a = path.join(dir, 'a.key');
  const b = path.join(dir, 'b.key');
  const [ra, rb] = await Promise.all([cli(['pki', 'ticket-key', '--out', a]), cli(['pki', 'ticket-key', '--out', b])]);
  t.equal(ra.code, 0, ra.stderr);
  t.equal(rb.code, 0, rb.stderr);
  t.equal(ra.stdout.trim().split('\n').length, 1, 'one line of output');
  t.match(ra.stdout, /48-byte.*a\.key/);
  const keyA = await readFile(a);
  const keyB = await readFile(b);
  t.equal(keyA.length, 48, 'exactly 48 bytes');
  t.equal(keyB.length, 48);
  t.notOk(keyA.equals(keyB), 'two runs, two different keys');
  t.equal((await stat(a)).mode & 0o777, 0o600, 'mode 0600');

  // --force also tightens a file that was left readable by others.
  const loose = path.join(dir, 'loose.key');
  await writeFile(loose, randomBytes(48), { mode: 0o644 });
  const [again, looseForced, noOut, missingDir] = await Promise.all([
    cli(['pki', 'ticket-key', '--out', a]),
    cli(['pki', 'ticket-key', '--out', loose, '--force']),
    cli(['pki', 'ticket-key']),
    cli(['pki', 'ticket-key', '--out', path.join(dir, 'nope', 'k')]),
  ]);
  t.equal(again.code, 1, 'an existing file is not overwritten without --force');
  t.match(again.stderr, /already exists; pass --force/);
  t.ok((await readFile(a)).equals(keyA), 'the file is unchanged');
  t.equal(looseForced.code, 0, looseForced.stderr);
  t.equal((await stat(loose)).mode & 0o777, 0o600, '--force leaves mode 0600 on a replaced file');
  t.equal(noOut.code, 2, '--out is required');
  t.match(noOut.stderr, /--out FILE is required/);
  t.equal(missingDir.code, 1, 'a missing directory is an error, not created');
  t.match(missingDir.stderr, /ENOENT/);

  const forced = await cli(['pki', 'ticket-key', '--out', a, '--force']);
  t.equal(forced.code, 0, forced.stderr);
  const keyA2 = await readFile(a);
  t.equal(keyA2.length, 48);
  t.notOk(keyA2.equals(keyA), '--force writes a new key');
  t.equal((await stat(a)).mode & 0o777, 0o600);
  t.same((await readdir(dir)).sort(), ['a.key', 'b.key', 'loose.key'], 'nothing else is created (no directory, no temp file)');
});

t.test('group help lists the group, and only the group', async (t) => {
  const results = await groupHelp;
  GROUP_HELP.forEach((args, i) => {
    const r = results[i]!;
    const group = args[0] === 'help' ? args[1]! : args[0]!;
    t.equal(r.code, 0, `${args.join(' ')} exits 0`);
    t.equal(r.stderr, '', `${args.join(' ')}: nothing on stderr`);
    t.match(r.stdout, new RegExp(`^Usage: mtls-gateway ${group} <command>`), `${args.join(' ')}: the group's usage`);
    for (const sub of GROUPS[group]!) t.match(r.stdout, new RegExp(`^  ${group} ${sub}\\b`, 'm'), `${args.join(' ')} lists ${group} ${sub}`);
    for (const other of ALL.filter((c) => !c.startsWith(`${group} `))) t.notMatch(r.stdout, new RegExp(`^  ${other}\\b`, 'm'), `${args.join(' ')} does not list ${other}`);
  });
});

t.test('a group alone is a usage error that shows the group', async (t) => {
  const results = await groupAlone;
  ALONE.forEach((g, i) => {
    const r = results[i]!;
    t.equal(r.code, 2, `${g} alone exits 2`);
    t.equal(r.stdout, '', `${g} alone: nothing on stdout`);
    t.match(r.stderr, new RegExp(`Usage: mtls-gateway ${g} <command>`), `${g} alone shows its usage on stderr`);
    for (const sub of GROUPS[g]!) t.match(r.stderr, new RegExp(`^  ${g} ${sub}\\b`, 'm'));
  });
  const flagOnly = results[ALONE.length]!;
  t.equal(flagOnly.code, 2, 'a group with a flag but no command is a usage error too');
});

t.test("a command's --help shows that command only", async (t) => {
  const results = await commandHelp;
  COMMANDS.forEach(([words, own], i) => {
    const r = results[i]!;
    const name = words.join(' ');
    t.equal(r.code, 0, `${name} --help exits 0`);
    t.match(r.stdout, `Usage: mtls-gateway ${name}`, `${name} --help: its usage line`);
    t.match(r.stdout, own, `${name} --help: its options`);
    for (const other of ALL.filter((c) => c !== name)) t.notMatch(r.stdout, `mtls-gateway ${other}`, `${name} --help does not show ${other}`);
    for (const g of Object.keys(GROUPS).filter((g) => g !== words[0])) t.notMatch(r.stdout, new RegExp(`\\b${g} (${GROUPS[g]!.join('|')})\\b`), `${name} --help shows nothing of ${g}`);
  });
  const whole = results[COMMANDS.length]!;
  t.equal(whole.code, 0);
  for (const c of ALL) t.match(whole.stdout, new RegExp(`^  ${c}\\b`, 'm'), `--help still lists ${c}`);
  const version = results[COMMANDS.length + 1]!;
  t.equal(version.code, 0);
  t.match(version.stdout, /^\d+\.\d+\.\d+/);
});

t.test('a mistyped command gets the closest one; exit 2', async (t) => {
  const results = await typos;
  TYPOS.forEach(([args, expected], i) => {
    const r = results[i]!;
    t.equal(r.code, 2, `${args.join(' ')} exits 2`);
    t.match(r.stderr, expected, `${args.join(' ')}: the suggestion`);
  });
  FAR.forEach(([args, expected, listed], i) => {
    const r = results[TYPOS.length + i]!;
    t.equal(r.code, 2, `${args.join(' ')} exits 2`);
    t.match(r.stderr, expected);
    t.notMatch(r.stderr, /did you mean/, `${args.join(' ')}: nothing close, no guess`);
    for (const c of listed) t.match(r.stderr, new RegExp(`^  ${c}\\b`, 'm'), `${args.join(' ')}: lists ${c}`);
  });
});
