import t from 'tap';
import { cachedIsoTime } from '../../src/log/cached-iso-time.js';

t.test('formats pino time fragments, the date once per second and the text once per millisecond', async (t) => {
  let clock = Date.UTC(2026, 10, 27, 12, 0, 0, 123);
  let formatted = 0;
  const realToISOString = Date.prototype.toISOString;
  Date.prototype.toISOString = function (this: Date) {
    formatted++;
    return realToISOString.call(this);
  };
  t.teardown(() => {
    Date.prototype.toISOString = realToISOString;
  });
  const time = cachedIsoTime(() => clock);
  t.equal(time(), ',"time":"2026-11-27T12:00:00.123Z"');
  t.equal(time(), ',"time":"2026-11-27T12:00:00.123Z"', 'same millisecond, same text');
  t.equal(formatted, 1, 'formatted once for two lines in one millisecond');
  clock += 1;
  t.equal(time(), ',"time":"2026-11-27T12:00:00.124Z"', 'the next millisecond is written anew');
  t.equal(formatted, 1, 'without formatting the date again within the second');
  clock -= 5_000;
  t.equal(time(), ',"time":"2026-11-27T11:59:55.124Z"', 'a clock that steps back is followed, not cached');
  t.equal(formatted, 2);
  // pino splices the fragment into the JSON line: it must parse as such.
  t.same(JSON.parse(`{"level":30${time()}}`), { level: 30, time: '2026-11-27T11:59:55.124Z' });
});

t.test('writes what Date#toISOString writes, at every millisecond boundary and far-off years', async (t) => {
  let clock = 0;
  const time = cachedIsoTime(() => clock);
  const points: number[] = [];
  // Every millisecond around second, minute, day and year boundaries, and a spread of instants.
  for (const base of [Date.UTC(2026, 11, 31, 23, 59, 59, 0), Date.UTC(2027, 0, 1), Date.UTC(2024, 1, 29, 12), 0, 1_000]) {
    for (let d = -1_005; d <= 1_005; d++) points.push(base + d);
  }
  for (let i = 0; i < 2_000; i++) points.push(Math.floor(Math.random() * 8.64e15 * 2) - 8.64e15);
  points.push(8.64e15, -8.64e15, Date.UTC(9999, 11, 31, 23, 59, 59, 999), Date.UTC(10000, 0, 1), Date.UTC(-1, 0, 1, 0, 0, 0, 7));
  let wrong = 0;
  for (const p of points) {
    clock = p;
    const want = `,"time":"${new Date(p).toISOString()}"`;
    if (time() !== want && wrong++ < 5) t.fail(`${p}: ${time()} is not ${want}`);
  }
  t.equal(wrong, 0, `${points.length} instants, each as toISOString writes it`);
});
