#!/usr/bin/env node
/**
 * The CLI: one table of commands, each with its own options and usage text, parsed strictly so
 * that a flag a command does not take is a usage error rather than silently ignored. The whole
 * USAGE, a group's usage (`pki --help`) and one command's (`pki issue --help`) are all built from
 * that table, so they cannot drift apart. The process concerns (signals, workers, exit codes) live
 * here and in the command modules, nowhere else.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';

// Command modules load on demand: `pki init` need not load fastify, nor `--help` anything.
const start = () => import('./start-command.js');
const configCommands = () => import('./config-commands.js');
const certInspect = () => import('./cert-inspect.js');
const policyExplain = () => import('./policy-explain.js');
const pki = () => import('./pki-commands.js');

type Options = NonNullable<ParseArgsConfig['options']>;

const CONFIG = { config: { type: 'string', short: 'c' } } as const satisfies Options;
const HELP = { help: { type: 'boolean', short: 'h' } } as const satisfies Options;

const CONFIG_ENV_NOTE = '--config may be replaced by the MTLS_GATEWAY_CONFIG environment variable.';

interface Command {
  readonly words: readonly string[];
  /**
   * The arguments after the command words, as shown in the usage: the first line, then any
   * continuation lines (indented under the first argument when printed).
   */
  readonly synopsis: readonly string[];
  /** What the command does, one sentence or two; wrapped when printed. */
  readonly summary: string;
  /** Printed with this command's own help and its group's. */
  readonly notes?: readonly string[];
  readonly options: Options;
  /** Positional arguments after the command words. */
  readonly positionals?: number;
  run(values: Record<string, string | boolean | string[] | undefined>, positionals: string[]): Promise<number>;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const strs = (v: unknown): string[] | undefined => (Array.isArray(v) ? (v as string[]) : undefined);
const bool = (v: unknown): boolean => v === true;

const COMMANDS: readonly Command[] = [
  {
    words: ['start'],
    synopsis: ['--config FILE [--workers N]'],
    summary: 'run the gateway in the foreground',
    notes: [CONFIG_ENV_NOTE],
    options: { ...CONFIG, workers: { type: 'string', short: 'w' } },
    run: async (v) => (await start()).runStart({ configFlag: str(v['config']), workers: str(v['workers']) }),
  },
  {
    words: ['config', 'check'],
    synopsis: ['--config FILE'],
    summary: 'validate a config file and the files it names',
    notes: [CONFIG_ENV_NOTE],
    options: CONFIG,
    run: async (v) => (await configCommands()).runConfigCheck({ configFlag: str(v['config']) }),
  },
  {
    words: ['config', 'schema'],
    synopsis: [],
    summary: 'print the JSON Schema of the config file',
    options: {},
    run: async () => (await configCommands()).runConfigSchema(),
  },
  {
    words: ['cert', 'inspect'],
    synopsis: ['FILE [--config FILE] [--json]'],
    summary: "the certificate's identity as the gateway sees it and, with --config, the checks before policy and the routes it may use",
    notes: ['MTLS_GATEWAY_CONFIG is not read here: pass --config to check the certificate against a config.'],
    options: { ...CONFIG, json: { type: 'boolean' } },
    positionals: 1,
    run: async (v, p) => (await certInspect()).runCertInspect({ file: p[0], configFlag: str(v['config']), json: bool(v['json']) }),
  },
  {
    words: ['policy', 'explain'],
    synopsis: ['--config FILE --cert FILE --path /PATH [--method GET] [--host HOST]', '[--expect allow|deny] [--json]'],
    summary: 'the decision for one request and why; exit 0 allow, 3 deny',
    notes: [CONFIG_ENV_NOTE, 'Exit codes: 0 allow, 3 deny (with --expect: 0 as expected, 3 not), 1 invalid config, 2 usage error.'],
    options: {
      ...CONFIG,
      cert: { type: 'string' },
      method: { type: 'string', short: 'X' },
      path: { type: 'string' },
      host: { type: 'string' },
      expect: { type: 'string' },
      json: { type: 'boolean' },
    },
    run: async (v) =>
      (await policyExplain()).runPolicyExplain({
        configFlag: str(v['config']),
        cert: str(v['cert']),
        method: str(v['method']),
        path: str(v['path']),
        host: str(v['host']),
        expect: str(v['expect']),
        json: bool(v['json']),
      }),
  },
  {
    words: ['pki', 'init'],
    synopsis: ['[--out DIR] [--days N] [--force] [--if-absent]'],
    summary: 'write a development PKI (default DIR: certs)',
    options: { out: { type: 'string', short: 'o' }, days: { type: 'string' }, force: { type: 'boolean' }, 'if-absent': { type: 'boolean' } },
    run: async (v) => (await pki()).runPkiInit({ out: str(v['out']), days: str(v['days']), force: bool(v['force']), ifAbsent: bool(v['if-absent']) }),
  },
  {
    words: ['pki', 'issue'],
    synopsis: [
      '--name NAME [--dir DIR] [--cn CN] [--ou OU]... [--o O] [--spiffe URI]',
      '[--uri URI]... [--dns NAME]... [--ip IP]... [--email ADDR]... [--days N]',
      '[--server] [--force]',
    ],
    summary: 'add a client (or --server) certificate signed by the intermediate CA: DIR/client-NAME.crt and .key',
    options: {
      dir: { type: 'string' },
      name: { type: 'string' },
      cn: { type: 'string' },
      ou: { type: 'string', multiple: true },
      o: { type: 'string' },
      spiffe: { type: 'string' },
      uri: { type: 'string', multiple: true },
      dns: { type: 'string', multiple: true },
      ip: { type: 'string', multiple: true },
      email: { type: 'string', multiple: true },
      days: { type: 'string' },
      server: { type: 'boolean' },
      force: { type: 'boolean' },
    },
    run: async (v) =>
      (await pki()).runPkiIssue({
        dir: str(v['dir']),
        name: str(v['name']),
        cn: str(v['cn']),
        ou: strs(v['ou']),
        o: str(v['o']),
        spiffe: str(v['spiffe']),
        uri: strs(v['uri']),
        dns: strs(v['dns']),
        ip: strs(v['ip']),
        email: strs(v['email']),
        days: str(v['days']),
        server: bool(v['server']),
        force: bool(v['force']),
      }),
  },
  {
    words: ['pki', 'revoke'],
    synopsis: ['(--cert FILE | --serial HEX [--ca intermediate|root]) [--dir DIR]', '[--reason REASON]'],
    summary: "add a certificate to its issuer's CRL and re-sign it",
    options: { dir: { type: 'string' }, cert: { type: 'string' }, serial: { type: 'string' }, ca: { type: 'string' }, reason: { type: 'string' } },
    run: async (v) => (await pki()).runPkiRevoke({ dir: str(v['dir']), cert: str(v['cert']), serial: str(v['serial']), ca: str(v['ca']), reason: str(v['reason']) }),
  },
  {
    words: ['pki', 'crl'],
    synopsis: ['[--dir DIR]'],
    summary: 're-sign both CRLs with fresh dates (same entries)',
    options: { dir: { type: 'string' } },
    run: async (v) => (await pki()).runPkiCrl({ dir: str(v['dir']) }),
  },
  {
    words: ['pki', 'ticket-key'],
    synopsis: ['--out FILE [--force]'],
    summary: 'write a TLS session ticket key file (48 random bytes, mode 0600) for tls.sessionTickets.keyFile, shared by every worker and replica',
    options: { out: { type: 'string', short: 'o' }, force: { type: 'boolean' } },
    run: async (v) => (await pki()).runPkiTicketKey({ out: str(v['out']), force: bool(v['force']) }),
  },
];

// ---- usage text, all of it derived from COMMANDS ----

/** The column at which a command's summary starts in a command list. */
const SUMMARY_COLUMN = 38;
const SUMMARY_WIDTH = 58;

function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter((w) => w !== '')) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line === '' ? word : `${line} ${word}`;
    }
  }
  if (line !== '') lines.push(line);
  return lines;
}

/** `prefix` + the command words + its synopsis, continuation lines aligned under the first argument. */
function synopsisLines(c: Command, prefix: string): string[] {
  const head = `${prefix}${c.words.join(' ')}`;
  const [first, ...rest] = c.synopsis;
  const indent = ' '.repeat(head.length + 1);
  return [first === undefined ? head : `${head} ${first}`, ...rest.map((l) => indent + l)];
}

/** One command as an entry of a command list: synopsis, then the summary at SUMMARY_COLUMN. */
function listEntry(c: Command): string {
  const lines = synopsisLines(c, '  ');
  const summary = wrap(c.summary, SUMMARY_WIDTH);
  const pad = ' '.repeat(SUMMARY_COLUMN);
  const last = lines[lines.length - 1]!;
  if (last.length <= SUMMARY_COLUMN - 3 && summary.length > 0) {
    lines[lines.length - 1] = last.padEnd(SUMMARY_COLUMN) + summary.shift()!;
  }
  return [...lines, ...summary.map((l) => pad + l)].join('\n') + '\n';
}

const GROUPS: readonly string[] = [...new Set(COMMANDS.filter((c) => c.words.length > 1).map((c) => c.words[0]!))];
const TOP_LEVEL: readonly string[] = [...new Set(COMMANDS.map((c) => c.words[0]!))];
const inGroup = (group: string): Command[] => COMMANDS.filter((c) => c.words.length > 1 && c.words[0] === group);
const subcommands = (group: string): string[] => inGroup(group).map((c) => c.words[1]!);

const USAGE = `Usage: mtls-gateway <command> [options]

Commands:
${COMMANDS.map(listEntry).join('')}
--config may be replaced by the MTLS_GATEWAY_CONFIG environment variable (not for cert inspect).
Exit codes: 0 ok, 1 invalid config or startup failure, 2 usage error,
            3 policy explain: denied (or, with --expect, not the expected answer).
Run "mtls-gateway <command> --help" for one command or group, e.g. "mtls-gateway pki --help".
`;

function groupUsage(group: string): string {
  const commands = inGroup(group);
  const notes = [...new Set(commands.flatMap((c) => c.notes ?? []))];
  return (
    `Usage: mtls-gateway ${group} <command> [options]\n\nCommands:\n${commands.map(listEntry).join('')}\n` +
    notes.map((n) => `${n}\n`).join('') +
    `Run "mtls-gateway ${group} <command> --help" for one command.\n`
  );
}

function commandUsage(c: Command): string {
  const summary = wrap(c.summary, 76).map((l) => `  ${l}\n`).join('');
  const notes = (c.notes ?? []).map((n) => `${n}\n`).join('');
  return `${synopsisLines(c, 'Usage: mtls-gateway ').join('\n')}\n\n${summary}${notes === '' ? '' : `\n${notes}`}`;
}

// ---- suggestions for mistyped commands and options ----

/** Optimal-string-alignment distance: Levenshtein plus the swap of two adjacent characters. */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * The candidate closest to `input`: within 40% of the longer word's length (at least 1, at most
 * 3 edits), or else the only candidate `input` is a prefix of (3 characters or more). Ties go to
 * the earlier candidate.
 */
function closest(input: string, candidates: readonly string[]): string | undefined {
  const x = input.toLowerCase();
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = editDistance(x, c);
    const limit = Math.min(3, Math.max(1, Math.floor(0.4 * Math.max(x.length, c.length))));
    if (d <= limit && d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  if (best === undefined && x.length >= 3) {
    const prefixed = candidates.filter((c) => c.startsWith(x));
    if (prefixed.length === 1) best = prefixed[0];
  }
  return best;
}

class UsageError extends Error {
  /** Printed after the message: the usage that applies, or a pointer to it. */
  constructor(
    message: string,
    readonly usage: string = USAGE,
  ) {
    super(message);
  }
}

const isWord = (a: string | undefined): a is string => a !== undefined && !a.startsWith('-');
const isHelp = (a: string | undefined): boolean => a === '--help' || a === '-h';
const helpHint = (group?: string): string => `Run "mtls-gateway${group === undefined ? '' : ` ${group}`} --help" for the list of commands.\n`;

/** The usage error for argv that names no command: the closest one if any is close, else the list. */
function unknownCommand(argv: string[]): UsageError {
  const [first = '', second] = argv;
  if (first.startsWith('-')) {
    const guess = closest(first.replace(/^-+/, ''), ['help', 'version']);
    return guess === undefined
      ? new UsageError(`unknown option "${first}"`)
      : new UsageError(`unknown option "${first}"; did you mean "--${guess}"?`, helpHint());
  }
  if (GROUPS.includes(first)) {
    const typed = `${first} ${second}`;
    const guess = closest(second!, subcommands(first));
    return guess === undefined
      ? new UsageError(`unknown command "${typed}"`, groupUsage(first))
      : new UsageError(`unknown command "${typed}"; did you mean "${first} ${guess}"?`, helpHint(first));
  }
  const guess = closest(first, [...TOP_LEVEL, 'help']);
  if (guess === undefined) return new UsageError(`unknown command "${first}"`);
  if (GROUPS.includes(guess) && isWord(second)) {
    const sub = subcommands(guess).includes(second) ? second : closest(second, subcommands(guess));
    if (sub !== undefined) return new UsageError(`unknown command "${first} ${second}"; did you mean "${guess} ${sub}"?`, helpHint(guess));
  }
  return new UsageError(`unknown command "${first}"; did you mean "${guess}"?`, helpHint());
}

/** A parseArgs error as a usage error of `command`, with the closest option when one was mistyped. */
function optionError(err: { code: string; message: string }, command: Command): UsageError {
  const name = /^Unknown option '(--?[^']+)'/.exec(err.message)?.[1];
  if (err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && name !== undefined && name.startsWith('--')) {
    const guess = closest(name.slice(2), [...Object.keys(command.options), 'help']);
    if (guess !== undefined) return new UsageError(`Unknown option '${name}'; did you mean "--${guess}"?`, commandUsage(command));
  }
  return new UsageError(err.message, commandUsage(command));
}

export async function main(argv: string[]): Promise<number> {
  if (argv[0] === '--version') {
    const { readFile } = await import('node:fs/promises');
    const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    process.stdout.write(`${pkg.version}\n`);
    return 0;
  }
  if (argv.length === 0) {
    process.stdout.write(USAGE);
    return 2;
  }
  if (argv[0] === 'help' || isHelp(argv[0])) {
    // `help pki`, `help pki issue`: the same as `pki --help`, `pki issue --help`.
    if (isWord(argv[1])) return main([...argv.slice(1).filter(isWord), '--help']);
    process.stdout.write(USAGE);
    return 0;
  }
  const group = argv[0]!;
  if (GROUPS.includes(group) && !isWord(argv[1])) {
    if (argv.slice(1).some(isHelp)) {
      process.stdout.write(groupUsage(group));
      return 0;
    }
    throw new UsageError(`"${group}" needs a command: ${subcommands(group).join(', ')}`, groupUsage(group));
  }
  const command = COMMANDS.find((c) => c.words.every((w, i) => argv[i] === w));
  if (command === undefined) throw unknownCommand(argv);
  let parsed;
  try {
    parsed = parseArgs({
      args: argv.slice(command.words.length),
      allowPositionals: (command.positionals ?? 0) > 0,
      strict: true,
      options: { ...command.options, ...HELP },
    });
  } catch (err) {
    const e = err as { code?: unknown; message: string };
    if (typeof e.code === 'string' && e.code.startsWith('ERR_PARSE_ARGS_')) throw optionError({ code: e.code, message: e.message }, command);
    throw err;
  }
  const { values, positionals } = parsed;
  if (values['help']) {
    process.stdout.write(commandUsage(command));
    return 0;
  }
  if (positionals.length > (command.positionals ?? 0)) {
    throw new UsageError(`unexpected argument "${positionals[command.positionals ?? 0]}"`, commandUsage(command));
  }
  return command.run(values, positionals);
}

// A closed pipe (`mtls-gateway pki init | head`) is not an error worth a stack trace.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw err;
});

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== -1) process.exitCode = code;
  },
  (err: unknown) => {
    const e = err as { code?: string; message?: string };
    if (err instanceof UsageError) {
      process.stderr.write(`mtls-gateway: ${err.message}\n\n${err.usage}`);
      process.exitCode = 2;
      return;
    }
    if (typeof e?.code === 'string' && e.code.startsWith('ERR_PARSE_ARGS_')) {
      process.stderr.write(`mtls-gateway: ${e.message}\n\n${USAGE}`);
      process.exitCode = 2;
      return;
    }
    process.stderr.write(`mtls-gateway: ${e?.message ?? String(err)}\n`);
    process.exitCode = 1;
  },
);
