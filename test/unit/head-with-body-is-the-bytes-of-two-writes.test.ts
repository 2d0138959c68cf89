// headWithBody (src/proxy/relay-buffer.ts) puts a head and a small body in one buffer instead of two
// writes under cork: the bytes must be exactly those the two (or, chunked, three) writes sent, or a
// relayed answer or upload would be framed wrong on the wire.
import t from 'tap';
import { headWithBody } from '../../src/proxy/relay-buffer.js';

const head = 'HTTP/1.1 200 OK\r\nx-obs-text: caf\u00e9\r\ncontent-length: 5\r\n\r\n';

t.test('unframed: the head as latin1, then the body, byte for byte', async (t) => {
  const body = Buffer.from([0x00, 0xff, 0x0d, 0x0a, 0x41]);
  const out = headWithBody(head, body, false);
  t.same(out, Buffer.concat([Buffer.from(head, 'latin1'), body]));
  t.equal(out[head.indexOf('\u00e9')], 0xe9, 'obs-text stays one byte, as socket.write(head, "latin1") sends it');
});

t.test('chunked: the head, the size line in hex, the body and CRLF: one chunk, never the last one', async (t) => {
  for (const size of [1, 15, 16, 255, 4096, 16 * 1024]) {
    const body = Buffer.alloc(size, 0x61);
    const out = headWithBody('H\r\n\r\n', body, true);
    t.same(out, Buffer.concat([Buffer.from(`H\r\n\r\n${size.toString(16)}\r\n`, 'latin1'), body, Buffer.from('\r\n')]), `${size} bytes`);
  }
  t.same(headWithBody('H\r\n\r\n', Buffer.alloc(0), true), Buffer.from('H\r\n\r\n'), 'an empty body adds no chunk (a 0-size chunk would end the message)');
});

t.test('the buffer is a copy: the body may be reused once it returns', async (t) => {
  const body = Buffer.from('abc');
  const out = headWithBody('H:', body, false);
  body.fill(0x7a);
  t.equal(out.toString('latin1'), 'H:abc');
});
