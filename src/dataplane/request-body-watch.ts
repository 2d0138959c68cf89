/**
 * Request-body timers: owns noticing a client that announced a body and stopped sending it
 * (nginx's client_body_timeout). Without this a few such clients hold upstream connections for as
 * long as their TCP connections live, and nothing else bounds it (`server.requestTimeout` is 0 by
 * default so that long transfers are not cut).
 *
 * It uses the request's socket idle timer (`IncomingMessage.setTimeout`): before the response
 * starts, the only traffic on the socket is the body arriving, so "idle" means "body stalled".
 * When the socket is quiet because the gateway stopped reading (body bytes are buffered and
 * unread), the client is not at fault and the timer re-arms.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

export interface BodyStallWatch {
  /** Aborted (reason: a BodyStalledError) when the body stalled for the whole timeout. */
  readonly signal: AbortSignal;
  stop(): void;
}

export class BodyStalledError extends Error {
  readonly code = 'GW_BODY_STALLED';
  constructor(ms: number) {
    super(`the request body stalled for ${ms} ms`);
  }
}

export function watchBodyStall(req: IncomingMessage, res: ServerResponse, ms: number): BodyStallWatch {
  const controller = new AbortController();
  const socket = req.socket;
  let stopped = false;
  let judging = false;
  /**
   * What the connection has read so far, for HTTP/1.1 (one request at a time on it); null for
   * HTTP/2, whose socket carries every stream of the session, so its count says nothing about
   * this stream.
   */
  const readSoFar = (): number | null => (req.httpVersionMajor === 2 || socket === null ? null : socket.bytesRead);
  /**
   * Nothing stalls: the body is whole (the watch stops), or bytes wait unread, the gateway being
   * the slow side (the watch re-arms). False leaves the verdict to the caller.
   */
  const notStalled = (): boolean => {
    // The whole body is here, buffered until the request is forwarded: nothing left to stall.
    if (req.complete) {
      stop();
      return true;
    }
    // Data is waiting to be read: the upstream applies backpressure, or the request waits for an
    // upstream connection. With an empty buffer the socket is being read, so a quiet socket means
    // the client sends nothing.
    if (req.readableLength > 0) {
      // The request's timer is its socket's in HTTP/1.1 and its stream's in HTTP/2.
      req.setTimeout(ms);
      return true;
    }
    return false;
  };
  const onTimeout = () => {
    if (stopped || judging || notStalled()) return;
    // Timers run before the event loop reads its sockets. After a pause of the loop itself (a long
    // collection, a starved process) this one can fire with the client's bytes already in the
    // kernel, unread: the verdict waits until the loop has read them (an immediate runs after the
    // poll phase) and counts anything read by then as the client sending.
    judging = true;
    const before = readSoFar();
    setImmediate(() => {
      judging = false;
      if (stopped || notStalled()) return;
      if (before !== null && readSoFar() !== before) {
        req.setTimeout(ms);
        return;
      }
      stop();
      controller.abort(new BodyStalledError(ms));
    });
  };
  const stop = () => {
    if (stopped) return;
    stopped = true;
    req.off('timeout', onTimeout);
    res.off('timeout', onTimeout);
    req.off('end', stop);
    // Once the response has finished, Node has set its own keep-alive timer on the socket.
    if (!res.writableFinished && socket !== null && !socket.destroyed) req.setTimeout(0);
  };
  req.setTimeout(ms, onTimeout);
  // Node emits the socket's 'timeout' on the request only while its body is incomplete; once the
  // body is complete (and still unread, e.g. while the request waits for an upstream slot) only
  // the response hears it, and with no listener there Node destroys the socket: the request would
  // be cut without an answer.
  res.on('timeout', onTimeout);
  req.once('end', stop);
  return { signal: controller.signal, stop };
}

/**
 * Resolves once the first body bytes (or the end of the body) are there to read, without reading
 * them; 'stalled' when the watch fired first, 'client-left' when the connection closed.
 */
export function firstBodyBytes(req: IncomingMessage, res: ServerResponse, signal: AbortSignal): Promise<'ready' | 'stalled' | 'client-left'> {
  if (req.readableLength > 0 || req.complete) return Promise.resolve('ready');
  return new Promise((resolve) => {
    const settle = (outcome: 'ready' | 'stalled' | 'client-left') => {
      req.off('readable', onReadable);
      res.off('close', onClose);
      signal.removeEventListener('abort', onAbort);
      resolve(outcome);
    };
    // A 'readable' listener only looks: the data stays buffered for the upstream request, and once
    // the listener is gone the stream goes back to its unread state.
    const onReadable = () => settle('ready');
    const onClose = () => settle('client-left');
    const onAbort = () => settle('stalled');
    req.on('readable', onReadable);
    res.once('close', onClose);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
