// The log destination (src/log/buffered-fd-writer.ts) under what production gives it: a file, a pipe
// whose reader stalls, a descriptor that fails, and process.exit() with lines still buffered.
// Logging must never stop the gateway nor grow its memory without bound, and the log must say
// where lines are missing.
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { BufferedFdWriter } from '../../src/log/buffered-fd-writer.js';
import { createGatewayLogger } from '../../src/log/gateway-logger.js';

const notice = (n: number) => `${JSON.stringify({ event: 'log-lines-dropped', dropped: n })}\n`;
const line = (i: number, pad = 0) => `${JSON.stringify({ i, pad: 'x'.repeat(pad) })}\n`;
const flushed = (w: BufferedFdWriter) => new Promise<void>((resolve) => w.flush(() => resolve()));
const parse = (text: string) => text.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { i?: number; event?: string; dropped?: number });

function tempDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'gw-logw-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

t.test('every line arrives once and in order, whatever the buffer size', async (t) => {
  const dir = tempDir(t);
  for (const bufferBytes of [0, 1, 100, 4096, 65_536]) {
    const file = join(dir, `b${bufferBytes}.ndjson`);
    const fd = openSync(file, 'w');
    const w = new BufferedFdWriter({ fd, bufferBytes, flushInterval: 1_000, maxPendingBytes: 8 << 20, droppedNotice: notice });
    // Some lines while writes are in flight, some after a pause, with multi-byte characters in them.
    for (let i = 0; i < 500; i++) w.write(line(i, i % 7 === 0 ? 700 : 40).replace('xx', 'éü'));
    await new Promise((r) => setTimeout(r, 5));
    for (let i = 500; i < 1000; i++) w.write(line(i, 10));
    await flushed(w);
    w.end();
    closeSync(fd);
    const got = parse(readFileSync(file, 'utf8'));
    t.same(got.map((r) => r.i), Array.from({ length: 1000 }, (_, i) => i), `bufferBytes ${bufferBytes}: all 1000 lines, in order`);
    t.equal(w.dropped, 0, `bufferBytes ${bufferBytes}: nothing dropped`);
  }
});

t.test('the bytes written are the UTF-8 of the lines, byte for byte, whatever their size and characters', async (t) => {
  const dir = tempDir(t);
  // 1- to 4-byte characters, a lone surrogate (written as U+FFFD, as Buffer.from writes it), and
  // lines from empty to larger than any chunk the writer keeps.
  const pieces = ['a', '\u00e9', '\u20ac', '\u{1f600}', '\ud800', '\u2028', '\u0000'];
  const lines: string[] = [];
  for (let i = 0; i < 400; i++) lines.push(`${i}:${pieces[i % pieces.length]!.repeat(i % 50)}\n`);
  lines.push('');
  lines.push(`${'\u{1f600}'.repeat(70_000)}\n`);
  lines.push(`${'x'.repeat(300_000)}\n`);
  for (let i = 0; i < 50; i++) lines.push(`tail ${i} \u20ac\n`);
  const expected = Buffer.from(lines.join(''), 'utf8');
  for (const bufferBytes of [0, 1, 100, 4096, 65_536]) {
    const file = join(dir, `bytes${bufferBytes}.ndjson`);
    const fd = openSync(file, 'w');
    const w = new BufferedFdWriter({ fd, bufferBytes, flushInterval: 1_000, maxPendingBytes: 8 << 20, droppedNotice: notice });
    for (const l of lines) w.write(l);
    await flushed(w);
    w.end();
    closeSync(fd);
    t.ok(readFileSync(file).equals(expected), `bufferBytes ${bufferBytes}: ${expected.length} bytes, identical`);
  }
});

t.test('a line below the buffer size is written within flushInterval without any flush call', async (t) => {
  const file = join(tempDir(t), 'timer.ndjson');
  const fd = openSync(file, 'w');
  t.teardown(() => closeSync(fd));
  const w = new BufferedFdWriter({ fd, bufferBytes: 65_536, flushInterval: 30, maxPendingBytes: 8 << 20, droppedNotice: notice });
  t.teardown(() => w.end());
  w.write(line(1));
  t.equal(readFileSync(file, 'utf8'), '', 'not written at once: it waits for more lines');
  let text = '';
  for (let i = 0; i < 100 && text === ''; i++) {
    await new Promise((r) => setTimeout(r, 20));
    text = readFileSync(file, 'utf8');
  }
  t.equal(text, line(1), 'written by the flush timer');
});

t.test('a reader that stalls costs dropped lines, counted and marked in the log, not unbounded memory', async (t) => {
  const file = join(tempDir(t), 'stalled.ndjson');
  // The reader sleeps 600 ms before it reads anything: a full pipe (EAGAIN on a non-blocking fd)
  // while the gateway keeps logging.
  const reader = spawn(process.execPath, ['-e', `setTimeout(() => process.stdin.pipe(require('fs').createWriteStream(${JSON.stringify(file)})), 600)`], { stdio: ['pipe', 'ignore', 'inherit'] });
  const fd = (reader.stdin as unknown as { _handle: { fd: number } })._handle.fd;
  const maxPendingBytes = 64 * 1024;
  const w = new BufferedFdWriter({ fd, bufferBytes: 4096, flushInterval: 50, maxPendingBytes, droppedNotice: notice });
  const total = 4000;
  for (let i = 0; i < total; i++) w.write(line(i, 900)); // about 3.7 MB against a 64 KiB pipe and 64 KiB of memory
  t.ok(w.dropped > 0, `lines were dropped (${w.dropped}) instead of being kept in memory`);
  t.ok(w.dropped < total, 'the lines that fit were kept');
  await flushed(w); // completes once the reader drains the pipe
  for (let i = total; i < total + 10; i++) w.write(line(i, 10)); // logging goes on after the stall
  await flushed(w);
  w.end();
  reader.stdin!.end();
  await new Promise((r) => reader.once('exit', r));
  const got = parse(readFileSync(file, 'utf8'));
  const kept = got.filter((r) => r.i !== undefined).map((r) => r.i!);
  const notices = got.filter((r) => r.event === 'log-lines-dropped');
  t.same(kept, [...kept].sort((a, b) => a - b), 'the lines kept are in order');
  t.same(kept.slice(-10), Array.from({ length: 10 }, (_, i) => total + i), 'lines after the stall are all there');
  t.equal(kept.length + w.dropped, total + 10, 'every line is either written or counted as dropped');
  t.equal(notices.reduce((s, n) => s + n.dropped!, 0), w.dropped, 'the log says how many lines are missing');
  const at = got.findIndex((r) => r.event === 'log-lines-dropped');
  t.ok(at > 0 && (got[at - 1]!.i ?? -1) < (got[at + 1]!.i ?? Infinity), 'the notice sits where the lines are missing');
});

t.test('a descriptor that fails (closed, or a pipe without a reader) drops lines, never throws, and logging goes on', async (t) => {
  // EBADF: the descriptor is closed under the writer.
  const fd = openSync(join(tempDir(t), 'closed.ndjson'), 'w');
  closeSync(fd);
  const w = new BufferedFdWriter({ fd, bufferBytes: 0, flushInterval: 50, maxPendingBytes: 1 << 20, droppedNotice: notice });
  t.doesNotThrow(() => {
    for (let i = 0; i < 20; i++) w.write(line(i));
  }, 'writing to a closed descriptor does not throw');
  await flushed(w);
  t.equal(w.dropped, 20, 'every failed line is counted');
  t.doesNotThrow(() => w.flushSync(), 'flushSync on a failed descriptor does not throw');
  w.end();

  // EPIPE: the reading end is closed while its process lives on (Node ignores SIGPIPE, so the
  // write fails with EPIPE instead of killing the writer).
  const reader = spawn(process.execPath, ['-e', 'require("fs").closeSync(0); console.log("closed"); setTimeout(() => {}, 10_000)'], { stdio: ['pipe', 'pipe', 'ignore'] });
  t.teardown(() => reader.kill());
  reader.stdin!.on('error', () => {}); // the test's own stream object may see the EPIPE too
  const pfd = (reader.stdin as unknown as { _handle: { fd: number } })._handle.fd;
  await new Promise((r) => reader.stdout!.once('data', r)); // the child has closed its end
  const p = new BufferedFdWriter({ fd: pfd, bufferBytes: 100, flushInterval: 50, maxPendingBytes: 1 << 20, droppedNotice: notice });
  for (let i = 0; i < 50; i++) p.write(line(i, 20));
  await flushed(p);
  t.equal(p.dropped, 50, 'every line to a pipe without a reader is counted as dropped');
  for (let i = 0; i < 5; i++) p.write(line(i));
  await flushed(p);
  t.equal(p.dropped, 55, 'and logging goes on trying');
  p.end();
});

t.test('lines still buffered when the process calls process.exit() are written', async (t) => {
  const child = spawn(process.execPath, [...process.execArgv, new URL('../helpers/log-writer-exit-child.ts', import.meta.url).pathname, '300', '3'], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  const code = await new Promise<number | null>((r) => child.once('exit', r));
  await new Promise((r) => setImmediate(r));
  t.equal(code, 3, 'the child exited with its own code');
  const got = parse(out);
  t.same(got.map((r) => r.i), Array.from({ length: 300 }, (_, i) => i), 'all 300 lines, in order');
});

t.test('the gateway logger writes pino records and its drop notice in one format', async (t) => {
  const file = join(tempDir(t), 'logger.ndjson');
  const fd = openSync(file, 'w');
  t.teardown(() => closeSync(fd));
  // A descriptor that cannot keep up is simulated by logging faster than any write completes: the
  // first 4 KiB go to a write, the next 4 KiB wait (the limit is at least the buffer size), and
  // the rest of one synchronous burst is dropped.
  const logger = createGatewayLogger({ level: 'info', bufferBytes: 4096, flushInterval: 60_000 }, fd, 2_000);
  for (let i = 0; i < 500; i++) logger.info({ event: 'test', i }, 'line');
  await new Promise<void>((resolve) => logger.flush(() => resolve()));
  logger.warn({ event: 'after' }, 'after the gap');
  await new Promise<void>((resolve) => logger.flush(() => resolve()));
  const got = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const n = got.find((r) => r['event'] === 'log-lines-dropped');
  t.ok(n, 'a drop notice is in the log');
  t.match(n, { level: 'warn', pid: process.pid, dropped: Number, msg: /dropped/ }, 'with the level as a label, the pid and a message, like every record');
  t.ok(!Number.isNaN(Date.parse(String(n!['time']))), 'and an ISO time');
  t.equal(got.at(-1)!['event'], 'after', 'records after the gap are written');
  t.equal(got.filter((r) => r['event'] === 'test').length + Number(n!['dropped']), 500, 'kept + dropped = logged');
  t.ok(Number(n!['dropped']) > 0, 'some were dropped');
});
