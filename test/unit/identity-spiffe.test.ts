// parseSpiffeId against the SPIFFE ID spec (section 2): what is an ID and what is not.
import t from 'tap';
import { parseSpiffeId } from '../../src/identity/spiffe.js';

t.test('valid SPIFFE IDs', async (t) => {
  t.strictSame(parseSpiffeId('spiffe://example.org/ns/default/sa/billing'), {
    uri: 'spiffe://example.org/ns/default/sa/billing',
    trustDomain: 'example.org',
    path: '/ns/default/sa/billing',
  });
  t.strictSame(parseSpiffeId('spiffe://example.org'), { uri: 'spiffe://example.org', trustDomain: 'example.org', path: '' }, 'trust domain alone');
  t.strictSame(parseSpiffeId('spiffe://a-b_c.9/Upper.Case-ok_1/x'), { uri: 'spiffe://a-b_c.9/Upper.Case-ok_1/x', trustDomain: 'a-b_c.9', path: '/Upper.Case-ok_1/x' }, 'path segments may be mixed case');
  t.ok(parseSpiffeId('spiffe://example.org/...'), 'three dots is an ordinary segment');
  t.ok(parseSpiffeId(`spiffe://${'a'.repeat(255)}/x`), '255-character trust domain');
  const maxLength = `spiffe://example.org/${'a'.repeat(2048 - 'spiffe://example.org/'.length)}`;
  t.equal(maxLength.length, 2048);
  t.ok(parseSpiffeId(maxLength), '2048 characters in all');
});

t.test('invalid SPIFFE IDs', async (t) => {
  const invalid: Array<[string, string]> = [
    ['SPIFFE://example.org/x', 'upper-case scheme'],
    ['Spiffe://example.org/x', 'mixed-case scheme'],
    ['spiffe://Example.org/x', 'upper-case trust domain'],
    ['spiffe:/example.org/x', 'one slash'],
    ['spiffe:example.org/x', 'no authority'],
    ['https://example.org/x', 'other scheme'],
    [' spiffe://example.org/x', 'leading space'],
    ['spiffe://', 'empty trust domain'],
    ['spiffe:///x', 'empty trust domain with path'],
    ['spiffe://example.org:8443/x', 'port'],
    ['spiffe://user@example.org/x', 'userinfo'],
    ['spiffe://exa mple.org/x', 'space in trust domain'],
    ['spiffe://example.org/', 'root path with trailing slash'],
    ['spiffe://example.org/a/', 'trailing slash'],
    ['spiffe://example.org//a', 'empty segment'],
    ['spiffe://example.org/a/./b', 'dot segment'],
    ['spiffe://example.org/a/../b', 'dot-dot segment'],
    ['spiffe://example.org/..', 'dot-dot only'],
    ['spiffe://example.org/a%2Fb', 'percent-encoding'],
    ['spiffe://example.org/%61', 'percent-encoded letter'],
    ['spiffe://example.org/a?b=c', 'query'],
    ['spiffe://example.org/a#frag', 'fragment'],
    ['spiffe://example.org?x', 'query on the trust domain'],
    ['spiffe://example.org/a b', 'space in path'],
    ['spiffe://example.org/ä', 'non-ASCII path'],
    ['spiffe://exämple.org/a', 'non-ASCII trust domain'],
    ['spiffe://example.org/a\\b', 'backslash'],
    ['spiffe://example.org/a,b', 'comma'],
    [`spiffe://${'a'.repeat(256)}/x`, '256-character trust domain'],
    [`spiffe://example.org/${'a'.repeat(2049 - 'spiffe://example.org/'.length)}`, '2049 characters'],
  ];
  for (const [uri, label] of invalid) t.equal(parseSpiffeId(uri), null, label);
});
