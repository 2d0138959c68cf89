#!/usr/bin/env node
/**
 * Runs one demo upstream service in the foreground (docker-compose uses it):
 * `node dist/demo/upstream-main.js --name orders --listen 0.0.0.0:9443 --certs DIR`.
 */
import { parseArgs } from 'node:util';
import { startDemoUpstream } from './demo-upstream.js';

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: { name: { type: 'string' }, listen: { type: 'string' }, certs: { type: 'string' } },
    strict: true,
  });
  const m = /^(.+):(\d{1,5})$/.exec(values.listen ?? '');
  if (values.name === undefined || m === null || values.certs === undefined) {
    process.stderr.write('usage: upstream-main --name NAME --listen HOST:PORT --certs DIR\n');
    return 2;
  }
  const upstream = await startDemoUpstream({ name: values.name, host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]), certsDir: values.certs });
  process.stdout.write(`${JSON.stringify({ event: 'listening', service: upstream.name, host: upstream.host, port: upstream.port })}\n`);
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  await upstream.close();
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`upstream-main: ${(err as Error).message}\n`);
    process.exitCode = 1;
  },
);
