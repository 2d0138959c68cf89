/**
 * Passive health: owns when a target is taken out of its fleet because its own requests keep
 * failing (Envoy's outlier detection, consecutive-failures variant), for how long, and how much of
 * a fleet may be out at once. Pure: the caller passes the time and the fleet's counts.
 *
 * The state lives in one OutlierRecord per target, kept by whoever owns the target, so that a
 * reload that builds a new detector with new settings keeps each target's history.
 */

export interface OutlierSettings {
  readonly consecutiveFailures: number;
  readonly baseEjectionMs: number;
  readonly maxEjectionPercent: number;
}

export type FailureOutcome = 'counted' | 'ejected' | 'ejection-capped';

interface RecordState {
  failures: number;
  timesEjected: number;
  /** 0 when not ejected (or not yet noticed as returned). */
  ejectedUntil: number;
  /** When the last ejection ended; what the multiplier decays from. */
  returnedAt: number;
}

/**
 * The one way into a record's state, installed by OutlierRecord's static block. The detector is
 * the only writer; with public fields anyone holding a record could un-eject a target.
 */
let stateOf: (record: OutlierRecord) => RecordState;

export class OutlierRecord {
  readonly #state: RecordState = { failures: 0, timesEjected: 0, ejectedUntil: 0, returnedAt: 0 };

  static {
    stateOf = (record) => record.#state;
  }
}

export class OutlierDetector {
  readonly #settings: OutlierSettings;

  constructor(settings: OutlierSettings) {
    this.#settings = settings;
  }

  /** true while `record` is ejected at `now` (ms). When an ejection has expired this returns false and notes the return time. */
  isEjected(record: OutlierRecord, now: number): boolean {
    return ejected(stateOf(record), now);
  }

  /** ms epoch until which the record is ejected, or 0. */
  ejectedUntil(record: OutlierRecord): number {
    return stateOf(record).ejectedUntil;
  }

  timesEjected(record: OutlierRecord): number {
    return stateOf(record).timesEjected;
  }

  consecutiveFailures(record: OutlierRecord): number {
    return stateOf(record).failures;
  }

  /** Resets the consecutive failure count; the ejection multiplier decays with time only. */
  success(record: OutlierRecord): void {
    stateOf(record).failures = 0;
  }

  /** `fleetSize`: targets in the fleet; `ejectedNow`: how many are ejected at `now` (excluding this one). */
  failure(record: OutlierRecord, now: number, fleetSize: number, ejectedNow: number): FailureOutcome {
    const state = stateOf(record);
    // Failures that arrive while ejected are requests that were in flight when the ejection began.
    // Counting them would let the target be ejected again by its first failure after return.
    if (ejected(state, now)) return 'counted';
    const { consecutiveFailures: threshold, baseEjectionMs: base, maxEjectionPercent } = this.#settings;
    state.failures++;
    if (state.failures < threshold) return 'counted';
    // floor, and unlike Envoy no "at least one" exception: below 100% a fleet of one is never
    // ejected, nor the second of two at 50%. Passive checks alone must not take a whole upstream
    // out, which would turn a degraded service into a dead one.
    const maxEjected = Math.floor((fleetSize * maxEjectionPercent) / 100);
    if (ejectedNow + 1 > maxEjected) {
      // Stay at the threshold so the next failure tries again, once others have returned.
      state.failures = threshold;
      return 'ejection-capped';
    }
    if (state.timesEjected > 0 && base > 0) {
      // Envoy's decay: one step back for every full base period spent healthy. max(0, ...) so a
      // clock that stepped backwards cannot raise the multiplier.
      const healthyPeriods = Math.floor(Math.max(0, now - state.returnedAt) / base);
      state.timesEjected = Math.max(0, state.timesEjected - healthyPeriods);
    }
    state.timesEjected++;
    state.ejectedUntil = now + base * state.timesEjected;
    state.failures = 0;
    return 'ejected';
  }
}

function ejected(state: RecordState, now: number): boolean {
  if (state.ejectedUntil === 0) return false;
  if (now < state.ejectedUntil) return true;
  state.returnedAt = state.ejectedUntil;
  state.ejectedUntil = 0;
  return false;
}
