/**
 * The runtime: owns the snapshot in force. `current` is read once per request (and per new
 * connection); `swap()` replaces it with one assignment, the pattern of RevocationStore's index, so
 * no reader ever sees half of a change. What must follow a swap (live connections judged again
 * under the new snapshot) is the `afterSwap` hook's business.
 */
import type { RuntimeSnapshot } from './snapshot.js';

export interface RuntimeOptions {
  /** Runs after every swap, with the new snapshot and the one it replaced. */
  readonly afterSwap?: (next: RuntimeSnapshot, previous: RuntimeSnapshot) => void;
}

export class Runtime {
  #current: RuntimeSnapshot;
  readonly #afterSwap: RuntimeOptions['afterSwap'];

  constructor(first: RuntimeSnapshot, opts: RuntimeOptions = {}) {
    this.#current = first;
    this.#afterSwap = opts.afterSwap;
  }

  /** The snapshot in force. */
  get current(): RuntimeSnapshot {
    return this.#current;
  }

  /** Puts `next` in force. Its generation is set by whoever built it and must be higher. */
  swap(next: RuntimeSnapshot): void {
    const previous = this.#current;
    if (next.generation <= previous.generation) {
      throw new Error(`snapshot generation ${next.generation} is not newer than ${previous.generation}`);
    }
    this.#current = next;
    this.#afterSwap?.(next, previous);
  }
}
