// An upstream may send interim (1xx) responses before its final one: 102 Processing, 103 Early
// Hints. The gateway relays only the final response: the client sees exactly one status line, the
// upstream's final status with its headers and body, and none of the interim headers.
import t from 'tap';
import { startStack } from '../helpers/harness.js';
import { rawExchange } from '../helpers/raw-exchange.js';

t.test('102 and 103 from the upstream are dropped; the final response is relayed', async (t) => {
  const s = await startStack({
    crl: false,
    upstreamHandler: (_req, res) => {
      res.writeProcessing();
      res.writeEarlyHints({ link: '</style.css>; rel=preload; as=style' }, () => {
        res.writeHead(201, { 'content-type': 'text/plain', 'content-length': '7', 'x-final': 'yes' });
        res.end('created');
      });
    },
  });
  t.teardown(() => s.close());
  const billing = s.pki.clients['billing']!;
  const out = await rawExchange(s.gw.port, { ca: s.pki.root.certPem, cert: billing.chainPem, key: billing.keyPem }, 'GET /orders/1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n', { endAfterWrite: false });
  t.same(out.statuses, [201], 'one status line, the final one');
  t.match(out.text, /\r\nx-final: yes\r\n/i);
  t.notMatch(out.text, /style\.css/, 'no interim header leaked into the final response');
  t.ok(out.text.endsWith('\r\n\r\ncreated'), 'the final body');
  t.equal(s.upstream.seen.length, 1);
  t.match(s.gw.logs.find((l) => l.msg === 'request'), { status: 201, path: '/orders/1' });
});
