// grpc-timeout parsing (PROTOCOL-HTTP2.md: 1-8 ASCII digits and one of H M S m u n). A value that
// does not have that shape is ignored, never a crash and never a longer deadline.
import t from 'tap';
import { parseGrpcTimeout } from '../../src/request/grpc-timeout.js';

t.test('every unit converts to whole milliseconds, rounded up', async (t) => {
  t.equal(parseGrpcTimeout('1H'), 3_600_000);
  t.equal(parseGrpcTimeout('2M'), 120_000);
  t.equal(parseGrpcTimeout('3S'), 3_000);
  t.equal(parseGrpcTimeout('250m'), 250);
  t.equal(parseGrpcTimeout('1500u'), 2);
  t.equal(parseGrpcTimeout('1n'), 1, 'a nanosecond is a 1 ms deadline, not no deadline');
  t.equal(parseGrpcTimeout('99999999n'), 100);
  t.equal(parseGrpcTimeout('0S'), 0, 'zero: the deadline has already passed');
  t.equal(parseGrpcTimeout('00000010m'), 10, 'leading zeros count toward the eight digits');
});

t.test('the largest value is finite', async (t) => {
  t.equal(parseGrpcTimeout('99999999H'), 99_999_999 * 3_600_000);
  t.ok(Number.isSafeInteger(parseGrpcTimeout('99999999H')));
});

t.test('absent or malformed values are ignored', async (t) => {
  const hostile = [
    undefined,
    '',
    'S',
    '1',
    '123456789S', // nine digits
    '-1S',
    '+1S',
    '1.5S',
    '1e3m',
    ' 1S',
    '1S ',
    '1 S',
    '1s', // units are case-sensitive: s is not S
    '1h',
    '1x',
    '1SS',
    '1S, 2S', // a repeated header, joined by Node
    '1S,2S',
    '\u0661S', // ARABIC-INDIC DIGIT ONE
    '\uff11S', // FULLWIDTH DIGIT ONE
    '1\u200bS',
    '1S\n',
    '0x10S',
    'Infinity',
    'NaN',
    '9'.repeat(10_000) + 'S',
  ];
  for (const v of hostile) t.equal(parseGrpcTimeout(v), null, JSON.stringify(v === undefined ? 'undefined' : v.slice(0, 20)));
  t.equal(parseGrpcTimeout(['1S']), null, 'an array (never produced for this header) is not read');
  t.equal(parseGrpcTimeout(['1S', '2S']), null);
});
