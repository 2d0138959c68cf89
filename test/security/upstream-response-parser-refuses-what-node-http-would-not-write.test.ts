// The lean exchange relays an answer read by the gateway's own HTTP/1 upstream client without
// checking its header names and values again (src/dataplane/lean-exchange.ts, #writeHead): it
// relies on the client's response parser (llhttp, strict, no lenient flag) refusing every byte
// node:http would refuse to write to the client. This pins that, byte by byte, against node:http's
// own checks (`validateHeaderName`, `validateHeaderValue`), whole and split over two reads: if a
// later parser (or a lenient flag) let one through, an upstream could put a CR, LF or NUL into the
// client's answer, so this fails first. The end-to-end answer to such an upstream (502
// GW_ERR_UPSTREAM_PROTOCOL) is test/integration/malformed-upstream-response-is-502-protocol.
import t from 'tap';
import { loadResponseParser, ResponseParser } from '../../src/proxy/llhttp-response-parser.js';
import { nodeHttpWritesName, nodeHttpWritesValue } from '../helpers/node-http-rules.js';

loadResponseParser();

/** The parsed header list, or null when the parser refused the head; `split` cuts the bytes in two reads there. */
function parse(head: string, split?: number): string[] | null {
  let got: string[] | null = null;
  const p = new ResponseParser(
    {
      onHeaders(_status, headers) {
        got = headers.slice();
        return false;
      },
      onBody() {},
      onComplete() {},
    },
    16 * 1024,
  );
  const bytes = Buffer.from(head, 'latin1');
  const parts = split === undefined ? [bytes] : [bytes.subarray(0, split), bytes.subarray(split)];
  for (const part of parts) if (p.execute(part).kind === 'error') return null;
  return got;
}

const ANSWER = (line: string): string => `HTTP/1.1 200 OK\r\n${line}\r\nContent-Length: 0\r\n\r\n`;

/**
 * For every byte: `field(byte)` is the name or value with that byte inside, `line(field)` the
 * header line, `index` where the field is in the parsed list (0 name, 1 value). Returns every
 * byte on which the parser (whole, and split over two reads inside the field) and node:http's
 * `nodeWrites` disagree, or where the parser read the field other than it was sent.
 */
function disagreements(field: (c: number) => string | null, line: (f: string) => string, index: 0 | 1, nodeWrites: (f: string) => boolean): string[] {
  const wrong: string[] = [];
  for (let c = 0; c < 256; c++) {
    const f = field(c);
    if (f === null) continue;
    const head = ANSWER(line(f));
    for (const split of [undefined, head.indexOf(f) + 1, head.indexOf(f) + 2]) {
      const got = parse(head, split);
      if ((got !== null) !== nodeWrites(f)) wrong.push(`0x${c.toString(16)} (split ${split}): parser ${got !== null ? 'accepts' : 'refuses'}, node:http ${nodeWrites(f) ? 'writes' : 'refuses'}`);
      else if (got !== null && got[index] !== f) wrong.push(`0x${c.toString(16)}: read as ${JSON.stringify(got[index])}`);
    }
  }
  return wrong;
}

t.test('a header value: every byte the parser lets through, node:http would write, unchanged', async (t) => {
  const wrong = disagreements((c) => `a${String.fromCharCode(c)}b`, (value) => `X-A: ${value}`, 1, nodeHttpWritesValue);
  t.same(wrong, [], 'the parser and node:http agree on all 256 bytes, whole and split');
});

t.test('a header name: every byte the parser lets through is a token byte, unchanged', async (t) => {
  // ':' ends the name: "X:A: v" is the header X with the value "A: v".
  const wrong = disagreements((c) => (c === 0x3a ? null : `X${String.fromCharCode(c)}A`), (name) => `${name}: v`, 0, nodeHttpWritesName);
  t.same(wrong, [], 'the parser and node:http agree on all 255 other bytes, whole and split');
});

t.test('line breaks an upstream could use to start a header of its own are refused', async (t) => {
  const cases: Record<string, string> = {
    'obs-fold (space)': 'X-A: a\r\n b',
    'obs-fold (tab)': 'X-A: a\r\n\tb',
    'obs-fold after an empty value': 'X-A:\r\n b',
    'bare LF then a header': 'X-A: a\nX-B: b',
    'bare CR then a header': 'X-A: a\rX-B: b',
    'bare LF ending the line': 'X-A: a\n',
    'NUL then CRLF': 'X-A: a\x00\r\nX-B: b',
    'a name with a space': 'X A: b',
    'a space before the colon': 'X-A : b',
    'an empty name': ': b',
  };
  for (const [what, lines] of Object.entries(cases)) t.equal(parse(ANSWER(lines)), null, `${what}: refused`);
  // Leading whitespace is not part of a value (RFC 9110 5.5; llhttp keeps trailing whitespace,
  // which node:http writes as it is), and a value may be empty.
  const padded = parse(ANSWER('X-A: \t a b \t '));
  t.equal(padded?.[1]?.startsWith('a b'), true, 'leading whitespace is dropped, inner kept');
  t.ok(nodeHttpWritesValue(padded?.[1] ?? '\0'), 'and node:http would write what is left');
  t.same(parse(ANSWER('X-A:')), ['X-A', '', 'Content-Length', '0'], 'an empty value is read as empty');
});

t.test('a value far beyond the header limit is refused, not truncated', async (t) => {
  t.equal(parse(ANSWER(`X-A: ${'a'.repeat(20 * 1024)}`)), null, 'refused');
});
