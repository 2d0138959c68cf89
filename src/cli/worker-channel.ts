/**
 * The IPC between the `start --workers N` primary and its workers (node:cluster's channel): the
 * primary hands each new worker the shared session ticket keys when it asks for them, asks workers
 * to reload after it validated a configuration, and asks them for readiness, status and metrics
 * for its one admin listener. Every message carries `mtlsGateway: 1` so prom-client's and
 * cluster's own messages on the same channel are left alone. Answers that do not come within the
 * timeout count as failures.
 */
import type { Worker } from 'node:cluster';

export type WorkerQuestion = 'readiness' | 'status' | 'metrics' | 'reload';

export type ToWorker =
  | { readonly mtlsGateway: 1; readonly kind: 'init'; readonly ticketKeys: string }
  | { readonly mtlsGateway: 1; readonly kind: 'ask'; readonly id: number; readonly question: WorkerQuestion; readonly trigger?: string };

export type FromWorker =
  | { readonly mtlsGateway: 1; readonly kind: 'answer'; readonly id: number; readonly ok: boolean; readonly value: unknown }
  | { readonly mtlsGateway: 1; readonly kind: 'hello' };

export function isGatewayMessage<T extends { mtlsGateway: 1 }>(m: unknown): m is T {
  return typeof m === 'object' && m !== null && (m as { mtlsGateway?: unknown }).mtlsGateway === 1;
}

let nextId = 1;

/**
 * The callback of the sends whose failure means only that the message is lost (askWorker has one
 * of its own that fails the question). Every send on the channel has a callback: with one, a
 * channel that has closed reports its error there instead of emitting it (on the Worker in the
 * primary, on `process` in a worker), where, unhandled, it would end the process.
 */
const IGNORE_SEND_ERROR = (): void => {};

/** Asks one worker; rejects on timeout, on a failed answer, or when the worker exits first. */
export function askWorker(worker: Worker, question: WorkerQuestion, timeoutMs: number, trigger?: string): Promise<unknown> {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      worker.off('message', onMessage);
      worker.off('exit', onExit);
    };
    const onMessage = (m: unknown) => {
      if (!isGatewayMessage<FromWorker>(m) || m.kind !== 'answer' || m.id !== id) return;
      done();
      if (m.ok) resolve(m.value);
      else reject(new Error(String(m.value)));
    };
    const onExit = () => {
      done();
      reject(new Error(`worker ${worker.process.pid} exited`));
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`worker ${worker.process.pid} did not answer "${question}" within ${timeoutMs} ms`));
    }, timeoutMs);
    worker.on('message', onMessage);
    worker.once('exit', onExit);
    // With a callback, a channel that closed (the worker stopping, crashing or killed, its 'exit'
    // still to come) fails this question; without one, node:cluster emits the error on the Worker,
    // where nothing handles it, and the primary dies of it.
    const sent = (err: Error | null) => {
      if (err === null) return;
      done();
      reject(err);
    };
    try {
      worker.send({ mtlsGateway: 1, kind: 'ask', id, question, ...(trigger !== undefined ? { trigger } : {}) } satisfies ToWorker, sent);
    } catch (err) {
      done();
      reject(err as Error);
    }
  });
}

/** Worker side: answers the primary's questions with `answer`. */
export function answerPrimary(answer: (question: WorkerQuestion, trigger: string | undefined) => Promise<unknown>): void {
  process.on('message', (m: unknown) => {
    if (!isGatewayMessage<ToWorker>(m) || m.kind !== 'ask') return;
    answer(m.question, m.trigger).then(
      // A primary that disconnected meanwhile (this worker is stopping) gets no answer; without the
      // callback the closed channel's error would be emitted on the process and kill the worker.
      (value) => process.send?.({ mtlsGateway: 1, kind: 'answer', id: m.id, ok: true, value } satisfies FromWorker, IGNORE_SEND_ERROR),
      (err: unknown) => process.send?.({ mtlsGateway: 1, kind: 'answer', id: m.id, ok: false, value: (err as Error)?.message ?? String(err) } satisfies FromWorker, IGNORE_SEND_ERROR),
    );
  });
}

/**
 * Primary side: answers each `hello` of `worker` with the init message (the shared ticket keys).
 *
 * The worker asks, rather than the primary sending at fork: in a cluster worker, node:cluster's own
 * Worker object listens for 'message' from the start, so a message that arrives before the
 * gateway listens (it loads its config first) is emitted to that listener only, and missed. Sent
 * at fork, that is what happened: each worker waited out its 10 s and started with a ticket key of
 * its own.
 */
export function serveInit(worker: Worker, ticketKeys: Buffer): void {
  worker.on('message', (m: unknown) => {
    if (!isGatewayMessage<FromWorker>(m) || m.kind !== 'hello') return;
    // A worker whose channel closed meanwhile gets nothing; its exit is the supervisor's to report.
    worker.send({ mtlsGateway: 1, kind: 'init', ticketKeys: ticketKeys.toString('base64') } satisfies ToWorker, IGNORE_SEND_ERROR);
  });
}

/** Worker side: asks the primary for its init message (the shared ticket keys) and waits for it. */
export function awaitInit(timeoutMs: number): Promise<Buffer | null> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      process.off('message', onMessage);
      resolve(null);
    }, timeoutMs);
    const onMessage = (m: unknown) => {
      if (!isGatewayMessage<ToWorker>(m) || m.kind !== 'init') return;
      clearTimeout(timer);
      process.off('message', onMessage);
      resolve(Buffer.from(m.ticketKeys, 'base64'));
    };
    process.on('message', onMessage);
    // No primary to hear it: the wait times out and the worker keeps a key of its own.
    process.send?.({ mtlsGateway: 1, kind: 'hello' } satisfies FromWorker, IGNORE_SEND_ERROR);
  });
}
