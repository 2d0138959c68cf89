/**
 * The client's TLS socket behind a request, whatever the protocol. An HTTP/1 request's `socket`
 * is the TLSSocket itself; an HTTP/2 request's (and session's) `socket` is a Proxy that node:http2
 * puts in front of it, a different object per session. The authenticator caches its verdict per
 * socket object and the connection registry holds the TLSSocket, so every request must be judged
 * on that same object: the listener marks each socket when its handshake completes, and a symbol
 * read through the Proxy reaches the socket behind it.
 */
import type { TLSSocket } from 'node:tls';

const SELF = Symbol('mtls-gateway.client-socket');

type Marked = TLSSocket & { [SELF]?: TLSSocket };

/** Called once per connection, when its handshake completed (before any request can arrive). */
export function markClientSocket(socket: TLSSocket): void {
  (socket as Marked)[SELF] = socket;
}

/** The TLSSocket a request (or an HTTP/2 session) arrived on. */
export function clientSocketOf(holder: { readonly socket: unknown }): TLSSocket {
  const s = holder.socket as Marked;
  return s[SELF] ?? s;
}
