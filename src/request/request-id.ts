/**
 * Request ids: a client's `x-request-id` is kept when it is sane (so traces join up across
 * services), otherwise the gateway makes a new one. Takes the header value, not a Node request, so
 * any transport (HTTP/1 today, HTTP/2 streams later) can use it.
 */
import { randomUUID } from 'node:crypto';

const SANE = /^[A-Za-z0-9._:@/+=-]{8,128}$/;

export function requestIdFor(given: string | string[] | undefined): string {
  return typeof given === 'string' && SANE.test(given) ? given : randomUUID();
}
