/**
 * Load balancing: owns which target of an upstream's fleet the next request goes to, among the
 * targets the caller found eligible (healthy, not ejected). Pure: the caller passes the targets
 * with their weights and in-flight counts, and the randomness, so a test can replay every choice.
 *
 * round-robin is nginx's smooth weighted round-robin, least-request is Envoy's power of two
 * choices, random is a weighted draw. Weights are integers of at least 1 (the config schema
 * checks that), and keys are unique within one `eligible` array.
 */

export type BalanceAlgorithm = 'round-robin' | 'least-request' | 'random';

export interface BalanceTarget {
  readonly key: string;
  readonly weight: number;
  /** requests in flight now */
  readonly active: number;
}

export interface Balancer {
  pick<T extends BalanceTarget>(eligible: readonly T[]): T | undefined;
}

/** `random` returns a number in [0, 1), like Math.random (the default). */
export function createBalancer(algorithm: BalanceAlgorithm, random: () => number = Math.random): Balancer {
  switch (algorithm) {
    case 'round-robin':
      return new SmoothRoundRobin();
    case 'least-request':
      return new PowerOfTwoChoices(random);
    case 'random':
      return new WeightedRandom(random);
  }
}

/** A mutable cell, so one Map lookup per target per pick is enough. */
interface Current {
  value: number;
}

class SmoothRoundRobin implements Balancer {
  readonly #current = new Map<string, Current>();

  pick<T extends BalanceTarget>(eligible: readonly T[]): T | undefined {
    let best: T | undefined;
    let bestCurrent: Current | undefined;
    let total = 0;
    for (const target of eligible) {
      let current = this.#current.get(target.key);
      if (current === undefined) {
        current = { value: 0 };
        this.#current.set(target.key, current);
      }
      current.value += target.weight;
      total += target.weight;
      // Strictly greater: on a tie the earlier target wins, as in nginx.
      if (bestCurrent === undefined || current.value > bestCurrent.value) {
        best = target;
        bestCurrent = current;
      }
    }
    if (bestCurrent !== undefined) bestCurrent.value -= total;
    // A target that left the fleet keeps its entry for a while, so one that is ejected and returns
    // resumes its place in the rotation; but a fleet that churns through keys must not grow the map
    // for ever.
    if (this.#current.size > 2 * eligible.length) this.#prune(eligible);
    return best;
  }

  #prune(eligible: readonly BalanceTarget[]): void {
    const keep = new Set<string>();
    for (const target of eligible) keep.add(target.key);
    for (const key of this.#current.keys()) if (!keep.has(key)) this.#current.delete(key);
  }
}

class PowerOfTwoChoices implements Balancer {
  readonly #random: () => number;

  constructor(random: () => number) {
    this.#random = random;
  }

  pick<T extends BalanceTarget>(eligible: readonly T[]): T | undefined {
    const n = eligible.length;
    if (n <= 1) return eligible[0];
    let first: number;
    let second: number;
    if (sameWeights(eligible)) {
      first = uniformIndex(this.#random(), n);
      // Draw among the other n-1 and skip over the first: distinct without a retry loop.
      second = uniformIndex(this.#random(), n - 1);
      if (second >= first) second++;
    } else {
      const total = totalWeight(eligible);
      first = weightedIndex(eligible, this.#random() * total, -1);
      second = weightedIndex(eligible, this.#random() * (total - eligible[first]!.weight), first);
    }
    const a = eligible[first]!;
    const b = eligible[second]!;
    // a.active / a.weight > b.active / b.weight without dividing (weights are positive).
    return b.active * a.weight < a.active * b.weight ? b : a;
  }
}

class WeightedRandom implements Balancer {
  readonly #random: () => number;

  constructor(random: () => number) {
    this.#random = random;
  }

  pick<T extends BalanceTarget>(eligible: readonly T[]): T | undefined {
    const n = eligible.length;
    if (n <= 1) return eligible[0];
    if (sameWeights(eligible)) return eligible[uniformIndex(this.#random(), n)];
    return eligible[weightedIndex(eligible, this.#random() * totalWeight(eligible), -1)];
  }
}

function sameWeights(targets: readonly BalanceTarget[]): boolean {
  const w = targets[0]!.weight;
  for (let i = 1; i < targets.length; i++) if (targets[i]!.weight !== w) return false;
  return true;
}

function totalWeight(targets: readonly BalanceTarget[]): number {
  let total = 0;
  for (const t of targets) total += t.weight;
  return total;
}

/** Clamped, so a `random` that returns 1 (outside its contract) cannot index past the end. */
function uniformIndex(r: number, n: number): number {
  return Math.min(n - 1, Math.floor(r * n));
}

/**
 * The index whose cumulative weight range holds `x`, skipping index `skip` (its weight must not be
 * counted in the range `x` was drawn from).
 */
function weightedIndex(targets: readonly BalanceTarget[], x: number, skip: number): number {
  let last = -1;
  for (let i = 0; i < targets.length; i++) {
    if (i === skip) continue;
    const w = targets[i]!.weight;
    if (x < w) return i;
    x -= w;
    last = i;
  }
  // Only reachable through floating-point rounding at the top of the range.
  return last;
}
