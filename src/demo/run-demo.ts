#!/usr/bin/env node
/**
 * `npm run demo`: the whole mesh on one machine with nothing but Node. It creates the dev PKI if
 * it is absent (next to the config: the directory of tls.clientCA), starts one small mTLS service
 * per upstream of config/gateway.yaml, starts the gateway in this process with that config, runs
 * the guided tour of real requests, prints the results and copy-paste commands, and keeps the
 * stack up until Ctrl-C (or SIGTERM), when everything drains and the process exits 0.
 *
 * Options: --config FILE (default config/gateway.yaml of this package), --once (exit after the
 * tour: 0 when every answer was the expected one, 1 otherwise). Ports come from the config;
 * DEMO_GATEWAY_PORT and DEMO_<UPSTREAM>_PORT (e.g. DEMO_ORDERS_PORT) override them, 0 meaning
 * any free port.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { ConfigError } from '../config/load-config.js';
import { ensureDemoPki } from './demo-pki.js';
import { readDemoConfig, startDemoStack, upstreamPortEnvName, type DemoStack } from './demo-stack.js';
import { colours } from './table.js';
import { formatTour, runTour } from './tour.js';

const PACKAGE_ROOT = fileURLToPath(new URL('../../', import.meta.url));

function portOverride(env: NodeJS.ProcessEnv, name: string): number | null {
  const raw = env[name];
  if (raw === undefined || raw === '') return null;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`${name} must be a port number from 0 to 65535 (got "${raw}")`);
  return port;
}

function rel(file: string): string {
  const r = path.relative(process.cwd(), file);
  return r === '' ? '.' : r.startsWith('..') || path.isAbsolute(r) ? file : r;
}

/** Shell-quotes a path for the printed commands when it needs it. */
function q(s: string): string {
  return /^[A-Za-z0-9_./:@-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { config: { type: 'string' }, once: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, strict: true });
  if (values.help) {
    process.stdout.write('usage: npm run demo [-- --config FILE] [-- --once]\n  env: DEMO_GATEWAY_PORT, DEMO_<UPSTREAM>_PORT (0 = any free port)\n');
    return 0;
  }
  const out = (s: string) => process.stdout.write(s);
  const colour = process.stdout.isTTY === true && !process.env['NO_COLOR'];
  const c = colours(colour);
  const configFile = path.resolve(process.cwd(), values.config ?? path.join(PACKAGE_ROOT, 'config', 'gateway.yaml'));

  let demoConfig;
  try {
    demoConfig = await readDemoConfig(configFile);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      return 1;
    }
    throw err;
  }
  const { certsDir, config } = demoConfig;
  const upstreamNames = Object.keys(config.upstreams);
  const upstreamPorts: Record<string, number | null> = {};
  for (const name of upstreamNames) upstreamPorts[name] = portOverride(process.env, upstreamPortEnvName(name));
  const gatewayPort = portOverride(process.env, 'DEMO_GATEWAY_PORT');

  out(`${c.bold('mtls-gateway demo')}\n`);
  const state = await ensureDemoPki(certsDir, upstreamNames, (line) => out(`  ${line}\n`));
  out(`  PKI        ${rel(certsDir)}/ ${state === 'created' ? '(created now: root and intermediate CA, gateway, upstream and client certificates, CRLs)' : state === 'regenerated' ? '(generated anew)' : '(reused)'}\n`);

  // Handlers go in first, so Ctrl-C during startup also ends in a clean stop.
  const signalled = new Promise<string>((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
  const workDir = await mkdtemp(path.join(os.tmpdir(), 'mtls-gateway-demo-'));
  const logFile = path.join(workDir, 'gateway.log');
  let stack: DemoStack | null = null;
  const stop = async (why: string) => {
    out(`\n${why}: stopping the gateway (draining) and the demo services...\n`);
    await stack?.close();
    await rm(workDir, { recursive: true, force: true });
    out('stopped\n');
  };

  try {
    const logger = pino({ level: config.log.level }, pino.destination({ dest: logFile, sync: true }));
    stack = await startDemoStack({ configFile, logger, gatewayPort, upstreamPorts });
  } catch (err) {
    await rm(workDir, { recursive: true, force: true });
    throw err;
  }
  const { address } = stack;
  for (const u of stack.upstreams) out(`  ${u.name.padEnd(10)} mTLS service on https://${u.host}:${u.port} (accepts only certificates from the dev CA)\n`);
  const base = `https://localhost:${address.port}`;
  out(`  gateway    ${base} with ${rel(configFile)} (JSON log: ${logFile})\n`);
  if (stack.overridden) out(c.dim(`             ports overridden from the environment; ${rel(configFile)} is unchanged\n`));

  out(`\n${c.bold('Tour')}: real requests over mTLS, each on a new connection\n\n`);
  const connectHost = ['0.0.0.0', '::', '127.0.0.1'].includes(address.address) ? '127.0.0.1' : address.address;
  let results;
  try {
    results = await runTour({ host: connectHost, port: address.port, servername: 'localhost', certsDir });
  } catch (err) {
    await stop('error');
    throw err;
  }
  out(formatTour(results, colour));
  const allGood = results.every((r) => r.asExpected);

  if (values.once) {
    await stop('--once');
    return allGood ? 0 : 1;
  }

  const cert = (name: string) => `--cert ${q(rel(path.join(certsDir, `client-${name}.crt`)))} --key ${q(rel(path.join(certsDir, `client-${name}.key`)))}`;
  const cacert = `--cacert ${q(rel(path.join(certsDir, 'ca-bundle.pem')))}`;
  const cli = q(rel(path.join(PACKAGE_ROOT, 'dist', 'cli', 'main.js')));
  const cfg = q(rel(configFile));
  out(
    [
      '',
      `${c.bold('Try more')} while it runs:`,
      `  curl ${cacert} ${cert('billing')} ${base}/orders/42`,
      `  curl ${cacert} ${cert('ops-admin')} -X POST ${base}/orders`,
      `  curl ${cacert} ${cert('billing')} ${base}/inventory/widgets            # 403`,
      `  curl ${cacert} ${base}/orders/42                                          # 401, no certificate`,
      `  curl ${cacert} ${cert('billing')} --path-as-is '${base}/orders/..%2Finventory/widgets'   # 400`,
      '',
      '  Why was that denied? Which routes may this certificate use?',
      `  node ${cli} policy explain --config ${cfg} --cert ${q(rel(path.join(certsDir, 'client-billing.crt')))} --path /inventory/widgets`,
      `  node ${cli} cert inspect ${q(rel(path.join(certsDir, 'client-ops-admin.crt')))} --config ${cfg}`,
      '',
      '  Issue and revoke your own certificates (the gateway reloads the CRL file by itself):',
      `  node ${cli} pki issue --dir ${q(rel(certsDir))} --name reporting --spiffe spiffe://example.org/ns/default/sa/billing`,
      `  node ${cli} pki revoke --dir ${q(rel(certsDir))} --cert ${q(rel(path.join(certsDir, 'client-ops-admin.crt')))}`,
      '',
      `${allGood ? 'The stack keeps running.' : c.red('Some answers were not the expected ones (see CHECK above); the stack keeps running.')} Press Ctrl-C to stop.`,
      '',
    ].join('\n'),
  );
  await stop(await signalled);
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    const e = err as { message?: string; issues?: { path: string; message: string }[] };
    process.stderr.write(`demo: ${e.message ?? String(err)}\n`);
    for (const i of e.issues ?? []) process.stderr.write(`  ${i.path}: ${i.message}\n`);
    process.exitCode = 1;
  },
);
