// Pins a security decision (remote denial of service): one request with a malformed escape and no
// certificate used to end the process (`reply.helmet is not a function` from Fastify's
// frameworkErrors). Every answer the gateway writes itself must be writable from any state: no
// certificate, a certificate and a denied path, an upstream that resets. The process keeps serving.
import t from 'tap';
import { startStack } from '../helpers/harness.js';
import { firstJsonBody, rawExchange } from '../helpers/raw-exchange.js';

const TARGETS = ['/%ff', '/%zz', '/%', '/%2', '/%80', '/%c0%ae', '/%e2%82', '/%ED%A0%80', '/orders/%u002e', '/orders/%ff', '/admin/%ff', '/orders/reset/%ff'];

t.test('malformed escapes get documented answers in every state, and the process stays up', async (t) => {
  const crashes: unknown[] = [];
  const onCrash = (err: unknown) => crashes.push(err);
  process.on('uncaughtException', onCrash);
  process.on('unhandledRejection', onCrash);
  t.teardown(() => {
    process.off('uncaughtException', onCrash);
    process.off('unhandledRejection', onCrash);
  });
  const s = await startStack({
    upstreamHandler: (req, res) => {
      if (req.url?.includes('reset')) {
        req.socket.destroy();
        return;
      }
      res.end('ok');
    },
  });
  t.teardown(() => s.close());
  const billing = s.pki.clients['billing']!;
  const ca = s.pki.root.certPem;

  for (const target of TARGETS) {
    const payload = `GET ${target} HTTP/1.1\r\nHost: localhost\r\n\r\n`;
    const anonymous = await rawExchange(s.gw.port, { ca }, payload);
    t.same(anonymous.statuses, [401], `${target} without a certificate: 401`);
    t.match(firstJsonBody(anonymous.text), { error: { code: 'GW_ERR_CLIENT_CERT_MISSING' } }, `${target}: documented body`);
    t.match(anonymous.text, /\r\nx-content-type-options: nosniff\r\n/i, `${target}: security headers on the refusal`);

    const known = await rawExchange(s.gw.port, { ca, cert: billing.chainPem, key: billing.keyPem }, payload);
    t.same(known.statuses, [400], `${target} with a certificate: 400`);
    t.match(firstJsonBody(known.text), { error: { code: 'GW_ERR_PATH_INVALID' } }, `${target}: GW_ERR_PATH_INVALID`);
  }

  // An upstream failure is answered too (it used to drop the connection).
  const reset = await s.send(billing, { path: '/orders/reset' });
  t.equal(reset.status, 502, 'an upstream reset is a 502');
  t.match(reset.json, { error: { code: 'GW_ERR_UPSTREAM_RESET' } });

  const ok = await s.send(billing, { path: '/orders/1' });
  t.equal(ok.status, 200, 'the gateway still serves after every malformed request');
  t.same(crashes, [], 'no uncaught exception or unhandled rejection');
  t.notOk(s.gw.logs.some((l) => l['code'] === 'GW_ERR_INTERNAL'), 'no request failed with GW_ERR_INTERNAL');
  t.notOk(s.upstream.seen.some((r) => r.url.includes('%')), 'no malformed path reached the upstream');
});
