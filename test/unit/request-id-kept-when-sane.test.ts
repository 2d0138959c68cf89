/**
 * Request ids: a client's x-request-id is kept when it is 8-128 characters of a safe set (so traces
 * join up across services); anything else is replaced by a fresh UUID. Security: the id is echoed
 * in responses, logs and upstream headers, so a value that could break a header or a log line must
 * never be kept.
 */
import t from 'tap';
import { requestIdFor } from '../../src/request/request-id.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
// requestIdFor takes the parsed x-request-id header value (undefined when absent).
const reqWith = (id: string | string[] | undefined): string | string[] | undefined => id;

t.test('sane client ids are kept', async (t) => {
  for (const id of ['abcdefgh', 'trace-1234:span/5678', 'A1b2C3d4.e5@f6+g7=h8_', 'x'.repeat(128), '0f1e2d3c-4b5a-4978-8a9b-0c1d2e3f4a5b']) {
    t.equal(requestIdFor(reqWith(id)), id, id);
  }
});

t.test('missing or unsafe ids are replaced with a fresh UUID', async (t) => {
  const rows: [string | string[] | undefined, string][] = [
    [undefined, 'absent'],
    ['', 'empty'],
    ['short', 'under 8 characters'],
    ['x'.repeat(129), 'over 128 characters'],
    ['abcd efgh', 'a space'],
    ['abcdefgh\r\nx-admin: 1', 'CR LF'],
    ['abcdefgh,ijklmnop', 'a comma (two ids joined by the parser)'],
    ['abcdefgh"', 'a quote'],
    ['caf\u00e9-caf\u00e9', 'non-ASCII'],
    [['abcdefgh', 'ijklmnop'], 'not a single string'],
  ];
  const seen = new Set<string>();
  for (const [id, why] of rows) {
    const got = requestIdFor(reqWith(id));
    t.match(got, UUID, why);
    seen.add(got);
  }
  t.equal(seen.size, rows.length, 'each one fresh');
});
