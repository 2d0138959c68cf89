/**
 * Retry budget: owns how many retries one upstream may have in flight at once (Envoy's retry
 * budget). A bound proportional to the upstream's load stops retries from multiplying the traffic
 * of an upstream that is already failing, the usual way a partial outage becomes a full one; the
 * floor of `minRetryConcurrency` keeps retries possible when traffic is light.
 */

export class RetryBudget {
  readonly #percent: number;
  readonly #minRetryConcurrency: number;
  #active = 0;
  #retriesActive = 0;

  /** `budgetPercent`: 0-100 of the outstanding requests that may be retries. */
  constructor(budgetPercent: number, minRetryConcurrency = 3) {
    this.#percent = budgetPercent;
    this.#minRetryConcurrency = minRetryConcurrency;
  }

  get active(): number {
    return this.#active;
  }

  get retriesActive(): number {
    return this.#retriesActive;
  }

  /** An outstanding request of the upstream: first attempts and retries alike are one request. */
  requestStarted(): void {
    this.#active++;
  }

  // Ends beyond the starts are ignored rather than counted below zero: a negative count would
  // shrink the budget for the rest of the process's life.
  requestEnded(): void {
    if (this.#active > 0) this.#active--;
  }

  /** true, counting one retry in flight, when the budget has room for it; false otherwise. */
  tryStartRetry(): boolean {
    const max = Math.max(this.#minRetryConcurrency, Math.floor((this.#active * this.#percent) / 100));
    if (this.#retriesActive >= max) return false;
    this.#retriesActive++;
    return true;
  }

  retryEnded(): void {
    if (this.#retriesActive > 0) this.#retriesActive--;
  }
}
