/**
 * A request refused by the HTTP/1 parser after it was admitted and sent on: its chunked body broke
 * its framing, its trailer section named a field the parser refuses, the request timeout ran out
 * inside its body. The 'clientError' handler answers the refusal (400, 431 or 408) on the socket
 * and the request in progress ends as that socket closes, where its record said the client left
 * (499) while the client had been refused. The handler puts the refusal on the socket here, and the
 * request's own record (ProxiedRequest's, which every such ending reaches) reads it: one record,
 * under the request's id, which the refusal's answer carries too.
 */
import type { ErrorCode } from '../errors/registry.js';

export interface MidRequestRefusal {
  readonly status: number;
  readonly code: ErrorCode;
  /** The parser's code (HPE_*) or the timeout's. */
  readonly reason: string;
}

const refusals = new WeakMap<object, MidRequestRefusal>();

/** The request in progress on `socket` was refused as `refusal` (its answer is being written). */
export function refuseMidRequest(socket: object, refusal: MidRequestRefusal): void {
  refusals.set(socket, refusal);
}

/** The refusal of the request in progress on `socket`, if the parser refused it. */
export function midRequestRefusal(socket: object): MidRequestRefusal | undefined {
  return refusals.get(socket);
}
