// What one access record costs the gateway's process, by destination, in one process, interleaved
// (after `npm run build`):
//   node bench/log-destination-cost.mjs [--out FILE] [--rounds 8] [--lines 50000]
// - gateway: createGatewayLogger() as the gateway runs it (src/log/buffered-fd-writer.ts, 4 KiB
//   buffer);
// - sonic-boom: pino.destination() with the options the gateway used before issue 14 (4 KiB
//   minLength, asynchronous, periodic flush);
// - serialize only: pino with a destination that discards each line, the floor of any destination.
// Every logger writes the same record (an access record of about 625 bytes, with the connection's
// identity as child bindings) to FILE (default /dev/null; a file on the gateway's disk counts the
// kernel's write cost too). Figures are µs of process CPU (all threads: the thread-pool writes count)
// per record, median over rounds. This machine's spread between rounds is wide; compare within one
// run only.
import { openSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { createGatewayLogger } from '../dist/log/gateway-logger.js';
import { cachedIsoTime } from '../dist/log/cached-iso-time.js';

const { values } = parseArgs({ options: { out: { type: 'string', default: '/dev/null' }, rounds: { type: 'string', default: '8' }, lines: { type: 'string', default: '50000' } } });
const rounds = Number(values.rounds);
const lines = Number(values.lines);
const fd = openSync(values.out, 'a');

const pinoOptions = { level: 'info', base: { pid: process.pid }, timestamp: cachedIsoTime(), formatters: { level: (label) => ({ level: label }) } };
const client = {
  client: {
    subject: 'CN=orders-client,OU=Payments,O=Example Corp',
    issuer: 'CN=Example Issuing CA,O=Example Corp',
    serial: '5A3F9C1B2D4E6F708192A3B4C5D6E7F8',
    fingerprint: `${'AB:CD:'.repeat(15)}EF:01`,
    spiffe: 'spiffe://example.org/ns/payments/sa/orders',
  },
};
const record = () => ({
  reqId: crypto.randomUUID(),
  httpVersion: '1.1',
  method: 'GET',
  path: '/api/orders/123',
  route: 'orders',
  rule: 'orders-read',
  upstream: 'orders',
  decision: 'allow',
  target: 'https://127.0.0.1:9443',
  status: 200,
  bytesOut: 100,
  durationMs: 0.812,
});

const loggers = {
  gateway: createGatewayLogger({ level: 'info', bufferBytes: 4096, flushInterval: 250 }, fd).child(client),
  'sonic-boom': pino(pinoOptions, pino.destination({ dest: fd, sync: false, minLength: 4096, periodicFlush: 250 })).child(client),
  'serialize only': pino(pinoOptions, { write: () => true }).child(client),
};

async function run(log) {
  const before = process.cpuUsage();
  for (let i = 0; i < lines; i++) {
    log.info(record(), 'request');
    // Let writes complete as they would between requests.
    if (i % 50 === 49) await new Promise((resolve) => setImmediate(resolve));
  }
  await new Promise((resolve) => log.flush(() => resolve()));
  await new Promise((resolve) => setTimeout(resolve, 20));
  const used = process.cpuUsage(before);
  return (used.user + used.system) / lines;
}

const results = Object.fromEntries(Object.keys(loggers).map((k) => [k, []]));
for (const log of Object.values(loggers)) await run(log); // warm-up
for (let r = 0; r < rounds; r++) for (const [name, log] of Object.entries(loggers)) results[name].push(await run(log));
const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
console.log(`Node ${process.version}, ${lines} records per round, ${rounds} rounds, to ${values.out}`);
console.log('| destination | µs CPU per record (median) | above serialize only | rounds |');
console.log('|---|---:|---:|---|');
const floor = median(results['serialize only']);
for (const [name, v] of Object.entries(results)) {
  const m = median(v);
  console.log(`| ${name} | ${m.toFixed(2)} | ${(m - floor).toFixed(2)} | ${v.map((x) => x.toFixed(1)).join(', ')} |`);
}

