/**
 * Load balancing (createBalancer): round-robin is nginx's smooth weighted round-robin, exact in
 * its shares and never bunching a heavy target; least-request is Envoy's power of two choices and
 * never sends to the busier of its two draws; random is a weighted draw. Every choice is replayed
 * with a seeded generator, so these tests are deterministic.
 */
import t from 'tap';
import { createBalancer, type BalanceAlgorithm, type BalanceTarget } from '../../src/proxy/balancer.js';

/** A small seeded PRNG (mulberry32), returning [0, 1) like Math.random. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/** Returns the given values in turn, cycling. */
function sequence(...values: number[]): () => number {
  let i = 0;
  return () => values[i++ % values.length]!;
}

function target(key: string, weight = 1, active = 0): BalanceTarget {
  return { key, weight, active };
}

function keys(picks: readonly (BalanceTarget | undefined)[]): string[] {
  return picks.map((p) => p?.key ?? '(none)');
}

function counts(picks: readonly (BalanceTarget | undefined)[]): Record<string, number> {
  const c: Record<string, number> = {};
  for (const k of keys(picks)) c[k] = (c[k] ?? 0) + 1;
  return c;
}

function pickN(n: number, pick: () => BalanceTarget | undefined): (BalanceTarget | undefined)[] {
  return Array.from({ length: n }, pick);
}

const ALGORITHMS: readonly BalanceAlgorithm[] = ['round-robin', 'least-request', 'random'];

t.test('every algorithm: no eligible target gives undefined, one gives that one', async (t) => {
  for (const algorithm of ALGORITHMS) {
    const balancer = createBalancer(algorithm, mulberry32(1));
    t.equal(balancer.pick([]), undefined, `${algorithm}: empty`);
    const only = target('only', 5, 99);
    for (let i = 0; i < 5; i++) t.equal(balancer.pick([only]), only, `${algorithm}: the single target`);
    t.equal(balancer.pick([]), undefined, `${algorithm}: empty again after picks`);
  }
});

t.test('round-robin with equal weights is plain rotation in array order', async (t) => {
  const balancer = createBalancer('round-robin');
  const fleet = [target('a'), target('b'), target('c')];
  t.same(keys(pickN(9, () => balancer.pick(fleet))), ['a', 'b', 'c', 'a', 'b', 'c', 'a', 'b', 'c']);
});

t.test('round-robin with weights 3:1:1 interleaves (a,b,a,c,a) and is exact in its shares', async (t) => {
  const balancer = createBalancer('round-robin');
  const fleet = [target('a', 3), target('b'), target('c')];
  const picks = pickN(500, () => balancer.pick(fleet));
  t.same(keys(picks.slice(0, 5)), ['a', 'b', 'a', 'c', 'a'], "nginx's smooth sequence");
  t.same(counts(picks), { a: 300, b: 100, c: 100 }, 'exactly 3:1:1 over 500 picks');
  t.notOk(keys(picks).join('').includes('aaa'), 'the heavy target is never picked three times running');
  // Every window of one full cycle (total weight 5) holds the exact shares, not just the total.
  for (let i = 0; i + 5 <= picks.length; i += 5) {
    t.same(counts(picks.slice(i, i + 5)), { a: 3, b: 1, c: 1 }, `cycle at ${i}`);
  }
});

t.test('round-robin ignores in-flight counts and randomness', async (t) => {
  let calls = 0;
  const balancer = createBalancer('round-robin', () => {
    calls++;
    return 0;
  });
  const fleet = [target('a', 1, 1000), target('b', 1, 0)];
  t.same(keys(pickN(4, () => balancer.pick(fleet))), ['a', 'b', 'a', 'b']);
  t.equal(calls, 0);
});

t.test('round-robin remembers a target that is briefly absent while the map stays small', async (t) => {
  // [a,b] picks a (a=-1, b=1); [b,c] picks b (b=0, c=1) with a still remembered (3 keys <= 2x2);
  // [a,b] then sees a=0, b=1 and picks b. Had a been forgotten it would start at 1 and win.
  const balancer = createBalancer('round-robin');
  const [a, b, c] = [target('a'), target('b'), target('c')];
  t.equal(balancer.pick([a, b])?.key, 'a');
  t.equal(balancer.pick([b, c])?.key, 'b');
  t.equal(balancer.pick([a, b])?.key, 'b', "a's place in the rotation was kept");
});

t.test('round-robin forgets absent targets once the map holds more than twice the eligible', async (t) => {
  // [a,b] picks a (a=-1, b=1); [x] alone makes 3 keys for 1 eligible, so a and b are pruned; [a,b]
  // then starts fresh at 0,0 and picks a. Had they been kept, b (at 2) would beat a (at 0).
  const balancer = createBalancer('round-robin');
  const [a, b, x] = [target('a'), target('b'), target('x')];
  t.equal(balancer.pick([a, b])?.key, 'a');
  t.equal(balancer.pick([x])?.key, 'x');
  t.equal(balancer.pick([a, b])?.key, 'a', 'a and b were pruned and start afresh');
});

t.test('every algorithm survives a fleet that changes on every pick and picks only the eligible', async (t) => {
  const random = mulberry32(42);
  const pool = Array.from({ length: 12 }, (_, i) => target(`k${i}`, 1 + (i % 4), i % 3));
  for (const algorithm of ALGORITHMS) {
    const balancer = createBalancer(algorithm, mulberry32(7));
    let bad = 0;
    for (let i = 0; i < 20_000; i++) {
      const eligible = pool.filter(() => random() < 0.5);
      const picked = balancer.pick(eligible);
      if (eligible.length === 0 ? picked !== undefined : picked === undefined || !eligible.includes(picked)) bad++;
    }
    t.equal(bad, 0, `${algorithm}: every pick came from that pick's eligible targets`);
  }

  // Keys that never repeat (targets replaced on every pick): after the churn a steady fleet still
  // rotates in its exact shares, untouched by the stale entries.
  const balancer = createBalancer('round-robin');
  for (let i = 0; i < 50_000; i++) balancer.pick([target(`once-${i}`), target(`once-${i}-b`, 2)]);
  const fleet = [target('a', 2), target('b', 1)];
  const shares = counts(pickN(300, () => balancer.pick(fleet)));
  t.same(shares, { a: 200, b: 100 }, 'a fresh steady fleet after the churn gets exact shares');
});

t.test('least-request never picks the busier of its two draws', async (t) => {
  const balancer = createBalancer('least-request', mulberry32(3));
  const idle = target('idle', 1, 0);
  const busy = target('busy', 1, 5);
  for (const fleet of [
    [idle, busy],
    [busy, idle],
  ]) {
    t.same(counts(pickN(1000, () => balancer.pick(fleet))), { idle: 1000 }, 'two targets: always the idle one');
  }
});

t.test('least-request: a target far busier than the rest is never picked from 3 or more', async (t) => {
  // The two draws are distinct, so the busy target is always compared against a less busy one.
  for (const size of [3, 4, 10]) {
    const balancer = createBalancer('least-request', mulberry32(size));
    const fleet = Array.from({ length: size }, (_, i) => target(`t${i}`, 1, i === 1 ? 100 : 0));
    const c = counts(pickN(10_000, () => balancer.pick(fleet)));
    t.equal(c['t1'], undefined, `fleet of ${size}: the busy target was never picked`);
    for (let i = 0; i < size; i++) {
      if (i === 1) continue;
      const share = (c[`t${i}`] ?? 0) / 10_000;
      t.ok(Math.abs(share - 1 / (size - 1)) < 0.03, `fleet of ${size}: t${i} gets about 1/${size - 1} (${share})`);
    }
  }
});

t.test('least-request compares active per weight, and a tie goes to the first draw', async (t) => {
  // Equal weights: draws are floor(r*n), then floor(r*(n-1)) skipping over the first.
  const a = target('a', 1, 2);
  const b = target('b', 1, 2);
  t.equal(createBalancer('least-request', sequence(0, 0)).pick([a, b]), a, 'draws a then b: tie, a');
  t.equal(createBalancer('least-request', sequence(0.9, 0)).pick([a, b]), b, 'draws b then a: tie, b');

  // a: 2 in flight for weight 1 (2 per unit); b: 4 for weight 4 (1 per unit). b is less loaded.
  const light = target('light', 1, 2);
  const heavy = target('heavy', 4, 4);
  const balancer = createBalancer('least-request', mulberry32(9));
  t.same(counts(pickN(500, () => balancer.pick([light, heavy]))), { heavy: 500 }, 'the lower active/weight wins');
});

t.test('least-request draws by weight when weights differ, and the two draws are distinct', async (t) => {
  // r = 0 always: the first draw is index 0, the second the first of the others (index 1).
  const fleet = [target('a', 1, 5), target('b', 1, 1), target('c', 98, 0)];
  t.equal(createBalancer('least-request', sequence(0)).pick(fleet)?.key, 'b', 'second draw skipped the first');

  // All idle: the result is the first draw, which follows the weights.
  const idle = [target('a', 1), target('b', 1), target('c', 8)];
  const balancer = createBalancer('least-request', mulberry32(12));
  const shares = counts(pickN(20_000, () => balancer.pick(idle)));
  t.ok(Math.abs(shares['c']! / 20_000 - 0.8) < 0.02, `c drawn first about 80% of the time (${shares['c']! / 20_000})`);
  t.ok(Math.abs(shares['a']! / 20_000 - 0.1) < 0.02, `a about 10% (${shares['a']! / 20_000})`);
});

t.test('random follows the weights', async (t) => {
  const balancer = createBalancer('random', mulberry32(2024));
  const fleet = [target('a', 1), target('b', 2), target('c', 7, 50)];
  const n = 100_000;
  const c = counts(pickN(n, () => balancer.pick(fleet)));
  t.ok(Math.abs(c['a']! / n - 0.1) < 0.01, `a about 10% (${c['a']! / n})`);
  t.ok(Math.abs(c['b']! / n - 0.2) < 0.01, `b about 20% (${c['b']! / n})`);
  t.ok(Math.abs(c['c']! / n - 0.7) < 0.01, `c about 70%, in-flight count ignored (${c['c']! / n})`);

  const even = createBalancer('random', mulberry32(5));
  const flat = [target('x'), target('y'), target('z'), target('w')];
  const e = counts(pickN(n, () => even.pick(flat)));
  for (const k of ['x', 'y', 'z', 'w']) t.ok(Math.abs(e[k]! / n - 0.25) < 0.01, `${k} about 25% with equal weights`);
});

t.test('a random source that returns 1 (outside its contract) still yields an eligible target', async (t) => {
  const fleet = [target('a', 1), target('b', 3)];
  const flat = [target('x'), target('y')];
  for (const algorithm of ['least-request', 'random'] as const) {
    const balancer = createBalancer(algorithm, () => 1);
    t.ok(fleet.includes(balancer.pick(fleet)!), `${algorithm}, weighted`);
    t.ok(flat.includes(balancer.pick(flat)!), `${algorithm}, equal weights`);
  }
});
