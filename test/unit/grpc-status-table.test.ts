// The gRPC status of every gateway error: the table covers the whole registry, follows the issue's
// mapping, and docs/errors.md's "gRPC calls" table says the same. Also which requests count as gRPC
// and how grpc-message is encoded.
import { readFile } from 'node:fs/promises';
import t from 'tap';
import { GRPC_STATUS, GrpcStatus } from '../../src/errors/grpc-status.js';
import { ERRORS, type ErrorCode } from '../../src/errors/registry.js';
import { encodeGrpcMessage, isGrpcRequest } from '../../src/dataplane/respond-grpc-error.js';

t.test('every registry code has a gRPC status, and nothing else does', async (t) => {
  t.same(Object.keys(GRPC_STATUS).sort(), Object.keys(ERRORS).sort());
  for (const [code, s] of Object.entries(GRPC_STATUS)) t.ok(Number.isInteger(s) && s >= 1 && s <= 16, `${code}: ${s} is a non-OK gRPC status`);
});

t.test('the mapping the issue asks for', async (t) => {
  const expect = (codes: ErrorCode[], status: number, why: string) => {
    for (const c of codes) t.equal(GRPC_STATUS[c], status, `${c}: ${why}`);
  };
  expect(
    ['GW_ERR_CLIENT_CERT_MISSING', 'GW_ERR_CLIENT_CERT_UNTRUSTED', 'GW_ERR_CLIENT_CERT_EXPIRED', 'GW_ERR_CLIENT_CERT_REVOKED', 'GW_ERR_CLIENT_CERT_REVOCATION_UNKNOWN', 'GW_ERR_CLIENT_CERT_INVALID'],
    GrpcStatus.UNAUTHENTICATED,
    'certificate refusals',
  );
  expect(['GW_ERR_POLICY_DENIED'], GrpcStatus.PERMISSION_DENIED, 'policy');
  expect(['GW_ERR_ROUTE_NOT_FOUND'], GrpcStatus.UNIMPLEMENTED, 'no route for /pkg.Service/Method');
  expect(['GW_ERR_UPSTREAM_UNREACHABLE', 'GW_ERR_UPSTREAM_RESET', 'GW_ERR_UPSTREAM_UNAVAILABLE', 'GW_ERR_UPSTREAM_OVERLOADED', 'GW_ERR_UPSTREAM_PROTOCOL', 'GW_ERR_UPSTREAM_CERT_REVOKED'], GrpcStatus.UNAVAILABLE, 'upstream failures');
  expect(['GW_ERR_UPSTREAM_TIMEOUT', 'GW_ERR_REQUEST_TIMEOUT'], GrpcStatus.DEADLINE_EXCEEDED, 'timeouts');
  expect(['GW_ERR_RATE_LIMITED'], GrpcStatus.RESOURCE_EXHAUSTED, 'rate limit');
  expect(['GW_ERR_PATH_INVALID', 'GW_ERR_REQUEST_INVALID'], GrpcStatus.INVALID_ARGUMENT, 'bad request');
  expect(['GW_ERR_INTERNAL'], GrpcStatus.INTERNAL, 'gateway bug');
});

t.test('docs/errors.md lists the same gRPC statuses', async (t) => {
  const doc = await readFile(new URL('../../docs/errors.md', import.meta.url), 'utf8');
  const section = doc.slice(doc.indexOf('## gRPC calls'));
  const documented = new Map<string, number>();
  for (const m of section.matchAll(/^\| (\d+) `([A-Z_]+)` \| (.+) \|$/gm)) {
    t.equal((GrpcStatus as Record<string, number>)[m[2]!], Number(m[1]), `${m[2]} is ${m[1]}`);
    for (const c of m[3]!.matchAll(/`(GW_ERR_[A-Z0-9_]+)`/g)) documented.set(c[1]!, Number(m[1]));
  }
  for (const [code, status] of Object.entries(GRPC_STATUS)) t.equal(documented.get(code), status, `${code} documented as ${status}`);
  t.equal(documented.size, Object.keys(GRPC_STATUS).length, 'nothing documented that the table lacks');
});

t.test('which requests are gRPC', async (t) => {
  const is = (ct: string | undefined) => isGrpcRequest({ headers: ct === undefined ? {} : { 'content-type': ct } });
  for (const ct of ['application/grpc', 'application/grpc+proto', 'application/grpc+json', 'Application/GRPC', 'application/grpc; charset=utf-8', 'application/grpc;x=1']) t.ok(is(ct), ct);
  const not = [
    undefined,
    '',
    'application/json',
    'application/grpc-web',
    'application/grpc-web+proto',
    'application/grpc-web-text',
    'application/grpcx',
    'application/grp',
    'text/application/grpc',
    ' application/grpc',
    'application/grpc\u0000',
    'application/gr\u00fcpc',
    'x'.repeat(100_000),
  ];
  for (const ct of not) t.notOk(is(ct), JSON.stringify(ct?.slice(0, 30)));
  t.notOk(isGrpcRequest({ headers: { 'content-type': ['application/grpc'] as unknown as string } }), 'a non-string value');
});

t.test('grpc-message is percent-encoded as gRPC requires', async (t) => {
  t.equal(encodeGrpcMessage('No route matches this request.'), 'No route matches this request.');
  t.equal(encodeGrpcMessage('100% done'), '100%25 done');
  t.equal(encodeGrpcMessage('a\nb\tc'), 'a%0Ab%09c');
  t.equal(encodeGrpcMessage('caf\u00e9 \u{1F600}'), 'caf%C3%A9 %F0%9F%98%80');
  t.equal(decodeURIComponent(encodeGrpcMessage('caf\u00e9 % \u{1F600}')), 'caf\u00e9 % \u{1F600}', 'round-trips');
  for (const [code, spec] of Object.entries(ERRORS)) t.equal(encodeGrpcMessage(spec.message), spec.message, `${code}'s message is printable ASCII and needs no escapes`);
});
