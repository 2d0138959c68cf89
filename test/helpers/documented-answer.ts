/**
 * The contract for every answer on the front door, as one checker: an answer is either the
 * upstream's (the test upstreams mark theirs with `x-upstream: yes`) or one of the gateway's own
 * documented errors: a status from the documented set, `content-type: application/json;
 * charset=utf-8`, and a body that is exactly `{"error":{"code","message","requestId"}}` whose code is
 * in the registry with that very status and message. A 500 is never documented behaviour: it is
 * reported as a finding.
 */
import { ERRORS, type ErrorCode } from '../../src/errors/registry.js';
import type { RawExchange, RawResponse } from './raw-tls-request.js';

/** Statuses the gateway may write itself (500 is listed so that it is reported as what it is). */
export const DOCUMENTED_STATUSES: ReadonlySet<number> = new Set([400, 401, 403, 404, 408, 417, 431, 500, 501, 502, 503, 504]);

/**
 * Codes a client without a valid certificate may see: its own 401, and refusals that happen
 * before any request reaches routing (framing, header limits, CONNECT, Expect). Anything else
 * (403, 404, a path or Host verdict) means routing looked at an unauthenticated request.
 */
export const PRE_AUTH_CODES: ReadonlySet<string> = new Set([
  ...Object.keys(ERRORS).filter((c) => c.startsWith('GW_ERR_CLIENT_CERT_')),
  'GW_ERR_REQUEST_INVALID',
  'GW_ERR_HEADERS_TOO_LARGE',
  'GW_ERR_EXPECTATION_FAILED',
  'GW_ERR_METHOD_NOT_SUPPORTED',
  'GW_ERR_REQUEST_TIMEOUT',
  'GW_ERR_SHUTTING_DOWN',
]);

export type Answer =
  | { readonly kind: 'upstream'; readonly status: number }
  | { readonly kind: 'gateway'; readonly status: number; readonly code: ErrorCode }
  | { readonly kind: 'interim'; readonly status: number }
  | { readonly kind: 'undocumented'; readonly status: number };

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function sameKeys(o: Record<string, unknown>, keys: readonly string[]): boolean {
  const k = Object.keys(o).sort();
  return k.length === keys.length && [...keys].sort().every((x, i) => x === k[i]);
}

/** The code a body-less answer to HEAD most likely carried (only its status is known). */
function codeForHead(status: number): ErrorCode {
  const match = (Object.keys(ERRORS) as ErrorCode[]).filter((c) => ERRORS[c].status === status);
  if (status === 401) return 'GW_ERR_CLIENT_CERT_MISSING';
  if (status === 400) return 'GW_ERR_REQUEST_INVALID';
  return match[0] ?? 'GW_ERR_INTERNAL';
}

/** Classifies one response and lists every way it breaks the contract. */
export function judgeResponse(r: RawResponse): { answer: Answer; problems: string[] } {
  const problems: string[] = [];
  const where = `${r.status} ${r.reason}`;
  if (r.version !== 'HTTP/1.1') problems.push(`${where}: status line says ${r.version}, not HTTP/1.1`);
  if (r.interim) {
    if (r.status !== 100) problems.push(`${where}: unexpected interim response`);
    return { answer: { kind: 'interim', status: r.status }, problems };
  }
  if (r.header('x-upstream').includes('yes')) return { answer: { kind: 'upstream', status: r.status }, problems };
  if (!DOCUMENTED_STATUSES.has(r.status)) problems.push(`${where}: status is not one the gateway documents`);
  const ct = r.header('content-type');
  if (ct.length !== 1 || ct[0] !== 'application/json; charset=utf-8') problems.push(`${where}: content-type is ${JSON.stringify(ct)}, not application/json; charset=utf-8`);
  // A gateway answer to HEAD carries the error format's headers and no body to check.
  if (r.forHead) {
    if (r.status === 500) problems.push(`${where}: the gateway answered 500 to HEAD (an internal failure is always a finding)`);
    return { answer: { kind: 'gateway', status: r.status, code: codeForHead(r.status) }, problems };
  }
  const text = r.body.toString('utf8');
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    problems.push(`${where}: body is not JSON: ${JSON.stringify(text.slice(0, 120))}`);
    return { answer: { kind: 'undocumented', status: r.status }, problems };
  }
  const err = isRecord(body) && sameKeys(body, ['error']) ? body['error'] : undefined;
  if (!isRecord(err) || !sameKeys(err, ['code', 'message', 'requestId'])) {
    problems.push(`${where}: body is not exactly {"error":{"code","message","requestId"}}: ${text.slice(0, 160)}`);
    return { answer: { kind: 'undocumented', status: r.status }, problems };
  }
  const { code, message, requestId } = err;
  if (typeof code !== 'string' || !Object.hasOwn(ERRORS, code)) {
    problems.push(`${where}: code ${JSON.stringify(code)} is not in the registry`);
    return { answer: { kind: 'undocumented', status: r.status }, problems };
  }
  const spec = ERRORS[code as ErrorCode];
  if (spec.status !== r.status) problems.push(`${where}: code ${code} belongs with status ${spec.status}`);
  if (message !== spec.message) problems.push(`${where}: message for ${code} is ${JSON.stringify(message)}, not the registry's`);
  if (typeof requestId !== 'string' || requestId.length === 0) problems.push(`${where}: requestId is missing or empty`);
  if (r.status === 500) problems.push(`${where}: the gateway answered 500 ${code} (an internal failure is always a finding)`);
  return { answer: { kind: 'gateway', status: r.status, code: code as ErrorCode }, problems };
}

export interface ExchangeVerdict {
  readonly answers: Answer[];
  readonly problems: string[];
  /** The exchange ended with the connection closed by the gateway. */
  readonly closed: boolean;
  readonly forwarded: boolean;
}

/**
 * Judges a whole exchange: the bytes parse as HTTP/1.1 responses, each is documented, and a client
 * that has no valid certificate gets no upstream answer and nothing that shows routing judged it.
 */
export function judgeExchange(x: RawExchange, opts: { validClient: boolean }): ExchangeVerdict {
  const problems: string[] = [];
  const answers: Answer[] = [];
  if (x.parseError !== null) problems.push(`the answer does not parse as HTTP/1.1: ${x.parseError}; received ${JSON.stringify(x.raw.subarray(0, 200).toString('latin1'))}`);
  else if (x.leftover.length > 0 && x.ending !== 'complete') problems.push(`bytes after the last response: ${JSON.stringify(x.leftover.subarray(0, 120).toString('latin1'))}`);
  for (const r of x.responses) {
    const j = judgeResponse(r);
    answers.push(j.answer);
    problems.push(...j.problems);
    if (!opts.validClient) {
      if (j.answer.kind === 'upstream') problems.push(`a client without a valid certificate got an upstream answer (${r.status})`);
      if (j.answer.kind === 'gateway' && !PRE_AUTH_CODES.has(j.answer.code)) problems.push(`a client without a valid certificate got ${j.answer.status} ${j.answer.code}: routing judged an unauthenticated request`);
    }
  }
  return { answers, problems, closed: x.ending === 'closed', forwarded: answers.some((a) => a.kind === 'upstream') };
}
