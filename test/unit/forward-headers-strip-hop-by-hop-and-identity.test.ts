/**
 * Header rewriting on both legs, as pure functions: hop-by-hop headers (the fixed list and those a
 * Connection header names) never cross; identity and client-address headers the client sent are
 * dropped whatever their spelling, and the gateway's own are added. The end-to-end versions live in
 * test/security/ (client-sent-identity-headers-are-replaced, identity-looking-headers-never-reach-
 * the-upstream); these pin the edge cases of the functions themselves.
 */
import t from 'tap';
import { buildClientResponseHeaders, buildUpstreamRequestHeaders, canonicalHeaderName, RequestHeaderFilter } from '../../src/proxy/forward-headers.js';

const ctx = { clientAddress: '127.0.0.1', originalHost: 'api.example.com', requestId: 'req-12345678', xfcc: 'Hash=ab;Subject="CN=billing"' };

/** [name, value, ...] as a list of pairs, for readable comparisons. */
function pairs(flat: readonly string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i < flat.length; i += 2) out.push([flat[i]!, flat[i + 1]!]);
  return out;
}

t.test('header names compare lower-case with "_" read as "-"', async (t) => {
  t.equal(canonicalHeaderName('Content-Type'), 'content-type');
  t.equal(canonicalHeaderName('X_Forwarded_For'), 'x-forwarded-for');
  t.equal(canonicalHeaderName('x-request-id'), 'x-request-id');
});

t.test('the request filter: built-in names, prefixes and server.stripRequestHeaders', async (t) => {
  const builtIn = new RequestHeaderFilter();
  for (const name of ['connection', 'x-forwarded-for', 'x-real-ip', 'client-cert', 'x-amzn-mtls-clientcert-leaf']) t.ok(builtIn.drops(name), name);
  for (const name of ['x-ssl-client-s-dn', 'x-client-cert-subject', 'x-forwarded-tls-client-cert-info']) t.ok(builtIn.drops(name), `${name} (by prefix)`);
  for (const name of ['accept', 'content-type', 'x-tenant', 'authorization']) t.notOk(builtIn.drops(name), `${name} is kept`);
  const extra = new RequestHeaderFilter(['X_Tenant', 'Authorization']);
  t.ok(extra.drops('x-tenant'), 'configured names are canonicalized like header names');
  t.ok(extra.drops('authorization'));
  t.ok(extra.drops('x-forwarded-for'), 'configured names add to the built-in list');
  t.notOk(extra.drops('accept'));
});

t.test('upstream request headers', async (t) => {
  const raw = [
    'Host', 'api.example.com',
    'Accept', 'application/json',
    'Connection', 'keep-alive, X-Debug, , Upgrade',
    'X-Debug', 'on',
    'X_Forwarded_For', '6.6.6.6',
    'X-Request-Id', 'client-chosen',
    'x-forwarded-client-cert', 'Hash=evil',
    'X-Tenant', 'a',
    'X-Tenant', 'b',
  ];
  const out = pairs(buildUpstreamRequestHeaders(raw, ctx));
  t.same(out, [
    ['x-forwarded-client-cert', ctx.xfcc],
    ['x-request-id', 'req-12345678'],
    ['x-forwarded-for', '127.0.0.1'],
    ['x-forwarded-proto', 'https'],
    ['x-forwarded-host', 'api.example.com'],
    ['Accept', 'application/json'],
    ['X-Tenant', 'a'],
    ['X-Tenant', 'b'],
  ], 'the gateway\'s own headers first, then the client\'s in order with their spelling');

  const noHost = pairs(buildUpstreamRequestHeaders(['Accept', '*/*'], { ...ctx, originalHost: null }));
  t.notOk(noHost.some(([n]) => n === 'x-forwarded-host'), 'no x-forwarded-host without a Host (HTTP/1.0)');

  const withFilter = pairs(buildUpstreamRequestHeaders(['X-Tenant', 'a', 'Accept', '*/*'], { ...ctx, filter: new RequestHeaderFilter(['x-tenant']) }));
  t.same(withFilter.slice(5), [['Accept', '*/*']], 'the configured filter applies');

  const noConnection = pairs(buildUpstreamRequestHeaders(['Keep-Alive', 'timeout=5', 'TE', 'trailers', 'Accept', '*/*'], ctx));
  t.same(noConnection.slice(5), [['Accept', '*/*']], 'hop-by-hop headers go even without a Connection header');
});

t.test('client response headers', async (t) => {
  const raw = [
    'Content-Type', 'text/plain',
    'Connection', 'keep-alive, X-Internal,',
    'X-Internal', 'secret',
    'Keep-Alive', 'timeout=5',
    'Transfer-Encoding', 'chunked',
    'X-Request-Id', 'upstream-chosen',
    'Set-Cookie', 'a=1',
    'Set-Cookie', 'b=2',
  ].map((s) => Buffer.from(s, 'latin1'));
  t.same(pairs(buildClientResponseHeaders(raw, 'req-12345678')), [
    ['Content-Type', 'text/plain'],
    ['Set-Cookie', 'a=1'],
    ['Set-Cookie', 'b=2'],
    ['x-request-id', 'req-12345678'],
  ], 'hop-by-hop and Connection-named headers dropped, the request id is the gateway\'s');

  const plain = [Buffer.from('ETag'), Buffer.from('"v1"')];
  t.same(pairs(buildClientResponseHeaders(plain, 'r-1234567')), [['ETag', '"v1"'], ['x-request-id', 'r-1234567']]);
  const latin1 = [Buffer.from('X-Name'), Buffer.from([0x63, 0x61, 0x66, 0xe9])];
  t.same(pairs(buildClientResponseHeaders(latin1, 'r-1234567'))[0], ['X-Name', 'caf\u00e9'], 'values pass byte for byte (latin1)');
  // `Connection: keep-alive` names only what is dropped anyway and takes a shortcut; anything more
  // (or anything merely close to it) must still be read as a token list.
  const named = (connection: string) =>
    pairs(buildClientResponseHeaders(['Connection', connection, 'X-Internal', 'secret', 'Close', 'x', 'Keep-AliveX', 'y', 'ETag', '"v1"'].map((s) => Buffer.from(s, 'latin1')), 'r-1'));
  const passes = (connection: string) => named(connection).map(([n]) => n);
  const all = ['X-Internal', 'Close', 'Keep-AliveX', 'ETag', 'x-request-id'];
  for (const v of ['keep-alive', 'Keep-Alive', 'KEEP-ALIVE']) t.same(passes(v), all, `Connection: ${v} drops only itself`);
  for (const v of ['close', 'Close', 'CLOSE', 'keep-alive, close']) t.same(passes(v), all.filter((n) => n !== 'Close'), `Connection: ${v} drops a field named Close (RFC 9110 7.6.1)`);
  for (const v of ['keep-alive, X-Internal', 'X-Internal', 'close,x-internal', ' x-internal ']) {
    t.notOk(passes(v).includes('X-Internal'), `Connection: ${v} drops X-Internal`);
  }
  t.notOk(passes('keep-alivex').includes('Keep-AliveX'), 'a value one byte longer is a token list (keep-alivex names Keep-AliveX)');
  t.notOk(passes('Keep-AliveX').includes('Keep-AliveX'), 'the same in upper case');
  t.same(passes('keep-aliv\u00e9'), all, 'a value as long as keep-alive that is not it drops nothing it does not name');
  t.same(passes('kee\u0010-alive'), all, 'control bytes are not folded into letters');
  t.notOk(passes('close').includes('Connection'), 'Connection itself never passes');
  // The gateway's own HTTP/1.1 client (server.engine: lean) hands the same list as latin1 strings:
  // the same answer, byte for byte, in every case above.
  const asStrings = (list: Buffer[]) => list.map((b) => b.toString('latin1'));
  t.same(buildClientResponseHeaders(asStrings(raw), 'req-12345678'), buildClientResponseHeaders(raw, 'req-12345678'), 'strings: hop-by-hop and Connection-named dropped alike');
  t.same(buildClientResponseHeaders(asStrings(latin1), 'r-1'), buildClientResponseHeaders(latin1, 'r-1'), 'strings: latin1 bytes alike');
  for (const v of ['keep-alive', 'KEEP-ALIVE', 'close', 'keep-alive, X-Internal', 'keep-alivex', 'keep-aliv\u00e9', 'kee\u0010-alive']) {
    const list = ['Connection', v, 'X-Internal', 'secret', 'Close', 'x', 'Keep-AliveX', 'y', 'ETag', '"v1"'];
    t.same(buildClientResponseHeaders(list, 'r-1'), buildClientResponseHeaders(list.map((x) => Buffer.from(x, 'latin1')), 'r-1'), `strings: Connection: ${JSON.stringify(v)} alike`);
  }
});
