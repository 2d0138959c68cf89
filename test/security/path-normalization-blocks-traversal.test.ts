/**
 * SECURITY DECISION PINNED HERE: the route policy judges the normalized path and the upstream
 * receives exactly that path, so any spelling of a path that an upstream could resolve differently
 * (encoded separators or dots, backslashes, Tomcat "..;" segments, double encoding, climbing above
 * the root) must be refused, and every equivalent spelling of an allowed path must collapse to one
 * string. Do not relax a case below without a security review: each one is a known policy-bypass
 * vector (e.g. a deny rule on /admin sidestepped via /orders/..;/admin).
 */
import t from 'tap';
import { normalizeTarget } from '../../src/request/normalize-path.js';

// TAP output is line-based: show the raw target with every non-printable character escaped.
const show = (raw: string): string => JSON.stringify(raw).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

t.test('traversal and encoding tricks', async (t) => {
  const rows: [raw: string, expected: string | { refused: string }][] = [
    ['/orders/../admin', '/admin'],
    ['//admin', '/admin'],
    ['/orders/%61dmin', '/orders/admin'],
    ['/orders%2F..%2Fadmin', { refused: 'encoded-slash' }],
    ['/orders/%2e%2e/admin', { refused: 'encoded-dot' }],
    ['/orders/.%2e/admin', { refused: 'encoded-dot' }],
    ['/orders/..;/admin', { refused: 'semicolon' }],
    ['/orders/..%3B/admin', { refused: 'semicolon' }],
    ['/orders/.%3b/admin', { refused: 'semicolon' }],
    ['/%2e%2e/', { refused: 'encoded-dot' }],
    ['/../x', { refused: 'above-root' }],
    ['/orders/../../x', { refused: 'above-root' }],
    ['\\admin', { refused: 'not-origin-form' }],
    ['/\\admin', { refused: 'backslash' }],
    ['/orders\\..\\admin', { refused: 'backslash' }],
    ['/orders%5C..%5Cadmin', { refused: 'encoded-backslash' }],
    ['/admin\u0000.html', { refused: 'nul' }],
    ['/admin%00.html', { refused: 'encoded-nul' }],
    ['/orders%252F..%252Fadmin', { refused: 'double-encoded' }],
    ['/%252F', { refused: 'double-encoded' }],
    ['/orders/%25%32%65%25%32%65/admin', { refused: 'double-encoded' }],
    ['/admin#/orders', { refused: 'fragment' }],
    ['http://gateway/admin', { refused: 'not-origin-form' }],
  ];
  for (const [raw, expected] of rows) {
    const got = normalizeTarget(raw);
    if (typeof expected === 'string') t.same(got, { ok: true, path: expected, query: '' }, `${show(raw)} -> ${expected}`);
    else t.same(got, { ok: false, reason: expected.refused }, `${show(raw)} refused (${expected.refused})`);
  }
  // Where an operator allows ";" (server.paths.allowSemicolons), Tomcat's "..;" stays refused.
  for (const raw of ['/orders/..;/admin', '/orders/..%3B/admin', '/orders/.%3b/admin']) {
    t.same(normalizeTarget(raw, { allowSemicolons: true }), { ok: false, reason: 'dot-segment-param' }, `${show(raw)} refused with allowSemicolons`);
  }
});

t.test('normalization is idempotent: the output is already normal', async (t) => {
  const inputs = [
    '/',
    '/orders',
    '/orders/',
    '/orders/../admin',
    '//admin//x//',
    '/a/./b/../c/.',
    '/orders/%61dmin',
    '/%6f%72%64%65%72%73/%7e%2d',
    '/a%c3%a9',
    '/100%25',
    '/%25%34%31',
    '/a/.x/..x/...x',
    '/a/b/c/../../d/',
    '/.well-known/acme-challenge/x',
    "/!$&'()*+,=:@",
  ];
  for (const raw of inputs) {
    const once = normalizeTarget(raw);
    t.ok(once.ok, `${raw} is accepted`);
    if (!once.ok) continue;
    const twice = normalizeTarget(once.path);
    t.same(twice, once, `normalize(normalize(${raw}).path) is the same (${once.path})`);
  }
});
