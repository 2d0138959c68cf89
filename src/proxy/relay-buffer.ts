/**
 * Bytes of a body the gateway lets wait for the slower side before it stops reading the other
 * (backpressure), in both directions: an answer waiting for a slow client (forward-request.ts)
 * and, with the lean upstream client, an upload waiting for a slow upstream
 * (http1-upstream-client.ts). A socket says "wait" past its 16 KiB high-water mark, which a
 * body's second TLS record already crosses: the reading side was paused with records of the same
 * read (up to 64 KiB of them) already decrypted, and they went out in one more write on one more
 * turn of the event loop once the other side drained (a 64 KiB answer took three writes to the
 * client where the lean floor takes two; bench/README.md, "A 64 KiB answer in two writes").
 * Two reads' worth may wait instead: nginx buffers 64 KiB per proxied answer by default
 * (proxy_buffers 8 8k) and then spills to disk, Envoy up to 1 MiB per connection.
 */
export const RELAY_BUFFER_BYTES = 128 * 1024;

/**
 * A request body announced with a Content-Length of at most this many bytes is held back, with
 * its head, until the end of the event-loop turn whose read brought its first bytes (the check
 * phase: setImmediate), or until it is whole if that comes first, and goes upstream in one write
 * (the lean HTTP/1.1 upstream client, http1-upstream-client.ts). A 64 KiB upload read in one turn
 * (TLS records of up to 16 KiB, handed over one by one) then costs one upstream write instead of
 * two or three (bench/README.md, "Small uploads in one write"). A body that arrives over several
 * turns streams from the first one's end on, as before: an upstream never waits on a slow client
 * more than one turn for the head, so no upstream's keep-alive timer sees the connection idle
 * meanwhile. Below RELAY_BUFFER_BYTES, so a held body never pauses the client.
 */
export const HELD_BODY_BYTES = 64 * 1024;

/**
 * A head and a body of at most this many bytes go out as one buffer (headWithBody) rather than as
 * two writes under cork, which node:net turns into a writev: that path builds arrays and per-chunk
 * requests for what is one TLS record either way. 0.4 µs less per 100 B answer on Node 24 (both
 * ends of a loopback TLS pair, one write per turn: bench/write-shapes.mjs; bench/README.md, "One
 * write for a head and a small body"). One TLS record's worth: past it, the copy is no longer
 * cheap next to the record.
 */
export const ONE_WRITE_BYTES = 16 * 1024;

/**
 * `head` (latin1, as node:http writes a head) then `body`, framed as one chunk of chunked encoding
 * when `chunked`, as one buffer. An empty body adds nothing: framed, it would be the last chunk.
 */
export function headWithBody(head: string, body: Buffer, chunked: boolean): Buffer {
  const framed = chunked && body.length > 0;
  const pre = framed ? `${head}${body.length.toString(16)}\r\n` : head;
  const out = Buffer.allocUnsafe(pre.length + body.length + (framed ? 2 : 0));
  out.write(pre, 0, 'latin1');
  body.copy(out, pre.length);
  if (framed) out.write('\r\n', pre.length + body.length, 'latin1');
  return out;
}
