// `mtls-gateway policy explain`: the gateway's answer to one request from one certificate, and why,
// on a table of cases against the shipped config/gateway.yaml; the exit code is the answer, so a
// policy can be pinned in CI (0 allow, 3 deny; --expect turns the expected answer into 0).
import path from 'node:path';
import { writeFile } from 'node:fs/promises';
import t from 'tap';
import { explainRequest, runPolicyExplain } from '../../src/cli/policy-explain.js';
import { captured, cli, shippedLayout } from '../helpers/demo-cli.js';

t.test('policy explain on a table of requests', async (t) => {
  const root = t.testdir();
  const { config, certs } = await shippedLayout(root);
  const cert = (name: string) => path.join(certs, `client-${name}.crt`);

  type Row = [client: string, method: string, reqPath: string, host: string | null, status: number, code: string | null, route: string | null, rule: string | null];
  const table: Row[] = [
    ['billing', 'GET', '/orders/42', null, 200, null, 'orders', 'routes[0].allow[0]'],
    ['billing', 'post', '/orders', 'gw.example.com:8443', 200, null, 'orders', 'routes[0].allow[0]'],
    ['ops-admin', 'GET', '/orders/42', null, 200, null, 'orders', 'routes[0].allow[1]'],
    ['ops-admin', 'GET', '/inventory/widgets', null, 200, null, 'inventory', 'routes[1].allow[0]'],
    ['billing', 'GET', '/inventory/widgets', null, 403, 'GW_ERR_POLICY_DENIED', 'inventory', null],
    ['intruder', 'GET', '/orders/42', null, 403, 'GW_ERR_POLICY_DENIED', 'orders', null],
    ['ops-admin', 'POST', '/inventory/widgets', null, 404, 'GW_ERR_ROUTE_NOT_FOUND', null, null],
    ['billing', 'GET', '/ordersx', null, 404, 'GW_ERR_ROUTE_NOT_FOUND', null, null],
    ['billing', 'GET', '/orders/..%2Finventory/widgets', null, 400, 'GW_ERR_PATH_INVALID', null, null],
    ['billing', 'GET', '/orders/%2e%2e/inventory', null, 400, 'GW_ERR_PATH_INVALID', null, null],
    ['billing', 'GET', '/orders/../inventory/widgets', null, 403, 'GW_ERR_POLICY_DENIED', 'inventory', null],
    ['billing', 'GET', '/orders/1', 'bad host!', 400, 'GW_ERR_HOST_INVALID', null, null],
    ['revoked', 'GET', '/orders/42', null, 401, 'GW_ERR_CLIENT_CERT_REVOKED', null, null],
  ];
  for (const [client, method, reqPath, host, status, code, route, rule] of table) {
    const what = `${client} ${method} ${reqPath}${host ? ` (host ${host})` : ''}`;
    const r = await explainRequest({ configFile: config, certFile: cert(client), method, path: reqPath, host });
    t.equal(r.result.status, status, `${what}: status`);
    t.equal(r.result.code, code, `${what}: code`);
    t.equal(r.result.route, route, `${what}: route`);
    t.equal(r.result.rule, rule, `${what}: rule`);
    t.equal(r.result.allowed, status === 200);
  }

  // The closest miss names the allow entry that came nearest and what failed.
  const denied = await explainRequest({ configFile: config, certFile: cert('billing'), method: 'GET', path: '/inventory/widgets', host: null });
  t.equal(denied.explanation!.closestMiss!.rule, 'routes[1].allow[0]');
  t.match(denied.result.summary, /closest routes\[1\]\.allow\[0\].*subject\.CN expected "ops-admin", got \["billing"\]/);
  const dotted = await explainRequest({ configFile: config, certFile: cert('billing'), method: 'GET', path: '/orders/../inventory/widgets', host: null });
  t.equal(dotted.request.normalizedPath, '/inventory/widgets', 'plain dot segments are resolved before matching, as on the wire');

  // The binary: exit codes are the answer.
  const badConfig = path.join(root, 'config', 'bad.yaml');
  await writeFile(badConfig, 'listen: { port: 1 }\n');
  const base = ['policy', 'explain', '--config', config];
  const [allow, deny, expectAllowButDenied, json] = await Promise.all([
    cli([...base, '--cert', cert('billing'), '--path', '/orders/42']),
    cli([...base, '--cert', cert('billing'), '--path', '/inventory/widgets', '--method', 'GET']),
    cli([...base, '--cert', cert('intruder'), '--path', '/orders/42', '--expect', 'allow']),
    cli([...base, '--cert', cert('ops-admin'), '--path', '/inventory/x', '--json']),
  ]);
  // The rest in process (same function the binary calls), one at a time.
  const opts: Parameters<typeof runPolicyExplain>[0] = { configFlag: config, cert: cert('billing'), method: undefined, path: '/orders/1', host: undefined, expect: undefined, json: false };
  const explainIn = (o: Partial<typeof opts>) => captured(() => runPolicyExplain({ ...opts, ...o }));
  const expectDeny = await explainIn({ cert: cert('intruder'), expect: 'deny' });
  process.env['MTLS_GATEWAY_CONFIG'] = config;
  const viaEnv = await explainIn({ configFlag: undefined, cert: cert('ops-admin'), method: 'POST' }).finally(() => delete process.env['MTLS_GATEWAY_CONFIG']);
  const noPath = await explainIn({ path: undefined });
  const badExpect = await explainIn({ expect: 'maybe' });
  const invalid = await explainIn({ configFlag: badConfig });
  t.equal(allow.code, 0, allow.stderr);
  t.match(allow.stdout, /^decision: allow: route "orders" \(routes\[0\]\) by routes\[0\]\.allow\[0\]$/m);
  t.match(allow.stdout, /^result: ALLOW: forwarded to upstream "orders"/m);
  t.equal(deny.code, 3);
  t.match(deny.stdout, /^closest miss: routes\[1\]\.allow\[0\] \[subject\.CN=ops-admin, subject\.OU=sre\]$/m);
  t.match(deny.stdout, /FAIL subject\.CN: expected "ops-admin", actual "billing"/);
  t.match(deny.stdout, /^result: DENY: 403 GW_ERR_POLICY_DENIED$/m);
  t.equal(expectDeny.code, 0, 'the expected deny is a pass');
  t.equal(expectAllowButDenied.code, 3);
  t.match(expectAllowButDenied.stderr, /expected allow, got deny/);
  t.equal(json.code, 0, json.stderr);
  t.match(JSON.parse(json.stdout), { result: { allowed: true, route: 'inventory', upstream: 'inventory', rule: 'routes[1].allow[0]' }, certificate: { verdict: { accepted: true } } });
  t.equal(viaEnv.code, 0, viaEnv.stderr);
  t.equal(noPath.code, 2);
  t.match(noPath.stderr, /--path is required/);
  t.equal(badExpect.code, 2);
  t.equal(invalid.code, 1);
  t.match(invalid.stderr, /invalid configuration/);
});
