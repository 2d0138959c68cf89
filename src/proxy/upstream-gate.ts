/**
 * Upstream admission: owns how many requests one upstream carries at once and how long a request
 * may wait for a free connection. undici queues requests without a bound in time, so a few
 * clients that hold every pooled connection (a stalled upload holds one for as long as it stalls)
 * would make every other client of that upstream wait for ever. Here a request that cannot get a
 * slot within `timeouts.queue` is answered 503 GW_ERR_UPSTREAM_OVERLOADED instead.
 */

export type Release = () => void;

interface Waiter {
  readonly grant: (release: Release) => void;
  readonly timer: NodeJS.Timeout;
  done: boolean;
}

export class UpstreamGate {
  readonly #capacity: number;
  readonly #waitMs: number;
  #active = 0;
  /** Waiters still waiting (the queue also holds ones that timed out or left). */
  #waiting = 0;
  readonly #queue: Waiter[] = [];
  #head = 0;

  /** `capacity`: requests carried at once (the pool's connections, pipelining 1). */
  constructor(capacity: number, waitMs: number) {
    this.#capacity = capacity;
    this.#waitMs = waitMs;
  }

  get active(): number {
    return this.#active;
  }

  get waiting(): number {
    return this.#waiting;
  }

  /** A slot now, without waiting, or null when every slot is taken (or others wait already). */
  tryAcquire(): Release | null {
    if (this.#active >= this.#capacity || this.#waiting > 0) return null;
    this.#active++;
    return this.#releaser();
  }

  /**
   * Calls `grant` with a release function once a slot is free (synchronously when one is free
   * now), or `timedOut` after the wait bound. Returns a cancel function for a client that leaves
   * while waiting.
   */
  acquire(grant: (release: Release) => void, timedOut: () => void): () => void {
    const now = this.tryAcquire();
    if (now !== null) {
      grant(now);
      return noop;
    }
    const waiter: Waiter = {
      grant,
      done: false,
      timer: setTimeout(() => {
        if (waiter.done) return;
        waiter.done = true;
        this.#waiting--;
        timedOut();
      }, this.#waitMs),
    };
    this.#queue.push(waiter);
    this.#waiting++;
    return () => {
      if (waiter.done) return;
      waiter.done = true;
      this.#waiting--;
      clearTimeout(waiter.timer);
    };
  }

  #releaser(): Release {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#active--;
      this.#next();
    };
  }

  #next(): void {
    while (this.#active < this.#capacity && this.#head < this.#queue.length) {
      const waiter = this.#queue[this.#head++]!;
      if (waiter.done) continue;
      waiter.done = true;
      this.#waiting--;
      clearTimeout(waiter.timer);
      this.#active++;
      waiter.grant(this.#releaser());
    }
    if (this.#waiting === 0) {
      this.#queue.length = 0;
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue.splice(0, this.#head);
      this.#head = 0;
    }
  }
}

function noop(): void {}
