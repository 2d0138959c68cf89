/**
 * When V8 starts marking the old generation, set once per gateway process at start.
 *
 * V8's default (heap.cc, `Heap::IncrementalMarkingLimitReached`) starts incremental marking as
 * soon as the room left under the old generation's limit is smaller than the young generation's
 * capacity, and sets that limit after each full collection from what survived it times a growing
 * factor. A proxy promotes little (its objects live for one request), so the factor it gets can
 * be about 2: after each collection the room left (about 24 MB over 23 MB of live objects,
 * Node 24.21) is already under the young generation's capacity, marking starts again at once, and
 * the process stays in back-to-back full collections for as long as the load lasts. Measured
 * (bench/README.md, "Back-to-back full collections, and the marking triggers"): eight fresh starts
 * each of the gateway with and without the triggers, under load together: without them, 5 of 8
 * fell into that state under 64 KiB uploads and 2 of 8 under 64 KiB answers (16 to 40
 * Mark-Compacts in 11 s of load instead of 1), and cost 1.18 to 1.64 times the CPU per request
 * of the same gateway with them; with them, none did. Keep-alive GETs of 100 B never fell into
 * it, and the triggers leave them where they were (0.98 to 1.03).
 *
 * V8's `--incremental-marking-soft-trigger` and `--incremental-marking-hard-trigger` replace that
 * rule with a share of the room the last full collection left: marking starts (from a task) once
 * SOFT_TRIGGER_PERCENT of the bytes between what survived that collection and the limit are
 * used, and at once at HARD_TRIGGER_PERCENT (heap.cc, `PercentToLimit`: the larger of the old
 * generation's share and the whole heap's, external memory included). V8 reads both each time
 * it decides, so they take effect when set from JavaScript after start (unlike the heap sizes,
 * which only the node command line sets). The limit itself stays V8's, so the heap grows no
 * further than V8 allows; only marking started long before it was needed is avoided.
 *
 * A trigger given on the node command line (`node --incremental-marking-soft-trigger=N ...`) is
 * left as it is: the operator's choice wins. (Node refuses both flags in NODE_OPTIONS, so the
 * command line is the only other place they can come from.)
 */
import v8 from 'node:v8';

export const SOFT_TRIGGER_PERCENT = 80;
export const HARD_TRIGGER_PERCENT = 95;

const FLAGS = [
  ['--incremental-marking-soft-trigger', SOFT_TRIGGER_PERCENT],
  ['--incremental-marking-hard-trigger', HARD_TRIGGER_PERCENT],
] as const;

/** Whether node's command line (`execArgv`) names either trigger: then the gateway sets neither. */
export function triggersOnCommandLine(execArgv: readonly string[] = process.execArgv): boolean {
  // V8 reads `_` and `-` alike in a flag's name.
  const given = new Set(execArgv.map((arg) => arg.split('=')[0]!.replaceAll('_', '-')));
  return FLAGS.some(([flag]) => given.has(flag));
}

/** Sets the two triggers unless the node command line names either; returns the flags it set. */
export function setMarkingTriggers(execArgv: readonly string[] = process.execArgv): string[] {
  if (triggersOnCommandLine(execArgv)) return [];
  const set = FLAGS.map(([flag, percent]) => `${flag}=${percent}`);
  for (const f of set) v8.setFlagsFromString(f);
  return set;
}
