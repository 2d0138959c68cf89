/**
 * Request ids: a client's `x-request-id` is kept when it is sane (so traces join up across
 * services), otherwise the gateway makes a new one.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

const SANE = /^[A-Za-z0-9._:@/+=-]{8,128}$/;

export function requestIdFor(req: IncomingMessage): string {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && SANE.test(given) ? given : randomUUID();
}
