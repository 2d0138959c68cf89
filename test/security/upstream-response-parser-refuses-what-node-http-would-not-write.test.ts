// The lean exchange relays an answer read by the gateway's own HTTP/1 upstream client without
// checking its header names and values again (src/dataplane/lean-exchange.ts, #writeHead): it
// relies on the client's response parser (llhttp, strict, no lenient flag) refusing every byte
// node:http would refuse to write to the client. This pins that, byte by byte, against node:http's
// own checks (`validateHeaderName`, `validateHeaderValue`), whole and split over two reads: if a
// later parser (or a lenient flag) let one through, an upstream could put a CR, LF or NUL into the
// client's answer, so this fails first. The end-to-end answer to such an upstream (502
// GW_ERR_UPSTREAM_PROTOCOL) is test/integration/malformed-upstream-response-is-502-protocol.
import { validateHeaderName, validateHeaderValue } from 'node:http';
import t from 'tap';
import { loadResponseParser, ResponseParser } from '../../src/proxy/llhttp-response-parser.js';

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

function accepted(check: () => void): boolean {
  try {
    check();
    return true;
  } catch {
    return false;
  }
}

const ANSWER = (line: string): string => `HTTP/1.1 200 OK\r\n${line}\r\nContent-Length: 0\r\n\r\n`;

t.test('a header value: every byte the parser lets through, node:http would write, unchanged', async (t) => {
  const wrong: string[] = [];
  for (let c = 0; c < 256; c++) {
    const value = `a${String.fromCharCode(c)}b`;
    const head = ANSWER(`X-A: ${value}`);
    const nodeWrites = accepted(() => validateHeaderValue('x-a', value));
    for (const split of [undefined, head.indexOf(value) + 1, head.indexOf(value) + 2]) {
      const got = parse(head, split);
      if ((got !== null) !== nodeWrites) wrong.push(`0x${c.toString(16)} (split ${split}): parser ${got !== null ? 'accepts' : 'refuses'}, node:http ${nodeWrites ? 'writes' : 'refuses'}`);
      else if (got !== null && got[1] !== value) wrong.push(`0x${c.toString(16)}: value read as ${JSON.stringify(got[1])}`);
    }
  }
  t.same(wrong, [], 'the parser and node:http agree on all 256 bytes, whole and split');
});

t.test('a header name: every byte the parser lets through is a token byte, unchanged', async (t) => {
  const wrong: string[] = [];
  for (let c = 0; c < 256; c++) {
    if (c === 0x3a) continue; // ':' ends the name: "X:A: v" is the header X, value "A: v".
    const name = `X${String.fromCharCode(c)}A`;
    const head = ANSWER(`${name}: v`);
    const nodeWrites = accepted(() => validateHeaderName(name));
    for (const split of [undefined, head.indexOf(name) + 1, head.indexOf(name) + 2]) {
      const got = parse(head, split);
      if ((got !== null) !== nodeWrites) wrong.push(`0x${c.toString(16)} (split ${split}): parser ${got !== null ? 'accepts' : 'refuses'}, node:http ${nodeWrites ? 'writes' : 'refuses'}`);
      else if (got !== null && got[0] !== name) wrong.push(`0x${c.toString(16)}: name read as ${JSON.stringify(got[0])}`);
    }
  }
  t.same(wrong, [], 'the parser and node:http agree on all 256 bytes, whole and split');
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
  t.ok(accepted(() => validateHeaderValue('x-a', padded?.[1] ?? '\0')), 'and node:http would write what is left');
  t.same(parse(ANSWER('X-A:')), ['X-A', '', 'Content-Length', '0'], 'an empty value is read as empty');
});

t.test('a value far beyond the header limit is refused, not truncated', async (t) => {
  t.equal(parse(ANSWER(`X-A: ${'a'.repeat(20 * 1024)}`)), null, 'refused');
});
