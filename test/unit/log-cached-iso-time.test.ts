import t from 'tap';
import { cachedIsoTime } from '../../src/log/cached-iso-time.js';

t.test('formats pino time fragments, once per distinct millisecond', async (t) => {
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
  t.equal(time(), ',"time":"2026-11-27T12:00:00.124Z"', 'the next millisecond is formatted anew');
  clock -= 5_000;
  t.equal(time(), ',"time":"2026-11-27T11:59:55.124Z"', 'a clock that steps back is followed, not cached');
  t.equal(formatted, 3);
  // pino splices the fragment into the JSON line: it must parse as such.
  t.same(JSON.parse(`{"level":30${time()}}`), { level: 30, time: '2026-11-27T11:59:55.124Z' });
});
