// log.bufferBytes accepts 0 to 65,536, and every value must give a working logger: sonic-boom
// refuses a buffer (minLength) that is not below its largest single write (16 KiB by default),
// and before this was pinned a gateway configured with `bufferBytes: 65536` exited at startup with
// "minLength should be smaller than maxWrite". Each size here writes lines longer than a buffer in
// total, then flushes as on exit; every line must arrive whole and in order.
import { mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { pino } from 'pino';
import { createGatewayLogger } from '../../src/log/gateway-logger.js';

interface SonicBoomLike {
  flushSync(): void;
  destroy(): void;
  readonly _writing: boolean;
}

/** flushSync() refuses while an asynchronous write is in flight; wait for it (bounded). */
async function waitForWrites(stream: SonicBoomLike): Promise<void> {
  for (let i = 0; i < 200 && stream._writing; i++) await new Promise<void>((resolve) => setTimeout(resolve, 10));
}

t.test('every log.bufferBytes the schema allows starts and delivers every line', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gw-logger-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const bufferBytes of [0, 1, 4096, 16_383, 16_384, 16_385, 65_536]) {
    const file = join(dir, `log-${bufferBytes}.ndjson`);
    const fd = openSync(file, 'w');
    const logger = createGatewayLogger({ level: 'info', bufferBytes, flushInterval: 250 }, fd);
    const lines = 400;
    for (let i = 0; i < lines; i++) logger.info({ event: 'test', i, pad: 'x'.repeat(300) }, 'line');
    // As on exit: whatever is still buffered is written synchronously, then the destination ends.
    const stream = (logger as unknown as Record<symbol, SonicBoomLike>)[pino.symbols.streamSym]!;
    await waitForWrites(stream);
    stream.flushSync();
    // Ending the destination closes the descriptor and stops its periodic flush.
    stream.destroy();
    const got = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { i: number; level: string; pid: number });
    t.equal(got.length, lines, `bufferBytes ${bufferBytes}: every line written`);
    t.same(got.map((r) => r.i), Array.from({ length: lines }, (_, i) => i), `bufferBytes ${bufferBytes}: in order`);
    t.equal(got[0]?.level, 'info', `bufferBytes ${bufferBytes}: the level as a label`);
  }
});
