/**
 * The state of the client's response, whatever the protocol. node:http2's compatibility response
 * has no `destroyed` of its own (it is undefined): its stream's tells whether it can still be
 * written. Checking `res.destroyed` alone would keep forwarding for an HTTP/2 client that left.
 */
import type { ServerResponse } from 'node:http';

export function responseGone(res: ServerResponse): boolean {
  return res.destroyed || ((res as { stream?: { destroyed: boolean } }).stream?.destroyed ?? false);
}
