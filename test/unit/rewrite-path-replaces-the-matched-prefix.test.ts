/**
 * Path rewrite (compileRewrite, rewritePrefixProblem): the part of the normalized path that the
 * route's pathPrefix matched is replaced by rewrite.prefix; an exact path match becomes the prefix
 * as written. Security: the rewrite runs after the policy decision, so the path it produces was
 * never judged; these tests pin that it cannot make a "//" at the join, a path without a leading
 * "/", or a dot segment the request did not have, and that prefixes which could are refused.
 */
import t from 'tap';
import { rewritePrefixProblem } from '../../src/config/rewrite-prefix.js';
import { compileRewrite } from '../../src/proxy/rewrite-path.js';

t.test('pathPrefix routes: the matched prefix is replaced', async (t) => {
  const cases: readonly [string, string, readonly [string, string][]][] = [
    ['/orders', '/v1/orders', [['/orders/42', '/v1/orders/42'], ['/orders', '/v1/orders'], ['/orders/', '/v1/orders/']]],
    ['/orders/', '/v1/orders/', [['/orders/42', '/v1/orders/42'], ['/orders', '/v1/orders'], ['/orders/a/b', '/v1/orders/a/b']]],
    ['/orders', '/v1/orders/', [['/orders/42', '/v1/orders/42'], ['/orders', '/v1/orders']]],
    ['/orders/', '/v1/orders', [['/orders/42', '/v1/orders/42'], ['/orders', '/v1/orders']]],
    ['/orders', '/', [['/orders/42', '/42'], ['/orders', '/'], ['/orders/', '/']]],
    ['/', '/api', [['/x', '/api/x'], ['/', '/api'], ['/a/b/c', '/api/a/b/c'], ['/x/', '/api/x/']]],
    ['/', '/api/', [['/x', '/api/x'], ['/', '/api']]],
    ['/', '/', [['/x', '/x'], ['/', '/']]],
    ['/a/b', '/c', [['/a/b/d', '/c/d'], ['/a/b', '/c']]],
  ];
  for (const [pathPrefix, prefix, examples] of cases) {
    const rewrite = compileRewrite({ pathPrefix }, prefix);
    for (const [from, to] of examples) t.equal(rewrite(from), to, `pathPrefix ${pathPrefix} -> ${prefix}: ${from}`);
  }
});

t.test('under pathPrefix "/" the root maps to the rewrite root, as "/orders" maps to "/v1/orders"', async (t) => {
  // With base "" the "/" of the root path is the leading slash every path has, not a trailing one.
  t.equal(compileRewrite({ pathPrefix: '/' }, '/api')('/'), '/api');
  t.equal(compileRewrite({ pathPrefix: '/' }, '/api/')('/'), '/api');
  t.equal(compileRewrite({ pathPrefix: '/' }, '/')('/'), '/');
  // A trailing slash elsewhere is the request's own and is kept.
  t.equal(compileRewrite({ pathPrefix: '/orders/' }, '/v1/orders')('/orders/'), '/v1/orders/');
});

t.test('case-folding routes: the matched part is replaced whatever its case', async (t) => {
  const rewrite = compileRewrite({ pathPrefix: '/orders' }, '/v1/orders');
  t.equal(rewrite('/ORDERS/x'), '/v1/orders/x');
  t.equal(rewrite('/Orders'), '/v1/orders');
  t.equal(rewrite('/oRdErS/AbC'), '/v1/orders/AbC', 'the rest keeps its case');
});

t.test('exact path routes: the whole path becomes the prefix as written', async (t) => {
  t.equal(compileRewrite({ path: '/health' }, '/internal/status')('/health'), '/internal/status');
  t.equal(compileRewrite({ path: '/health' }, '/internal/status/')('/HEALTH'), '/internal/status/', 'trailing slash kept');
  t.equal(compileRewrite({ path: '/health', pathPrefix: undefined }, '/')('/health'), '/');
});

t.test('property: over a corpus of matched paths the join is clean', async (t) => {
  const pathPrefixes = ['/', '/orders', '/orders/', '/a/b', '/a/b/'];
  const prefixes = ['/', '/v1', '/v1/', '/v1/orders', '/v1/orders/', '/x.y/z..w/.hidden', '/~user/a:b@c'];
  const tails = ['', '/', '/42', '/a/b', '/a/b/', '/x.y', '/.well-known', '/..x', '/a/...'];
  const cases: string[] = [];
  let checked = 0;
  for (const pathPrefix of pathPrefixes) {
    const base = pathPrefix.endsWith('/') ? pathPrefix.slice(0, -1) : pathPrefix;
    // The matched paths: the base in any case, extended by nothing or by "/..." (segment-bounded).
    const bases = [base, base.toUpperCase(), base.replace(/^\/./, (s) => s.toUpperCase())];
    for (const prefix of prefixes) {
      const rewrite = compileRewrite({ pathPrefix }, prefix);
      const rewriteBase = prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
      for (const b of bases) {
        for (const tail of tails) {
          const path = b + tail;
          if (path === '') continue; // not a path: base "" needs a tail
          const out = rewrite(path);
          checked++;
          const problems: string[] = [];
          if (!out.startsWith('/')) problems.push('no leading "/"');
          if (!out.startsWith(rewriteBase)) problems.push('does not start with the rewrite base');
          if (out.includes('//')) problems.push('"//"');
          const dots = (p: string): number => p.split('/').filter((s) => s === '.' || s === '..').length;
          if (dots(out) > dots(path)) problems.push('a dot segment the input did not have');
          // The rest after the rewrite base is the rest after the matched base, except that the
          // root under base "" maps to the rewrite root itself.
          const rest = b === '' && path === '/' ? '' : tail;
          const expected = rewriteBase + rest === '' ? '/' : rewriteBase + rest;
          if (out !== expected) problems.push(`expected ${expected}`);
          if (problems.length > 0) cases.push(`${pathPrefix} -> ${prefix}: ${path} -> ${out}: ${problems.join(', ')}`);
        }
      }
    }
  }
  t.ok(checked > 300, `checked ${checked} rewrites`);
  t.same(cases, [], 'no rewrite broke a rule');
});

t.test('a path the route did not match is refused, not guessed at', async (t) => {
  const rewrite = compileRewrite({ pathPrefix: '/orders' }, '/v1');
  t.throws(() => rewrite('/ordersX'), /does not extend/);
  t.throws(() => rewrite('/orders//x'), /does not extend/, 'an empty segment at the join');
  t.throws(() => compileRewrite({ pathPrefix: '/' }, '/v1')('x'), /does not extend/);
});

t.test('compileRewrite refuses a bad prefix or an ambiguous match at load', async (t) => {
  t.throws(() => compileRewrite({ pathPrefix: '/a' }, 'v1'), /must start with "\/"/);
  t.throws(() => compileRewrite({ pathPrefix: '/a' }, '/v1/../admin'), /"\.\." segment/);
  t.throws(() => compileRewrite({}, '/v1'), /exactly one/);
  t.throws(() => compileRewrite({ path: '/a', pathPrefix: '/a' }, '/v1'), /exactly one/);
});

t.test('rewritePrefixProblem accepts plain paths', async (t) => {
  for (const prefix of ['/', '/v1', '/v1/', '/v1/orders', "/a-b_c.d~e!f$g&h'i(j)k*l+m,n=o:p@q", '/x.y', '/..x', '/a...', '/' + 'a'.repeat(1023)]) {
    t.equal(rewritePrefixProblem(prefix), null, prefix.length > 40 ? `${prefix.slice(0, 20)}... (${prefix.length})` : prefix);
  }
});

t.test('rewritePrefixProblem refuses every unsafe shape, saying why', async (t) => {
  const refused: readonly [string, RegExp][] = [
    ['', /start with "\/"/],
    ['v1', /start with "\/"/],
    ['v1/', /start with "\/"/],
    ['//v1', /"\/\/"/],
    ['/v1//x', /"\/\/"/],
    ['/v1//', /"\/\/"/],
    ['/.', /"\." segment/],
    ['/./v1', /"\." segment/],
    ['/v1/.', /"\." segment/],
    ['/v1/./', /"\." segment/],
    ['/..', /"\.\." segment/],
    ['/v1/../admin', /"\.\." segment/],
    ['/v1/..', /"\.\." segment/],
    ['/v1%2F', /"%"/],
    ['/%2e%2e', /"%"/],
    ['/v1?x=1', /"\?"/],
    ['/v1#frag', /"#"/],
    ['/v1\\admin', /"\\"/],
    ['/v1;jsessionid=1', /";"/],
    ['/v 1', /whitespace/],
    ['/v1\t', /control character \(U\+0009\)/],
    ['/v1\n', /control character \(U\+000A\)/],
    ['/v1\u0000', /control character \(U\+0000\)/],
    ['/v1\u007f', /control character \(U\+007F\)/],
    ['/v1\u00a0', /non-ASCII character \(U\+00A0\)/],
    ['/caf\u00e9', /non-ASCII character \(U\+00E9\)/],
    ['/\u{1f600}', /non-ASCII character \(U\+1F600\)/],
    ['/a"b', /"""/],
    ['/a<b>', /"<"/],
    ['/' + 'a'.repeat(1024), /at most 1024/],
  ];
  for (const [prefix, why] of refused) {
    const problem = rewritePrefixProblem(prefix);
    t.match(problem, why, JSON.stringify(prefix.length > 40 ? `${prefix.slice(0, 20)}... (${prefix.length})` : prefix));
  }
});
