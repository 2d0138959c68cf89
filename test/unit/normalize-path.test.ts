/**
 * Request-target normalization: what is rewritten, what is refused and why, and that the query is
 * passed through untouched.
 */
import t from 'tap';
import { MAX_PATH_BYTES, normalizeTarget } from '../../src/request/normalize-path.js';

// TAP output is line-based: show the raw target with every non-printable character escaped.
const show = (raw: string): string => JSON.stringify(raw).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

t.test('rewrites', async (t) => {
  const rows: [string, string, string?][] = [
    ['/', '/'],
    ['/orders', '/orders'],
    ['/orders/', '/orders/'],
    ['/orders/42/lines', '/orders/42/lines'],
    ['//orders', '/orders'],
    ['/orders//42///lines', '/orders/42/lines'],
    ['/orders//', '/orders/'],
    ['//', '/'],
    ['/./orders', '/orders'],
    ['/orders/.', '/orders/'],
    ['/orders/./42', '/orders/42'],
    ['/orders/x/..', '/orders/'],
    ['/orders/x/../42', '/orders/42'],
    ['/orders/..', '/'],
    ['/a/b/c/../../d', '/a/d'],
    ['/.', '/'],
    ['/.well-known/x', '/.well-known/x'],
    ['/a/..x', '/a/..x'],
    ['/a/.x/', '/a/.x/'],
    ['/%6Frders', '/orders'],
    ['/orders/%61dmin', '/orders/admin'],
    ['/%41%5a%30%2d%5F%7e', '/AZ0-_~'],
    ['/a%20b', '/a%20b'],
    ['/caf%c3%a9', '/caf%C3%A9'],
    ['/100%25', '/100%25'],
    ['/%2541', '/%2541'],
    ["/a:b@c!$&'()*+,=", "/a:b@c!$&'()*+,="],
  ];
  for (const [raw, path] of rows) {
    t.same(normalizeTarget(raw), { ok: true, path, query: '' }, raw);
  }
  // Accepted only where the operator allowed them (server.paths); refused by default (next test).
  const permissive = { allowSemicolons: true, allowTrimmableSegments: true };
  const permissiveRows: [string, string][] = [
    ['/a/...', '/a/...'],
    ['/a%3bb', '/a%3Bb'],
    ['/a;b/c;v=1', '/a;b/c;v=1'],
    ['/a/b;/..', '/a/'],
    ['/orders/admin./x', '/orders/admin./x'],
    ['/a%20', '/a%20'],
  ];
  for (const [raw, path] of permissiveRows) t.same(normalizeTarget(raw, permissive), { ok: true, path, query: '' }, `${raw} (permissive)`);
});

t.test('refused by default: what upstreams commonly rewrite before routing', async (t) => {
  const rows: [string, string][] = [
    ['/a;b/c;v=1', 'semicolon'],
    ['/a%3bb', 'semicolon'],
    ['/a/b;/..', 'semicolon'],
    ['/a/...', 'trimmable-segment'],
    ['/orders/admin./users', 'trimmable-segment'],
    ['/orders/admin%20/users', 'trimmable-segment'],
    ['/orders/%20admin/users', 'trimmable-segment'],
    ['/orders/x/../%20admin', 'trimmable-segment'],
    ['/orders/admin%09/users', 'encoded-control'],
    ['/a%7f', 'encoded-control'],
    ['/a%1F', 'encoded-control'],
    ['/%ff', 'bad-utf8'],
    ['/%80', 'bad-utf8'],
    ['/%c0%ae', 'bad-utf8'],
    ['/%e2%82', 'bad-utf8'],
    ['/%ED%A0%80', 'bad-utf8'],
    ['/%C3%A9%C3', 'bad-utf8'],
    ['/orders/%u002e', 'bad-escape'],
  ];
  for (const [raw, reason] of rows) t.same(normalizeTarget(raw), { ok: false, reason }, show(raw));
  t.same(normalizeTarget('/caf%C3%A9/x%20y'), { ok: true, path: '/caf%C3%A9/x%20y', query: '' }, 'valid UTF-8 escapes and inner blanks stay');
});

t.test('query is split at the first "?" and passed through unchanged', async (t) => {
  t.same(normalizeTarget('/a?b=1&c=%2F..%2F'), { ok: true, path: '/a', query: '?b=1&c=%2F..%2F' });
  t.same(normalizeTarget('/a//b/../c?x=/../?y'), { ok: true, path: '/a/c', query: '?x=/../?y' });
  t.same(normalizeTarget('/a?'), { ok: true, path: '/a', query: '?' });
  t.same(normalizeTarget('/?%zz'), { ok: true, path: '/', query: '?%zz' });
  t.same(normalizeTarget('/a?b\\c'), { ok: true, path: '/a', query: '?b\\c' });
  const refused: [string, string][] = [
    ['/a?b\u0000', 'nul'],
    ['/a?b\r\nX: y', 'control-char'],
    ['/a?b\u007f', 'control-char'],
    ['/a?b#frag', 'fragment'],
    ['/a?b c', 'bad-char'],
    ['/a?caf\u00e9', 'non-ascii'],
  ];
  for (const [raw, reason] of refused) t.same(normalizeTarget(raw), { ok: false, reason }, show(raw));
});

t.test('refusals', async (t) => {
  const rows: [string, string][] = [
    ['', 'not-origin-form'],
    ['*', 'not-origin-form'],
    ['http://example.com/a', 'not-origin-form'],
    ['example.com:443', 'not-origin-form'],
    ['orders', 'not-origin-form'],
    ['?a', 'not-origin-form'],
    ['/a\u0000b', 'nul'],
    ['/a\tb', 'control-char'],
    ['/a\nb', 'control-char'],
    ['/a\u007fb', 'control-char'],
    ['/a b', 'bad-char'],
    ['/a\\b', 'backslash'],
    ['/a#b', 'fragment'],
    ['/caf\u00e9', 'non-ascii'],
    ['/\u2028', 'non-ascii'],
    ['/a%', 'bad-escape'],
    ['/a%4', 'bad-escape'],
    ['/a%G1', 'bad-escape'],
    ['/a%1G/b', 'bad-escape'],
    ['/a%%41', 'bad-escape'],
    // A run of UTF-8 escapes that ends in a cut-off or non-hex escape: the run stops there and the
    // escape itself is refused, without reading past the end of the segment.
    ['/%C3%A9%', 'bad-escape'],
    ['/%C3%A9%4', 'bad-escape'],
    ['/%C3%A9%zz', 'bad-escape'],
    ['/%C3%A9%4/x', 'bad-escape'],
    ['/a%2Fb', 'encoded-slash'],
    ['/a%2fb', 'encoded-slash'],
    ['/a%5Cb', 'encoded-backslash'],
    ['/a%5cb', 'encoded-backslash'],
    ['/a%2Eb', 'encoded-dot'],
    ['/a%2eb', 'encoded-dot'],
    ['/a%00b', 'encoded-nul'],
    ['/a%252Fb', 'double-encoded'],
    ['/a%252fb', 'double-encoded'],
    ['/a%255C', 'double-encoded'],
    ['/a%252e', 'double-encoded'],
    ['/a%2500', 'double-encoded'],
    ['/a%25%32%46', 'double-encoded'],
    ['/a%25%32f', 'double-encoded'],
    ['/..', 'above-root'],
    ['/../a', 'above-root'],
    ['/a/../..', 'above-root'],
    ['/a/../../b', 'above-root'],
  ];
  for (const [raw, reason] of rows) t.same(normalizeTarget(raw), { ok: false, reason }, show(raw));
  // "..;" stays refused even where ";" is allowed: Tomcat resolves "/a/..;/b" to "/b".
  for (const raw of ['/a/..;/b', '/a/.;/b', '/a/..;jsessionid=1', '/a/.;x']) {
    t.same(normalizeTarget(raw), { ok: false, reason: 'semicolon' }, `${show(raw)} (default)`);
    t.same(normalizeTarget(raw, { allowSemicolons: true }), { ok: false, reason: 'dot-segment-param' }, `${show(raw)} (allowSemicolons)`);
  }
});

t.test('length limit applies to the path', async (t) => {
  const max = '/' + 'a'.repeat(MAX_PATH_BYTES - 1);
  t.same(normalizeTarget(max), { ok: true, path: max, query: '' });
  t.same(normalizeTarget(max + 'a'), { ok: false, reason: 'too-long' });
  t.same(normalizeTarget('//' + 'a'.repeat(MAX_PATH_BYTES - 1)), { ok: false, reason: 'too-long' }, 'measured before normalization');
  t.equal(normalizeTarget(max + '?' + 'q'.repeat(10_000)).ok, true);
});

t.test('already-clean paths are returned as the same string', async (t) => {
  const raw = '/orders/42/lines';
  const r = normalizeTarget(raw);
  t.ok(r.ok && r.path === raw);
});
