// log.bufferBytes accepts 0 to 65,536, and every value must give a working logger: with sonic-boom
// (the destination until issue 14), which refuses a buffer (minLength) that is not below its
// largest single write, a gateway configured with `bufferBytes: 65536` exited at startup with
// "minLength should be smaller than maxWrite". Each size here writes lines longer than a buffer in
// total, then flushes as on exit; every line must arrive whole and in order.
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { pino } from 'pino';
import { createGatewayLogger } from '../../src/log/gateway-logger.js';

interface Destination {
  flush(cb: () => void): void;
  flushSync(): void;
  end(): void;
}

t.test('every log.bufferBytes the schema allows starts and delivers every line', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gw-logger-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const bufferBytes of [0, 1, 4096, 16_383, 16_384, 16_385, 65_536]) {
    const file = join(dir, `log-${bufferBytes}.ndjson`);
    const fd = openSync(file, 'w');
    const logger = createGatewayLogger({ level: 'info', bufferBytes, flushInterval: 250 }, fd);
    const lines = 200;
    for (let i = 0; i < lines; i++) logger.info({ event: 'test', i, pad: 'x'.repeat(300) }, 'line');
    // As on exit: whatever is still buffered is written synchronously, then the destination ends.
    const stream = (logger as unknown as Record<symbol, Destination>)[pino.symbols.streamSym]!;
    // These lines went out in writes on the thread pool; the next ones, fewer than a buffer, are
    // written synchronously, as on exit.
    await new Promise<void>((resolve) => stream.flush(resolve));
    const more = bufferBytes >= 16_383 ? 40 : 0;
    for (let i = lines; i < lines + more; i++) logger.info({ event: 'test', i, pad: 'x'.repeat(300) }, 'line');
    stream.flushSync();
    // Ending the destination stops its flush timer.
    stream.end();
    closeSync(fd);
    const got = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { i: number; level: string; pid: number });
    t.equal(got.length, lines + more, `bufferBytes ${bufferBytes}: every line written`);
    t.same(got.map((r) => r.i), Array.from({ length: lines + more }, (_, i) => i), `bufferBytes ${bufferBytes}: in order`);
    t.equal(got[0]?.level, 'info', `bufferBytes ${bufferBytes}: the level as a label`);
  }
});
