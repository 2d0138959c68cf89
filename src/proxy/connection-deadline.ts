/**
 * The one deadline timer of a connection, shared by the gateway's own HTTP/1.1 connections: the
 * upstream client's (http1-upstream-client.ts: headers, body, keep-alive idle) and the lean
 * listener's (src/dataplane/lean-http1-connection.ts: head and request). One Timeout per
 * connection, moved only when a deadline comes before the time it fires: it fires, finds the
 * deadline later, and waits again. So a request costs no timer creation (undici's fast timers do
 * the same; a Timeout per request showed as 309 B per request in `--alloc`).
 */
export class ConnectionDeadline {
  readonly #onExpired: () => void;
  #deadline = 0;
  #timer: NodeJS.Timeout | null = null;
  #fireAt = 0;
  #stopped = false;

  /** `onExpired` runs once a deadline passes (not after stop()). */
  constructor(onExpired: () => void) {
    this.#onExpired = onExpired;
  }

  /** The deadline set to `ms` from now; 0: none. */
  arm(ms: number): void {
    if (ms === 0) {
      this.#deadline = 0;
      return;
    }
    if (this.#stopped) return;
    const deadline = Date.now() + ms;
    this.#deadline = deadline;
    if (this.#timer !== null && this.#fireAt <= deadline) return;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = setTimeout(this.#onTimer, ms).unref();
    this.#fireAt = deadline;
  }

  /** No deadline any more, ever (the connection closed). */
  stop(): void {
    this.#stopped = true;
    this.#deadline = 0;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }

  readonly #onTimer = (): void => {
    this.#timer = null;
    const deadline = this.#deadline;
    if (deadline === 0 || this.#stopped) return;
    const now = Date.now();
    if (now < deadline) {
      this.#timer = setTimeout(this.#onTimer, deadline - now).unref();
      this.#fireAt = deadline;
      return;
    }
    this.#deadline = 0;
    this.#onExpired();
  };
}
