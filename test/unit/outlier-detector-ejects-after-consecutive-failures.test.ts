/**
 * Passive health (OutlierDetector): a target is ejected after `consecutiveFailures` failures in a
 * row, for base x (times ejected), the multiplier decaying by one per full base period healthy;
 * never more than floor(fleet x maxEjectionPercent / 100) targets out at once, so a fleet of one
 * is never ejected below 100%. The clock is a number passed in.
 */
import t from 'tap';
import { OutlierDetector, OutlierRecord, type OutlierSettings } from '../../src/proxy/outlier-detector.js';

const SETTINGS: OutlierSettings = { consecutiveFailures: 3, baseEjectionMs: 1000, maxEjectionPercent: 50 };
const FLEET = 4;

/** Fails `record` until it is ejected (at most `threshold` times), all at `now`. */
function failUntilEjected(d: OutlierDetector, r: OutlierRecord, now: number): string[] {
  const outcomes: string[] = [];
  for (let i = 0; i < SETTINGS.consecutiveFailures; i++) outcomes.push(d.failure(r, now, FLEET, 0));
  return outcomes;
}

t.test('a new record is healthy', async (t) => {
  const d = new OutlierDetector(SETTINGS);
  const r = new OutlierRecord();
  t.notOk(d.isEjected(r, 0));
  t.equal(d.ejectedUntil(r), 0);
  t.equal(d.timesEjected(r), 0);
  t.equal(d.consecutiveFailures(r), 0);
});

t.test('ejected at the threshold and not before, for the base duration', async (t) => {
  const d = new OutlierDetector(SETTINGS);
  const r = new OutlierRecord();
  t.equal(d.failure(r, 100, FLEET, 0), 'counted');
  t.equal(d.failure(r, 110, FLEET, 0), 'counted');
  t.equal(d.consecutiveFailures(r), 2);
  t.notOk(d.isEjected(r, 110), 'not ejected one failure short of the threshold');
  t.equal(d.failure(r, 120, FLEET, 0), 'ejected');
  t.equal(d.consecutiveFailures(r), 0, 'the streak resets on ejection');
  t.equal(d.timesEjected(r), 1);
  t.equal(d.ejectedUntil(r), 1120);
  t.ok(d.isEjected(r, 120));
  t.ok(d.isEjected(r, 1119), 'still ejected 1 ms before the end');
  t.notOk(d.isEjected(r, 1120), 'back at the end');
  t.equal(d.ejectedUntil(r), 0, 'the return was noted');
  t.equal(d.timesEjected(r), 1, 'the multiplier is kept after return');
});

t.test('failures while ejected neither extend the ejection nor start the next streak', async (t) => {
  const d = new OutlierDetector(SETTINGS);
  const r = new OutlierRecord();
  failUntilEjected(d, r, 0);
  for (let i = 0; i < 10; i++) t.equal(d.failure(r, 500 + i, FLEET, 0), 'counted');
  t.equal(d.ejectedUntil(r), 1000, 'not extended');
  t.equal(d.consecutiveFailures(r), 0, 'in-flight leftovers were not counted');
  t.equal(d.timesEjected(r), 1);
  t.equal(d.failure(r, 1000, FLEET, 0), 'counted', 'the first failure after return starts a new streak');
  t.equal(d.consecutiveFailures(r), 1);
});

t.test('a second ejection right after return lasts twice the base, a third three times', async (t) => {
  const d = new OutlierDetector(SETTINGS);
  const r = new OutlierRecord();
  t.same(failUntilEjected(d, r, 0), ['counted', 'counted', 'ejected']);
  t.equal(d.ejectedUntil(r), 1000);
  t.notOk(d.isEjected(r, 1000));
  t.same(failUntilEjected(d, r, 1001), ['counted', 'counted', 'ejected']);
  t.equal(d.timesEjected(r), 2);
  t.equal(d.ejectedUntil(r), 1001 + 2000, 'base x 2');
  // This time nobody asks isEjected before the failures: failure() notices the return itself.
  t.same(failUntilEjected(d, r, 3001), ['counted', 'counted', 'ejected']);
  t.equal(d.timesEjected(r), 3);
  t.equal(d.ejectedUntil(r), 3001 + 3000, 'base x 3');
});

t.test('the multiplier decays by one per full base period spent healthy', async (t) => {
  const d = new OutlierDetector(SETTINGS);
  const r = new OutlierRecord();
  failUntilEjected(d, r, 0); // until 1000, x1
  failUntilEjected(d, r, 1000); // until 3000, x2
  failUntilEjected(d, r, 3000); // until 6000, x3
  t.equal(d.timesEjected(r), 3);

  // Returned at 6000; 1999 ms later only one full base period has passed: 3 - 1 + 1 = 3.
  failUntilEjected(d, r, 7999);
  t.equal(d.timesEjected(r), 3);
  t.equal(d.ejectedUntil(r), 7999 + 3000);

  // Returned at 10999; a long healthy period decays it all the way: back to the base duration.
  t.notOk(d.isEjected(r, 11_000));
  failUntilEjected(d, r, 10_999 + 60_000);
  t.equal(d.timesEjected(r), 1, 'decayed to 0, then counted this ejection');
  t.equal(d.ejectedUntil(r), 10_999 + 60_000 + 1000, 'base x 1 again');
});

t.test('a clock that steps backwards does not raise the multiplier', async (t) => {
  const d = new OutlierDetector(SETTINGS);
  const r = new OutlierRecord();
  failUntilEjected(d, r, 10_000);
  t.notOk(d.isEjected(r, 11_000));
  failUntilEjected(d, r, 5_000);
  t.equal(d.timesEjected(r), 2, 'no decay, and no growth beyond the one ejection');
  t.equal(d.ejectedUntil(r), 5_000 + 2000);
});

t.test('success in between resets the streak, not the multiplier', async (t) => {
  const d = new OutlierDetector(SETTINGS);
  const r = new OutlierRecord();
  t.equal(d.failure(r, 0, FLEET, 0), 'counted');
  t.equal(d.failure(r, 0, FLEET, 0), 'counted');
  d.success(r);
  t.equal(d.consecutiveFailures(r), 0);
  t.equal(d.failure(r, 0, FLEET, 0), 'counted');
  t.equal(d.failure(r, 0, FLEET, 0), 'counted', 'two after the success: still short of three');
  t.notOk(d.isEjected(r, 0));
  t.equal(d.failure(r, 0, FLEET, 0), 'ejected');

  t.notOk(d.isEjected(r, 1000));
  d.success(r);
  t.equal(d.timesEjected(r), 1, 'a success does not decay the multiplier; time does');
});

t.test('the ejection cap: floor(fleet x percent / 100) targets out at once', async (t) => {
  const d = new OutlierDetector(SETTINGS); // 50%

  // Pins a decision: one target is never ejected by passive checks below 100% (floor(0.5) = 0);
  // unlike Envoy there is no "at least one host" exception.
  const alone = new OutlierRecord();
  t.same(
    [1, 2, 3, 4].map(() => d.failure(alone, 0, 1, 0)),
    ['counted', 'counted', 'ejection-capped', 'ejection-capped'],
    'fleet of 1 at 50%: never ejected',
  );
  t.notOk(d.isEjected(alone, 0));

  // Fleet of 2 at 50%: one may be out, not both.
  const first = new OutlierRecord();
  const second = new OutlierRecord();
  t.equal(d.failure(first, 0, 2, 0), 'counted');
  t.equal(d.failure(first, 0, 2, 0), 'counted');
  t.equal(d.failure(first, 0, 2, 0), 'ejected', 'the first of two');
  t.equal(d.failure(second, 0, 2, 1), 'counted');
  t.equal(d.failure(second, 0, 2, 1), 'counted');
  t.equal(d.failure(second, 0, 2, 1), 'ejection-capped', 'the second of two, while the first is out');
  t.notOk(d.isEjected(second, 0));

  // Fleet of 4 at 50% with 2 already out: capped; with 1 out: ejected.
  const fourth = new OutlierRecord();
  t.equal(d.failure(fourth, 0, 4, 2), 'counted');
  t.equal(d.failure(fourth, 0, 4, 2), 'counted');
  t.equal(d.failure(fourth, 0, 4, 2), 'ejection-capped');
  t.equal(d.timesEjected(fourth), 0, 'a capped ejection is not counted as one');
  t.equal(d.ejectedUntil(fourth), 0);
});

t.test('a capped target stays at the threshold, so the next failure tries again', async (t) => {
  const d = new OutlierDetector(SETTINGS);
  const r = new OutlierRecord();
  d.failure(r, 0, 4, 2);
  d.failure(r, 0, 4, 2);
  t.equal(d.failure(r, 0, 4, 2), 'ejection-capped');
  t.equal(d.consecutiveFailures(r), 3);
  t.equal(d.failure(r, 10, 4, 2), 'ejection-capped', 'still capped');
  t.equal(d.consecutiveFailures(r), 3, 'held at the threshold, not growing');
  t.equal(d.failure(r, 20, 4, 1), 'ejected', 'room again: ejected on the very next failure');
  t.equal(d.ejectedUntil(r), 1020);
  t.equal(d.consecutiveFailures(r), 0);

  const healed = new OutlierRecord();
  d.failure(healed, 0, 4, 2);
  d.failure(healed, 0, 4, 2);
  d.failure(healed, 0, 4, 2);
  d.success(healed);
  t.equal(d.failure(healed, 0, 4, 1), 'counted', 'a success while capped clears the pending ejection');
});

t.test('at 100% a fleet of one can be ejected', async (t) => {
  const d = new OutlierDetector({ ...SETTINGS, maxEjectionPercent: 100 });
  const r = new OutlierRecord();
  d.failure(r, 0, 1, 0);
  d.failure(r, 0, 1, 0);
  t.equal(d.failure(r, 0, 1, 0), 'ejected');
});

t.test('records are independent, and a new detector (a reload) keeps their history', async (t) => {
  const d = new OutlierDetector(SETTINGS);
  const a = new OutlierRecord();
  const b = new OutlierRecord();
  failUntilEjected(d, a, 0);
  t.equal(d.failure(b, 0, FLEET, 1), 'counted');
  t.equal(d.consecutiveFailures(b), 1);
  t.notOk(d.isEjected(b, 0));

  const reloaded = new OutlierDetector({ ...SETTINGS, baseEjectionMs: 5000 });
  t.ok(reloaded.isEjected(a, 999), 'the ejection survives the new settings');
  t.equal(reloaded.timesEjected(a), 1);
  t.notOk(reloaded.isEjected(a, 1000));
  failUntilEjected(reloaded, a, 1000);
  t.equal(reloaded.ejectedUntil(a), 1000 + 2 * 5000, 'the next ejection uses the new base');
});
