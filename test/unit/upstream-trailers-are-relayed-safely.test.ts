// Which upstream trailers reach the client (src/proxy/forward-request.ts): gRPC's pass intact, in
// both shapes undici hands them over; fields that may not be trailers, and pseudo-headers, never do
// (on an HTTP/2 client response Node would throw on them from an event handler). And when the
// gateway asks an http2 upstream for trailers: only when the client's TE lists them.
import t from 'tap';
import { acceptsTrailers, relayableTrailers } from '../../src/proxy/forward-request.js';

const raw = (...pairs: string[]) => pairs.map((p) => Buffer.from(p, 'latin1'));

t.test('HTTP/1.1 raw trailers', async (t) => {
  t.same(relayableTrailers(raw('Grpc-Status', '9', 'grpc-message', 'not%20ready')), { 'grpc-status': '9', 'grpc-message': 'not%20ready' });
  t.same(relayableTrailers(raw('x-a', '1', 'X-A', '2')), { 'x-a': ['1', '2'] }, 'repeated names keep every value');
  t.equal(relayableTrailers(raw('content-length', '5', 'transfer-encoding', 'chunked', 'connection', 'close', 'host', 'x', 'te', 'trailers', 'trailer', 'a')), null);
  t.same(relayableTrailers(raw('x-odd', '1', 'dangling')), { 'x-odd': '1' }, 'an odd-length list never reads past its end');
  t.equal(relayableTrailers([]), null);
});

t.test('HTTP/2 trailer objects', async (t) => {
  const sensitive = Symbol('sensitiveHeaders');
  t.same(relayableTrailers({ 'grpc-status': '0', 'grpc-message': '', [sensitive]: [] } as unknown as Record<string, string>), { 'grpc-status': '0', 'grpc-message': '' });
  t.equal(relayableTrailers({ ':status': '200', 'content-type': 'text/plain', 'keep-alive': 'x', upgrade: 'h2c' }), null);
  t.same(relayableTrailers({ 'set-cookie': ['a=1', 'b=2'], gone: undefined }), { 'set-cookie': ['a=1', 'b=2'] });
  t.equal(relayableTrailers({}), null);
});

t.test('TE lists trailers', async (t) => {
  for (const te of ['trailers', 'Trailers', 'deflate, trailers', 'trailers, deflate;q=0.5', ' trailers ', 'gzip,trailers']) t.ok(acceptsTrailers(te), te);
  for (const te of [undefined, '', 'gzip', 'trailersx', 'xtrailers', 'deflate;q=trailers', 'x'.repeat(100_000)]) t.notOk(acceptsTrailers(te), String(te).slice(0, 20));
  t.ok(acceptsTrailers(['gzip', 'trailers']), 'a repeated TE');
});
