#!/usr/bin/env node
/**
 * Runs the demo tour against a gateway that is already running (the docker-compose client
 * container does this): `node dist/demo/tour-main.js --gateway https://gateway.local:8443
 * --certs DIR`. Exit 0 when every answer was the expected one, 1 otherwise.
 */
import { parseArgs } from 'node:util';
import { formatTour, runTour } from './tour.js';

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { gateway: { type: 'string' }, certs: { type: 'string' }, servername: { type: 'string' } }, strict: true });
  if (values.gateway === undefined || values.certs === undefined) {
    process.stderr.write('usage: tour-main --gateway https://HOST:PORT --certs DIR [--servername NAME]\n');
    return 2;
  }
  const url = new URL(values.gateway);
  const results = await runTour({
    host: url.hostname.replace(/^\[|\]$/g, ''),
    port: Number(url.port || 443),
    servername: values.servername ?? url.hostname,
    certsDir: values.certs,
  });
  process.stdout.write(formatTour(results, process.stdout.isTTY === true && !process.env['NO_COLOR']));
  return results.every((r) => r.asExpected) ? 0 : 1;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`tour: ${(err as Error).message}\n`);
    process.exitCode = 1;
  },
);
