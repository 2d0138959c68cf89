#!/usr/bin/env node
/**
 * The CLI: `mtls-gateway start`, `config check` and `config schema`. It parses arguments, builds the
 * logger and hands everything else to buildGateway; the process concerns (signals, workers, exit
 * codes) live here and nowhere else.
 */
import { parseArgs } from 'node:util';
import { runConfigCheck, runConfigSchema } from './config-commands.js';
import { runPkiInit } from './pki-commands.js';
import { runStart } from './start-command.js';

const USAGE = `Usage: mtls-gateway <command> [options]

Commands:
  start --config FILE [--workers N]   run the gateway in the foreground
  config check --config FILE          validate a config file and the files it names
  config schema                       print the JSON Schema of the config file
  pki init [--out DIR] [--days N] [--force]
                                      write a development PKI (default DIR: certs)

--config may be replaced by the MTLS_GATEWAY_CONFIG environment variable.
Exit codes: 0 ok, 1 invalid config or startup failure, 2 usage error.
`;

export async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      config: { type: 'string', short: 'c' },
      workers: { type: 'string', short: 'w' },
      out: { type: 'string', short: 'o' },
      days: { type: 'string' },
      force: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean' },
    },
  });
  if (values.version) {
    const { readFile } = await import('node:fs/promises');
    const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    process.stdout.write(`${pkg.version}\n`);
    return 0;
  }
  const [cmd, sub] = positionals;
  if (values.help || cmd === undefined || cmd === 'help') {
    process.stdout.write(USAGE);
    return cmd === undefined && !values.help ? 2 : 0;
  }
  if (cmd === 'start') return runStart({ configFlag: values.config, workers: values.workers });
  if (cmd === 'config' && sub === 'check') return runConfigCheck({ configFlag: values.config });
  if (cmd === 'config' && sub === 'schema') return runConfigSchema();
  if (cmd === 'pki' && sub === 'init') return runPkiInit({ out: values.out, force: values.force ?? false, days: values.days });
  process.stderr.write(`mtls-gateway: unknown command "${positionals.join(' ')}"\n\n${USAGE}`);
  return 2;
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
    if (e?.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' || e?.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' || e?.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
      process.stderr.write(`mtls-gateway: ${e.message}\n\n${USAGE}`);
      process.exitCode = 2;
      return;
    }
    process.stderr.write(`mtls-gateway: ${e?.message ?? String(err)}\n`);
    process.exitCode = 1;
  },
);
