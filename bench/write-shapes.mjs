// What the shape of one answer's write costs on a TLS socket, in one process (after `npm run build`):
//   node bench/write-shapes.mjs [--rounds 6] [--writes 50000] [--body 100]
// A loopback TLS 1.3 pair with the bench's certificates (lib/pki.mjs); the client writes one
// keep-alive answer (a 214-byte head and a --body byte body) per turn of the event loop, waiting for
// the write to complete, as the gateway writes one answer per upstream read. Shapes:
// - writev: cork, write(head, 'latin1'), write(body), uncork (node:net turns it into a writev);
// - writev at tick end: the same, uncorked in a microtask (the lean exchange before 73b2345);
// - one buffer: head and body copied into one buffer, one write (relay-buffer.ts headWithBody);
// - one buffer at tick end: the same, corked to the end of the tick.
// Figures are µs of process CPU (both ends, all threads) per answer, median over interleaved rounds.
// This machine's spread between rounds is wide: compare within one run only.
import { once } from 'node:events';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ensurePki } from './lib/pki.mjs';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '6' }, writes: { type: 'string', default: '50000' }, body: { type: 'string', default: '100' } } });
const rounds = Number(values.rounds);
const writes = Number(values.writes);
const checkout = join(dirname(fileURLToPath(import.meta.url)), '..');
const pki = await ensurePki(checkout, join(checkout, 'bench/.work'), (m) => console.error(m));

const head = 'HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 100\r\nx-request-id: 0a1b2c3d-1111-2222-3333-444455556666\r\nDate: Sat, 05 Dec 2026 15:00:00 GMT\r\nConnection: keep-alive\r\nKeep-Alive: timeout=300\r\n\r\n';
const body = Buffer.alloc(Number(values.body), 0x61);

function oneBuffer() {
  const out = Buffer.allocUnsafe(head.length + body.length);
  out.write(head, 0, 'latin1');
  body.copy(out, head.length);
  return out;
}

const SHAPES = {
  writev: (s, done) => { s.cork(); s.write(head, 'latin1'); s.write(body, done); s.uncork(); },
  'writev at tick end': (s, done) => { s.cork(); s.write(head, 'latin1'); s.write(body, done); queueMicrotask(() => s.uncork()); },
  'one buffer': (s, done) => { s.write(oneBuffer(), done); },
  'one buffer at tick end': (s, done) => { s.cork(); s.write(oneBuffer(), done); queueMicrotask(() => s.uncork()); },
};

const server = tls.createServer({ cert: readFileSync(pki.serverCert), key: readFileSync(pki.serverKey) }, (s) => s.on('data', () => {}));
server.listen(0, '127.0.0.1');
await once(server, 'listening');
const socket = tls.connect({ host: '127.0.0.1', port: server.address().port, ca: readFileSync(pki.caBundle), servername: 'localhost' });
await once(socket, 'secureConnect');

/** µs of process CPU per answer written in `shape`, one per turn. */
async function measure(shape) {
  const write = SHAPES[shape];
  const t0 = process.cpuUsage();
  for (let i = 0; i < writes; i++) {
    await new Promise((resolve) => write(socket, resolve));
    await new Promise(setImmediate);
  }
  const u = process.cpuUsage(t0);
  return (u.user + u.system) / writes;
}

const results = Object.fromEntries(Object.keys(SHAPES).map((k) => [k, []]));
for (const shape of Object.keys(SHAPES)) await measure(shape); // warm-up
for (let r = 0; r < rounds; r++) for (const shape of Object.keys(SHAPES)) results[shape].push(await measure(shape));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ref = median(results.writev);
console.log(`Node ${process.version}, ${writes} answers per round, ${rounds} rounds, body ${body.length} B\n`);
console.log('| shape | µs CPU per answer (median) | − writev | rounds |\n|---|---:|---:|---|');
for (const [shape, xs] of Object.entries(results)) console.log(`| ${shape} | ${median(xs).toFixed(2)} | ${(median(xs) - ref).toFixed(2)} | ${xs.map((x) => x.toFixed(2)).join(', ')} |`);
socket.destroy();
server.close();
