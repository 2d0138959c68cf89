// Defends "a bad file on reload keeps the last good state": every kind of broken input a reload
// can meet (a corrupt or mismatched certificate or key, a CA bundle that is not one, a broken or
// hostile config, a bad CRL, a wrong-sized ticket key, a device or directory where a file should
// be, a change only a restart can apply) leaves the snapshot in force untouched, is refused with a
// code and the config key, is logged as reload-refused, counted in the metrics and shown in
// /status, while traffic keeps being served by the running state. The last case shows that
// fixing the file makes the next reload succeed.
import { mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';
import t from 'tap';
import { issueLeaf } from '../../src/pki/dev-pki.js';
import { gatewayYaml, startStack } from '../helpers/harness.js';

t.test('a reload with broken input changes nothing and says why', async (t) => {
  const s = await startStack();
  t.teardown(() => s.close());
  const { pki, dir } = s;
  const billing = pki.clients['billing']!;
  const file = path.join(dir, 'gateway.yaml');
  const good = gatewayYaml({ upstreamPort: s.upstream.port });
  const goodFiles: Record<string, string> = {
    'gateway.crt': pki.gatewayServer.chainPem,
    'gateway.key': pki.gatewayServer.keyPem,
    'gateway-client.crt': pki.gatewayClient.chainPem,
    'gateway-client.key': pki.gatewayClient.keyPem,
    'ca-bundle.pem': pki.caBundlePem,
    'intermediate.crl.pem': pki.intermediateCrl.pem,
  };
  const other = await issueLeaf(pki.intermediate, { name: 'other', subject: { CN: 'other' }, dns: ['localhost'], usage: 'server' });
  const garbage = '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n';
  const withConfig = (text: string) => async () => writeFile(file, text);
  const withFile = (name: string, text: string | Buffer) => async () => {
    await rm(path.join(dir, name), { recursive: true, force: true });
    await writeFile(path.join(dir, name), text);
  };

  const cases: Array<{ name: string; apply: () => Promise<void>; code: string; key: RegExp | null }> = [
    { name: 'server certificate is not PEM', apply: withFile('gateway.crt', 'hello'), code: 'GW_ERR_TLS_MATERIAL', key: /^tls\.cert$/ },
    { name: 'server certificate does not parse', apply: withFile('gateway.crt', garbage), code: 'GW_ERR_TLS_MATERIAL', key: /^tls\.cert$/ },
    { name: 'server key does not belong to the certificate', apply: withFile('gateway.key', other.keyPem), code: 'GW_ERR_TLS_MATERIAL', key: /^tls\.key$/ },
    { name: 'server key is empty', apply: withFile('gateway.key', ''), code: 'GW_ERR_TLS_MATERIAL', key: /^tls\.key$/ },
    { name: 'client CA bundle holds a leaf certificate', apply: withFile('ca-bundle.pem', billing.certPem), code: 'GW_ERR_TLS_MATERIAL', key: /^tls\.clientCA$/ },
    { name: 'client CA bundle is garbage', apply: withFile('ca-bundle.pem', Buffer.from([0, 1, 2, 255])), code: 'GW_ERR_TLS_MATERIAL', key: /^tls\.clientCA$/ },
    { name: 'upstream client key is missing', apply: async () => rm(path.join(dir, 'gateway-client.key')), code: 'GW_ERR_TLS_MATERIAL', key: /^upstreams\.orders\.tls\.key$/ },
    {
      name: 'server certificate is a directory',
      apply: async () => {
        await rm(path.join(dir, 'gateway.crt'), { force: true });
        await mkdir(path.join(dir, 'gateway.crt'));
      },
      code: 'GW_ERR_TLS_MATERIAL',
      key: /^tls\.cert$/,
    },
    {
      name: 'server certificate is a device that never ends',
      apply: async () => {
        await rm(path.join(dir, 'gateway.crt'), { force: true });
        await symlink('/dev/zero', path.join(dir, 'gateway.crt'));
      },
      code: 'GW_ERR_TLS_MATERIAL',
      key: /^tls\.cert$/,
    },
    { name: 'config is not YAML', apply: withConfig('listen: [unclosed\n  : :'), code: 'GW_ERR_CONFIG_INVALID', key: null },
    { name: 'config is empty', apply: withConfig(''), code: 'GW_ERR_CONFIG_INVALID', key: /^listen$|^tls$|^upstreams$|^routes$/ },
    { name: 'config has an unknown key', apply: withConfig(good + '\nsurprise: true\n'), code: 'GW_ERR_CONFIG_INVALID', key: /^$/ },
    { name: 'a route names an unknown upstream', apply: withConfig(good.replace('    upstream: orders\n', '    upstream: nowhere\n')), code: 'GW_ERR_CONFIG_INVALID', key: /^routes\[0\]\.upstream$/ },
    { name: 'a selector is empty', apply: withConfig(good.replace('      - spiffe: spiffe://example.org/ns/*/sa/billing\n', '      - {}\n')), code: 'GW_ERR_CONFIG_INVALID', key: /^routes\[0\]\.allow\[0\]$/ },
    { name: 'config is huge', apply: withConfig('#'.repeat(2 * 1024 * 1024)), code: 'GW_ERR_CONFIG_UNREADABLE', key: null },
    { name: 'config aliases explode', apply: withConfig(good + '\nx: &a [1,1,1,1,1,1,1,1,1,1]\ny: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nz: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nw: [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n'), code: 'GW_ERR_CONFIG_INVALID', key: null },
    { name: 'the listen port changes (needs a restart)', apply: withConfig(good.replace('listen: { host: 127.0.0.1, port: 0 }', 'listen: { host: 127.0.0.1, port: 1 }')), code: 'GW_ERR_CONFIG_INVALID', key: /^listen$/ },
    { name: 'the admin listener changes (needs a restart)', apply: withConfig(good.replace('admin: { listen: { host: 127.0.0.1, port: 0 } }', 'admin: { listen: { host: 127.0.0.1, port: 1 } }')), code: 'GW_ERR_CONFIG_INVALID', key: /^admin$/ },
    {
      name: 'a new CRL source holds garbage',
      apply: async () => {
        await writeFile(path.join(dir, 'bad.crl.pem'), '-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n');
        await writeFile(file, gatewayYaml({ upstreamPort: s.upstream.port, crlYaml: '  crl: [./root.crl.pem, ./intermediate.crl.pem, ./bad.crl.pem]' }));
      },
      code: 'GW_ERR_TLS_MATERIAL',
      key: null,
    },
    {
      name: 'the ticket key file has the wrong size',
      apply: async () => {
        await writeFile(path.join(dir, 'ticket.key'), Buffer.alloc(47, 1));
        await writeFile(file, good.replace('  clientCA: ./ca-bundle.pem\n', '  clientCA: ./ca-bundle.pem\n  sessionTickets: { keyFile: ./ticket.key }\n'));
      },
      code: 'GW_ERR_TLS_MATERIAL',
      key: /^tls\.sessionTickets\.keyFile$/,
    },
  ];

  const restore = async () => {
    for (const [name, text] of Object.entries(goodFiles)) {
      await rm(path.join(dir, name), { recursive: true, force: true });
      await writeFile(path.join(dir, name), text);
    }
    await writeFile(file, good);
  };

  let failures = 0;
  for (const c of cases) {
    await t.test(c.name, async (t) => {
      await c.apply();
      const before = s.gw.gateway.runtime.current;
      const logStart = s.gw.logs.length;
      const r = await s.gw.gateway.reload('test');
      failures++;
      t.equal(r.result, 'failure', 'refused');
      t.equal(r.generation, before.generation, 'generation unchanged');
      t.equal(r.error?.code, c.code, 'stable code');
      if (c.key !== null) t.match(r.error?.key ?? '', c.key, 'names the config key');
      t.equal(s.gw.gateway.runtime.current, before, 'the snapshot in force is the same object');
      const logged = s.gw.logs.slice(logStart).find((l) => l['event'] === 'reload-refused');
      t.match(logged, { code: c.code, generation: before.generation }, 'reload-refused is logged');
      t.match(s.gw.gateway.status().lastReload, { result: 'failure', error: { code: c.code } }, '/status shows it');
      const ok = await s.send(billing, { path: '/orders/1' });
      t.equal(ok.status, 200, 'traffic is served by the running state');
      t.equal((ok.socket as TLSSocket).getPeerCertificate().subject.CN, 'gateway', 'with the running certificate');
      await restore();
    });
  }

  const metrics = await s.gw.gateway.metrics.text();
  t.match(metrics, new RegExp(`mtls_gateway_config_reloads_total\\{result="failure"\\} ${failures}\\b`), 'every refusal is counted');
  t.match(metrics, /mtls_gateway_config_generation 1\b/, 'generation 1 still in force');

  await t.test('with the files fixed, the next reload succeeds', async (t) => {
    const r = await s.gw.gateway.reload('test');
    t.same(r, { result: 'success', generation: 2 });
    t.equal((await s.send(billing, { path: '/orders/2' })).status, 200);
  });
});
