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
