/**
 * Forwarding: streams one request to an upstream pool and the response back, at undici's dispatch
 * level so that bodies flow chunk by chunk with backpressure both ways and nothing is buffered whole.
 * Errors before the response starts reject (the caller answers with a gateway error); errors after
 * it started cut the client response, since a status line cannot be taken back.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Dispatcher } from 'undici';
import { buildClientResponseHeaders } from './forward-headers.js';

export interface ForwardOptions {
  readonly method: string;
  /** Normalized path plus the original query string. */
  readonly path: string;
  readonly headers: string[];
  readonly body: IncomingMessage | null;
  readonly res: ServerResponse;
  readonly requestId: string;
  /** Aborts the upstream request (a stalled request body); the reason becomes the error's cause. */
  readonly signal?: AbortSignal;
}

export interface ForwardResult {
  readonly status: number;
  readonly bytesOut: number;
  /** The error that cut the response after it started, if any (for the log). */
  readonly error: Error | null;
  /** True when the client went away before the response completed. */
  readonly clientAborted: boolean;
}

export class ForwardError extends Error {
  readonly clientAborted: boolean;
  constructor(cause: unknown, clientAborted: boolean) {
    super('upstream request failed before the response started', { cause });
    this.clientAborted = clientAborted;
  }
}

export function forwardRequest(dispatcher: Dispatcher, opts: ForwardOptions): Promise<ForwardResult> {
  return new Promise((resolve, reject) => {
    const res = opts.res;
    let abort: ((err: Error) => void) | null = null;
    let resumeUpstream: (() => void) | null = null;
    let started = false;
    let done = false;
    let status = 0;
    let bytesOut = 0;
    let clientAborted = false;

    const onClientClose = () => {
      if (done) return;
      clientAborted = true;
      abort?.(new Error('client closed the connection'));
    };
    const onDrain = () => resumeUpstream?.();
    res.once('close', onClientClose);
    let aborted: Error | null = null;
    const onAbort = () => {
      aborted = opts.signal!.reason as Error;
      abort?.(aborted);
    };
    opts.signal?.addEventListener('abort', onAbort, { once: true });

    const finish = (error: Error | null) => {
      if (done) return;
      done = true;
      res.off('close', onClientClose);
      res.off('drain', onDrain);
      opts.signal?.removeEventListener('abort', onAbort);
      if (!started) {
        reject(new ForwardError(error, clientAborted));
        return;
      }
      if (error) res.destroy(error);
      resolve({ status, bytesOut, error, clientAborted });
    };

    const handler: Dispatcher.DispatchHandler = {
      onConnect(abortFn: (err?: Error) => void) {
        abort = abortFn;
        if (res.destroyed) {
          clientAborted = true;
          abortFn(new Error('client closed the connection'));
        } else if (aborted !== null) {
          abortFn(aborted);
        }
      },
      onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void): boolean {
        if (statusCode < 200) return true;
        started = true;
        status = statusCode;
        resumeUpstream = resume;
        res.writeHead(statusCode, buildClientResponseHeaders(rawHeaders, opts.requestId));
        res.on('drain', onDrain);
        return true;
      },
      onData(chunk: Buffer): boolean {
        bytesOut += chunk.length;
        return res.write(chunk);
      },
      onComplete() {
        if (done) return;
        res.end();
        finish(null);
      },
      onError(err: Error) {
        finish(err);
      },
    } as unknown as Dispatcher.DispatchHandler;

    dispatcher.dispatch(
      { method: opts.method as Dispatcher.HttpMethod, path: opts.path, headers: opts.headers, body: opts.body },
      handler,
    );
  });
}
