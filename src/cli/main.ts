#!/usr/bin/env node
/**
 * The CLI: one table of commands, each with its own options, parsed strictly so that a flag a
 * command does not take is a usage error rather than silently ignored. The process concerns
 * (signals, workers, exit codes) live here and in the command modules, nowhere else.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';

// Command modules load on demand: `pki init` need not load fastify, nor `--help` anything.
const start = () => import('./start-command.js');
const configCommands = () => import('./config-commands.js');
const certInspect = () => import('./cert-inspect.js');
const policyExplain = () => import('./policy-explain.js');
const pki = () => import('./pki-commands.js');

const USAGE = `Usage: mtls-gateway <command> [options]

Commands:
  start --config FILE [--workers N]   run the gateway in the foreground
  config check --config FILE          validate a config file and the files it names
  config schema                       print the JSON Schema of the config file
  cert inspect FILE [--config FILE] [--json]
                                      the certificate's identity as the gateway sees it and,
                                      with --config, the checks before policy and the routes
                                      it may use
  policy explain --config FILE --cert FILE --path /PATH [--method GET] [--host HOST]
                 [--expect allow|deny] [--json]
                                      the decision for one request and why; exit 0 allow, 3 deny
  pki init [--out DIR] [--days N] [--force] [--if-absent]
                                      write a development PKI (default DIR: certs)
  pki issue --name NAME [--dir DIR] [--cn CN] [--ou OU]... [--o O] [--spiffe URI]
            [--uri URI]... [--dns NAME]... [--ip IP]... [--email ADDR]... [--days N]
            [--server] [--force]
                                      add a client (or --server) certificate signed by the
                                      intermediate CA: DIR/client-NAME.crt and .key
  pki revoke (--cert FILE | --serial HEX [--ca intermediate|root]) [--dir DIR]
             [--reason REASON]        add a certificate to its issuer's CRL and re-sign it
  pki crl [--dir DIR]                 re-sign both CRLs with fresh dates (same entries)

--config may be replaced by the MTLS_GATEWAY_CONFIG environment variable (not for cert inspect).
Exit codes: 0 ok, 1 invalid config or startup failure, 2 usage error,
            3 policy explain: denied (or, with --expect, not the expected answer).
`;

type Options = NonNullable<ParseArgsConfig['options']>;

const CONFIG = { config: { type: 'string', short: 'c' } } as const satisfies Options;
const HELP = { help: { type: 'boolean', short: 'h' } } as const satisfies Options;

interface Command {
  readonly words: readonly string[];
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
    options: { ...CONFIG, workers: { type: 'string', short: 'w' } },
    run: async (v) => (await start()).runStart({ configFlag: str(v['config']), workers: str(v['workers']) }),
  },
  { words: ['config', 'check'], options: CONFIG, run: async (v) => (await configCommands()).runConfigCheck({ configFlag: str(v['config']) }) },
  { words: ['config', 'schema'], options: {}, run: async () => (await configCommands()).runConfigSchema() },
  {
    words: ['cert', 'inspect'],
    options: { ...CONFIG, json: { type: 'boolean' } },
    positionals: 1,
    run: async (v, p) => (await certInspect()).runCertInspect({ file: p[0], configFlag: str(v['config']), json: bool(v['json']) }),
  },
  {
    words: ['policy', 'explain'],
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
    options: { out: { type: 'string', short: 'o' }, days: { type: 'string' }, force: { type: 'boolean' }, 'if-absent': { type: 'boolean' } },
    run: async (v) => (await pki()).runPkiInit({ out: str(v['out']), days: str(v['days']), force: bool(v['force']), ifAbsent: bool(v['if-absent']) }),
  },
  {
    words: ['pki', 'issue'],
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
    options: { dir: { type: 'string' }, cert: { type: 'string' }, serial: { type: 'string' }, ca: { type: 'string' }, reason: { type: 'string' } },
    run: async (v) => (await pki()).runPkiRevoke({ dir: str(v['dir']), cert: str(v['cert']), serial: str(v['serial']), ca: str(v['ca']), reason: str(v['reason']) }),
  },
  { words: ['pki', 'crl'], options: { dir: { type: 'string' } }, run: async (v) => (await pki()).runPkiCrl({ dir: str(v['dir']) }) },
];

class UsageError extends Error {}

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
  if (argv[0] === 'help' || argv[0] === '--help' || argv[0] === '-h') {
    process.stdout.write(USAGE);
    return 0;
  }
  const command = COMMANDS.find((c) => c.words.every((w, i) => argv[i] === w));
  if (command === undefined) {
    const words = argv.filter((a) => !a.startsWith('-')).slice(0, 2).join(' ');
    throw new UsageError(`unknown command "${words}"`);
  }
  const { values, positionals } = parseArgs({
    args: argv.slice(command.words.length),
    allowPositionals: (command.positionals ?? 0) > 0,
    strict: true,
    options: { ...command.options, ...HELP },
  });
  if (values['help']) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (positionals.length > (command.positionals ?? 0)) throw new UsageError(`unexpected argument "${positionals[command.positionals ?? 0]}"`);
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
    if (err instanceof UsageError || (typeof e?.code === 'string' && e.code.startsWith('ERR_PARSE_ARGS_'))) {
      process.stderr.write(`mtls-gateway: ${e.message}\n\n${USAGE}`);
      process.exitCode = 2;
      return;
    }
    process.stderr.write(`mtls-gateway: ${e?.message ?? String(err)}\n`);
    process.exitCode = 1;
  },
);
