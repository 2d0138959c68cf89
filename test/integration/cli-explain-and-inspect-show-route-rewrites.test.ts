// `policy explain` and `cert inspect` show a route's rewrite: the path the upstream would receive
// next to the path the policy judged, so an operator can check a rewrite before deploying it.
import path from 'node:path';
import { readFile, writeFile } from 'node:fs/promises';
import t from 'tap';
import { parseDocument } from 'yaml';
import { formatInspection, inspectCertificate, readCertificateFile } from '../../src/cli/cert-inspect.js';
import { explainRequest, formatExplainResult } from '../../src/cli/policy-explain.js';
import { shippedLayout } from '../helpers/demo-cli.js';

t.test('explain and inspect on a rewriting route', async (t) => {
  const root = t.testdir();
  const { config, certs } = await shippedLayout(root);
  const doc = parseDocument(await readFile(config, 'utf8'));
  t.equal(doc.getIn(['routes', 0, 'name']), 'orders', 'the shipped config starts with the orders route');
  doc.setIn(['routes', 0, 'rewrite'], doc.createNode({ prefix: '/v1/orders' }));
  const rewriting = path.join(path.dirname(config), 'rewriting.yaml');
  await writeFile(rewriting, String(doc));
  const billing = path.join(certs, 'client-billing.crt');

  const r = await explainRequest({ configFile: rewriting, certFile: billing, method: 'GET', path: '/orders/42?expand=1', host: null });
  t.equal(r.result.status, 200);
  t.equal(r.request.normalizedPath, '/orders/42', 'the policy judged the client path');
  t.equal(r.result.upstreamPath, '/v1/orders/42?expand=1', 'the upstream receives the rewritten one');
  t.match(formatExplainResult(r), /ALLOW: forwarded to upstream "orders" by route "orders" \(routes\[0\]\.allow\[0\]\), as GET \/v1\/orders\/42\?expand=1 \(route rewrite; the policy judged \/orders\/42\)/);

  const plain = await explainRequest({ configFile: config, certFile: billing, method: 'GET', path: '/orders/42', host: null });
  t.equal(plain.result.upstreamPath, '/orders/42', 'without a rewrite the path goes as judged');
  t.notMatch(formatExplainResult(plain), /route rewrite/);

  const denied = await explainRequest({ configFile: rewriting, certFile: path.join(certs, 'client-intruder.crt'), method: 'GET', path: '/orders/42', host: null });
  t.equal(denied.result.upstreamPath, undefined, 'a denied request is forwarded nowhere');

  const inspected = await inspectCertificate({ file: billing, configFile: rewriting });
  t.equal(inspected.config!.routes[0]!.rewrite, '/v1/orders');
  t.equal(inspected.config!.routes[1]!.rewrite, null);
  const cert = await readCertificateFile(billing);
  t.match(formatInspection(inspected, cert, new Date()), /routes\[0\] orders\s+pathPrefix=\/orders.* -> rewrite \/v1\/orders/);
});
