/**
 * The `grpc-timeout` request header (gRPC's PROTOCOL-HTTP2.md): "1-8 ASCII digits" followed by one
 * unit, H M S m u n. It becomes the call's deadline when it is shorter than the route's response
 * timeout.
 *
 * A malformed value (a ninth digit, a sign, a space, a unit that is not one of the six, non-ASCII
 * digits, two values joined by a repeated header) is ignored, not refused: the spec names no error
 * for it, Envoy ignores it too, and ignoring it never lengthens a call since the route's timeout
 * still bounds it. The header goes upstream unchanged, so the upstream judges it as it always
 * would (grpc-go answers a malformed one with INTERNAL).
 */

const UNIT_MS: Readonly<Record<string, number>> = { H: 3_600_000, M: 60_000, S: 1_000, m: 1, u: 1e-3, n: 1e-6 };

const SHAPE = /^([0-9]{1,8})([HMSmun])$/;

/**
 * The timeout in whole milliseconds, rounded up (a 1 µs timeout is a 1 ms deadline, not none),
 * or null when the header is absent or malformed. 0 is kept: the deadline has already passed.
 */
export function parseGrpcTimeout(value: string | string[] | undefined): number | null {
  if (typeof value !== 'string') return null;
  const m = SHAPE.exec(value);
  if (m === null) return null;
  return Math.ceil(Number(m[1]) * UNIT_MS[m[2]!]!);
}
