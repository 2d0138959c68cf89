/**
 * Runtime.swap(): one assignment puts a newer snapshot in force and runs the after-swap hook with
 * the new and the replaced snapshot; a snapshot that is not newer is refused and changes nothing
 * (a slow reload must never put an older state back).
 */
import t from 'tap';
import { Runtime } from '../../src/runtime/runtime.js';
import type { RuntimeSnapshot } from '../../src/runtime/snapshot.js';

const snap = (generation: number) => Object.freeze({ generation }) as unknown as RuntimeSnapshot;

t.test('swap puts newer snapshots in force and refuses older ones', async (t) => {
  const seen: Array<[number, number]> = [];
  const first = snap(1);
  const rt = new Runtime(first, { afterSwap: (next, prev) => seen.push([next.generation, prev.generation]) });
  t.equal(rt.current, first);
  const second = snap(2);
  rt.swap(second);
  t.equal(rt.current, second);
  t.same(seen, [[2, 1]]);
  t.throws(() => rt.swap(snap(2)), /not newer/, 'the same generation is refused');
  t.throws(() => rt.swap(snap(1)), /not newer/, 'an older one too');
  t.equal(rt.current, second, 'and nothing changed');
  t.same(seen, [[2, 1]], 'nor was the hook run');
  rt.swap(snap(7));
  t.equal(rt.current.generation, 7, 'generations may skip');
});
