/**
 * Rate limiting (RateLimiter, parseRate): one token bucket per key, starting full at `burst` and
 * refilling continuously at the rate; a refusal says how long until a token, in whole ms rounded
 * up, and waiting that long is enough. A clock that steps backwards adds nothing, and the key map
 * is bounded by dropping the least recently used key.
 */
import t from 'tap';
import { parseRate } from '../../src/config/rate.js';
import { RateLimiter } from '../../src/proxy/rate-limiter.js';

function drain(limiter: RateLimiter, key: string, now: number, n: number): number[] {
  return Array.from({ length: n }, () => limiter.take(key, now));
}

t.test('a full burst, then refusal with the exact wait', async (t) => {
  const limiter = new RateLimiter({ ratePerSecond: 10, burst: 5 });
  t.same(drain(limiter, 'k', 1000, 5), [0, 0, 0, 0, 0], 'a new key starts with burst tokens');
  t.equal(limiter.take('k', 1000), 100, '10/s: one token every 100 ms');
  t.equal(limiter.take('k', 1000), 100, 'a refusal takes nothing');
  t.equal(limiter.take('k', 1050), 50, 'half a token refilled, 50 ms to go');
  t.equal(limiter.take('k', 1099), 1);
  t.equal(limiter.take('k', 1100), 0, 'admitted when the token is whole');
  t.equal(limiter.take('k', 1100), 100, 'and empty again');
});

t.test('a fractional wait is rounded up to a whole ms', async (t) => {
  const limiter = new RateLimiter({ ratePerSecond: 3, burst: 1 });
  t.equal(limiter.take('k', 0), 0);
  t.equal(limiter.take('k', 0), 334, '333.33 ms rounds up');
  t.equal(limiter.take('k', 333), 1, 'one ms short');
  t.equal(limiter.take('k', 334), 0);

  const slow = new RateLimiter({ ratePerSecond: 0.5, burst: 1 });
  t.equal(slow.take('k', 0), 0);
  t.equal(slow.take('k', 0), 2000, '0.5/s: two seconds');
});

t.test('waiting exactly the reported time is always enough', async (t) => {
  // Floating-point refill could leave a bucket a hair short of a token at the promised time.
  const rates = [0.5, 1 / 3, 3, 7, 10, 13.7, 1000, 12_345.678, 1e6];
  let broken = 0;
  for (const ratePerSecond of rates) {
    const limiter = new RateLimiter({ ratePerSecond, burst: 2 });
    let now = 1_700_000_000_123.5;
    let admitted = 0;
    for (let i = 0; i < 2000; i++) {
      const wait = limiter.take('k', now);
      if (wait === 0) {
        admitted++;
        // Sometimes come back a little later, so the bucket holds odd fractions.
        now += (i * 7919) % 13;
        continue;
      }
      if (!(wait > 0) || !Number.isInteger(wait)) broken++;
      now += wait;
      if (limiter.take('k', now) !== 0) broken++;
      else admitted++;
    }
    t.ok(admitted > 0, `rate ${ratePerSecond}: admitted ${admitted}`);
  }
  t.equal(broken, 0, 'every reported wait was a positive whole ms and was enough');
});

t.test('tokens refill over time up to the burst, no further', async (t) => {
  const limiter = new RateLimiter({ ratePerSecond: 10, burst: 5 });
  drain(limiter, 'k', 0, 5);
  t.same(drain(limiter, 'k', 300, 4), [0, 0, 0, 100], '300 ms: three tokens');
  t.same(drain(limiter, 'k', 60_000, 6), [0, 0, 0, 0, 0, 100], 'a minute idle: a full burst, not 600');
});

t.test('keys are independent', async (t) => {
  const limiter = new RateLimiter({ ratePerSecond: 1, burst: 2 });
  t.same(drain(limiter, 'alice', 0, 3), [0, 0, 1000]);
  t.same(drain(limiter, 'bob', 0, 2), [0, 0], "alice's exhaustion does not touch bob");
  t.equal(limiter.take('alice', 0), 1000);
  t.equal(limiter.size, 2);
});

t.test('a clock that steps backwards adds no tokens', async (t) => {
  const limiter = new RateLimiter({ ratePerSecond: 10, burst: 1 });
  t.equal(limiter.take('k', 10_000), 0);
  t.equal(limiter.take('k', 5_000), 100, 'five seconds back: still empty, still a token away');
  t.equal(limiter.take('k', 10_000), 100, 'back to the present: no credit for the detour');
  t.equal(limiter.take('k', 10_050), 50);
  t.equal(limiter.take('k', 10_100), 0);

  // A new key first seen at a time earlier than other keys' clocks is fine as well.
  t.equal(limiter.take('late', 1), 0);
  t.equal(limiter.take('late', 0), 100);
});

t.test('the key map is bounded, dropping the least recently used key', async (t) => {
  const maxKeys = 100;
  const limiter = new RateLimiter({ ratePerSecond: 1, burst: 1, maxKeys });
  t.equal(limiter.take('hot', 0), 0);
  t.equal(limiter.take('cold', 0), 0);
  let maxSize = 0;
  for (let i = 0; i < 10 * maxKeys; i++) {
    limiter.take(`client-${i}`, 0);
    // A refused take is a use too: the key keeps its drained bucket.
    if (i % 10 === 0) t.equal(limiter.take('hot', 0), 1000, `hot key still drained after ${i} others`);
    maxSize = Math.max(maxSize, limiter.size);
  }
  t.equal(maxSize, maxKeys, 'never more than maxKeys');
  t.equal(limiter.size, maxKeys);
  t.equal(limiter.take('hot', 0), 1000, 'the recently used key was never evicted');
  // Pins a documented trade: an evicted key comes back with a full bucket.
  t.equal(limiter.take('cold', 0), 0, 'the unused key was evicted and starts full again');
  t.equal(limiter.size, maxKeys);
});

t.test('maxKeys defaults to 100 000', async (t) => {
  const limiter = new RateLimiter({ ratePerSecond: 1, burst: 1 });
  for (let i = 0; i < 100_010; i++) limiter.take(`k${i}`, 0);
  t.equal(limiter.size, 100_000);
});

t.test('parseRate: N/s, N/m, N/h as tokens per second', async (t) => {
  const valid: readonly [string, number][] = [
    ['100/s', 100],
    ['6000/m', 100],
    ['10/h', 10 / 3600],
    ['0.5/s', 0.5],
    ['1/s', 1],
    ['1.25/m', 1.25 / 60],
    ['007/s', 7],
    ['1000000000/s', 1e9],
    ['999999999.999999999/s', 999999999.999999999],
    ['0.000000001/s', 1e-9],
  ];
  for (const [text, rate] of valid) t.equal(parseRate(text), rate, text);
});

t.test('parseRate: null when malformed or not above zero', async (t) => {
  const refused = [
    '',
    '0/s',
    '0.0/m',
    '-1/s',
    '+1/s',
    'abc',
    '100',
    '/s',
    '100/',
    '100/d',
    '100/S',
    '100/ms',
    '100/1s',
    '100 /s',
    ' 100/s',
    '100/s ',
    '1e3/s',
    '1E3/s',
    '.5/s',
    '5./s',
    '1,000/s',
    '0x10/s',
    'Infinity/s',
    'NaN/s',
    '1000000001/s',
    '99999999999/s',
    '1' + '0'.repeat(400) + '/s',
    '1.0000000001/s',
    '100/s/s',
  ];
  for (const text of refused) t.equal(parseRate(text), null, JSON.stringify(text.length > 40 ? `${text.slice(0, 20)}...` : text));
});
