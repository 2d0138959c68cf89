// Dockerfile and docker-compose.yml checked offline (no Docker engine here): the image is
// multi-stage on Node 24 with production dependencies only, runs as `node`, bakes in no
// certificates or config, stops on SIGTERM, and its HEALTHCHECK asks the admin listener's /readyz
// (the command itself is run here against local servers); the compose file parses, names files
// that exist, and agrees with deploy/docker/gateway.yaml (ports, mount paths, service names, the
// dev PKI's file names and DNS names, the admin port) and with the demo's routes.
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { access, readFile, readdir } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import t from 'tap';
import { parse as parseYaml, parseDocument } from 'yaml';
import { parseConfigText } from '../../src/config/load-config.js';
import { createDevPki } from '../../src/pki/dev-pki.js';
import { writeDevPki } from '../../src/pki/write-dev-pki.js';
import { REPO } from '../helpers/demo-cli.js';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function flag(command: string[], name: string): string | undefined {
  const i = command.indexOf(name);
  return i >= 0 ? command[i + 1] : undefined;
}

/** The exec-form command of the Dockerfile's HEALTHCHECK (continuation lines joined). */
function healthcheckCommand(dockerfile: string): string[] {
  const joined = dockerfile.replace(/\\\n\s*/g, ' ');
  const line = joined.split('\n').find((l) => /^HEALTHCHECK /.test(l))!;
  return JSON.parse(line.slice(line.indexOf('CMD ') + 4)) as string[];
}

/** Runs the health check command with ADMIN_PORT set; resolves to its exit code. */
function runHealthcheck(command: string[], adminPort: number): Promise<number> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, command.slice(1), { env: { ...process.env, ADMIN_PORT: String(adminPort) }, timeout: 15_000 }, () => resolve(child.exitCode ?? -1));
  });
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

t.test('Dockerfile', async (t) => {
  const text = await readFile(path.join(REPO, 'Dockerfile'), 'utf8');
  const lines = text.split('\n').filter((l) => !l.trim().startsWith('#'));
  const from = lines.filter((l) => /^FROM /.test(l));
  t.equal(from.length, 2, 'two stages: build and runtime');
  t.match(text, /^ARG NODE_IMAGE=node:24-/m, 'Node 24 LTS base');
  t.match(lines.join('\n'), /npm ci --omit=dev --ignore-scripts/, 'runtime stage: production dependencies, no prepare/build');
  t.match(lines.join('\n'), /COPY --from=build \/app\/dist \.\/dist/);
  t.match(lines.join('\n'), /^USER node$/m);
  t.match(lines.join('\n'), /^STOPSIGNAL SIGTERM$/m);
  t.match(lines.join('\n'), /^HEALTHCHECK /m);
  t.match(lines.join('\n'), /ADMIN_PORT=9901/, 'ADMIN_PORT defaults to admin.listen.port\'s default');
  t.notMatch(text, /HEALTHCHECK_PORT/, 'the TCP check on the TLS port is gone');
  t.notMatch(lines.filter((l) => /^EXPOSE /.test(l)).join('\n'), /9901/, 'the admin port is not exposed');
  t.match(lines.join('\n'), /^ENTRYPOINT \["node", "dist\/cli\/main\.js"\]$/m);
  t.match(lines.join('\n'), /^CMD \["start"\]$/m);
  t.match(lines.join('\n'), /MTLS_GATEWAY_CONFIG=\/etc\/mtls-gateway\/gateway\.yaml/);
  const copies = lines.filter((l) => /^COPY /.test(l)).join('\n');
  t.notMatch(copies, /\s(\.\/)?(certs|config|deploy)\b|\.(pem|key|crt)\b/, 'no certificates, keys or config baked in');
  const ignore = (await readFile(path.join(REPO, '.dockerignore'), 'utf8')).split('\n');
  for (const p of ['certs', 'node_modules', '*.key', '*.pem', '.git']) t.ok(ignore.includes(p), `.dockerignore excludes ${p}`);
  for (const f of ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json']) await t.resolves(access(path.join(REPO, f)), `${f} (copied by the build) exists`);
});

t.test('the HEALTHCHECK command passes only on 200 from /readyz', async (t) => {
  const command = healthcheckCommand(await readFile(path.join(REPO, 'Dockerfile'), 'utf8'));
  t.equal(command[0], 'node');
  t.match(command.join(' '), /\/readyz/);
  t.match(command.join(' '), /process\.env\.ADMIN_PORT\|\|9901/);

  const paths: string[] = [];
  let status = 200;
  const admin = createServer((req, res) => {
    paths.push(`${req.method} ${req.url}`);
    res.writeHead(status, { 'content-type': 'application/json' }).end(status === 200 ? '{"ready":true}' : '{"ready":false,"reasons":["draining"]}');
  });
  const port = await listen(admin);
  t.teardown(() => admin.close());
  t.equal(await runHealthcheck(command, port), 0, 'ready: exit 0');
  t.same(paths, ['GET /readyz'], 'asks GET /readyz');
  status = 503;
  t.equal(await runHealthcheck(command, port), 1, '503: exit 1');
  status = 500;
  t.equal(await runHealthcheck(command, port), 1, '500: exit 1');

  const closed = createServer();
  const closedPort = await listen(closed);
  await new Promise((resolve) => closed.close(resolve));
  t.equal(await runHealthcheck(command, closedPort), 1, 'nothing listening: exit 1');

  const silent = createServer(() => {}); // never answers
  const silentPort = await listen(silent);
  t.teardown(() => silent.closeAllConnections());
  t.teardown(() => silent.close());
  t.equal(await runHealthcheck(command, silentPort), 1, 'no answer: exit 1 (its own timeout)');
  // Its own timeout is shorter than the HEALTHCHECK's --timeout, so a hung admin listener reads as
  // "unhealthy" rather than as a check that timed out.
  const own = Number(/AbortSignal\.timeout\((\d+)\)/.exec(command.join(' '))?.[1]);
  const docker = Number(/--timeout=(\d+)s/.exec(await readFile(path.join(REPO, 'Dockerfile'), 'utf8'))?.[1]) * 1000;
  t.ok(own > 0 && own < docker, `request timeout ${own} ms < --timeout ${docker} ms`);
});

t.test('docker-compose.yml', async (t) => {
  const doc = parseDocument(await readFile(path.join(REPO, 'docker-compose.yml'), 'utf8'), { merge: true });
  t.same(doc.errors.map((e) => e.message), [], 'parses');
  const compose = doc.toJS() as Obj;
  const services = compose['services'] as Record<string, Obj>;
  t.same(Object.keys(services).sort(), ['client', 'gateway', 'inventory', 'orders', 'pki']);
  const gw = services['gateway']!;

  for (const [name, s] of Object.entries(services)) {
    t.equal(s['build'], '.', `${name} builds from the repository`);
    t.equal(s['image'], 'mtls-gateway:dev', `${name} uses the one image`);
    t.equal(s['read_only'], true, `${name}: read-only root filesystem`);
    for (const v of (s['volumes'] as string[] | undefined) ?? []) {
      const [source] = v.split(':');
      if (source!.startsWith('.')) await t.resolves(access(path.join(REPO, source!)), `${name}: ${source} exists`);
      else t.ok(source! in (compose['volumes'] as Obj), `${name}: volume ${source} is declared`);
    }
  }
  await t.resolves(access(path.join(REPO, 'Dockerfile')));

  // The gateway's config: mounted where MTLS_GATEWAY_CONFIG points, valid, and consistent.
  const configTarget = gw['environment']['MTLS_GATEWAY_CONFIG'] as string;
  const configMount = (gw['volumes'] as string[]).find((v) => v.split(':')[1] === configTarget)!;
  t.ok(configMount, 'the config file is mounted at MTLS_GATEWAY_CONFIG');
  t.match(configMount, /:ro$/, 'read-only');
  const configFile = path.join(REPO, configMount.split(':')[0]!);
  const configText = await readFile(configFile, 'utf8');
  const config = parseConfigText(configText, configTarget);
  t.equal(config.listen.host, '0.0.0.0');
  t.same(gw['ports'], [`127.0.0.1:${config.listen.port}:${config.listen.port}`], 'published on the listen port, loopback only (the admin port is not published)');
  // The image's HEALTHCHECK runs inside the container: the admin listener stays on loopback
  // (admin.listen defaults to 127.0.0.1:9901) and ADMIN_PORT names its port.
  t.equal(config.admin.enabled, true, 'the admin listener is on (the HEALTHCHECK needs it)');
  t.equal(config.admin.listen.host, '127.0.0.1', 'admin listener on loopback');
  t.equal(gw['environment']['ADMIN_PORT'], String(config.admin.listen.port), 'ADMIN_PORT = admin.listen.port');
  t.notOk('HEALTHCHECK_PORT' in gw['environment'], 'no HEALTHCHECK_PORT any more');
  t.notOk(gw['healthcheck'], 'the gateway uses the image\'s /readyz HEALTHCHECK');
  t.equal(gw['command'][0], 'start');

  // Every file the config names lives in the certs volume, under a name `pki init` writes.
  const certsMount = (gw['volumes'] as string[]).find((v) => v.startsWith('certs:'))!;
  const certsDir = certsMount.split(':')[1]!;
  const pki = await createDevPki({ upstreamNames: Object.keys(config.upstreams) });
  const written = t.testdir();
  await writeDevPki(pki, written);
  const pkiFiles = await readdir(written);
  const named = [config.tls.cert, config.tls.key, config.tls.clientCA, ...((config.tls.crl ?? []) as string[]), ...Object.values(config.upstreams).flatMap((u) => [u.tls.cert, u.tls.key, u.tls.ca])];
  for (const f of named) {
    t.equal(path.dirname(f), certsDir, `${f} is in the certs volume`);
    t.ok(pkiFiles.includes(path.basename(f)), `${path.basename(f)} is written by pki init`);
  }
  const pkiCommand = (services['pki']!['command'] as string[]).join(' ');
  t.match(pkiCommand, new RegExp(`pki init --out ${certsDir} --if-absent`), 'the pki service writes the volume, once');
  t.ok((services['pki']!['volumes'] as string[]).includes(`certs:${certsDir}`), 'pki writes the same volume');
  t.equal(gw['depends_on']['pki']['condition'], 'service_completed_successfully');

  // Upstreams: the URL's host is a network alias of the service that runs it, on its --listen port,
  // and the dev PKI's upstream certificate carries the servername.
  for (const [name, u] of Object.entries(config.upstreams)) {
    const svc = services[name];
    if (!t.ok(svc, `a service for upstream ${name}`)) continue;
    const cmd = svc!['command'] as string[];
    const url = new URL(u.url!);
    t.equal(flag(cmd, '--name'), name);
    t.equal(flag(cmd, '--listen'), `0.0.0.0:${url.port}`, `${name} listens where the gateway expects it`);
    t.equal(flag(cmd, '--certs'), certsDir);
    t.ok((svc!['networks']['mesh']['aliases'] as string[]).includes(url.hostname), `${url.hostname} resolves to the ${name} service`);
    // The demo services have no admin listener: their own check connects to their TLS port.
    const test = (svc!['healthcheck']?.['test'] ?? []) as string[];
    t.equal(test[0], 'CMD', `${name} overrides the image's /readyz HEALTHCHECK`);
    t.match(test.join(' '), new RegExp(`connect\\(${url.port},'127\\.0\\.0\\.1'\\)`), `${name}'s health check connects to its port ${url.port}`);
    t.match(new X509Certificate(pki.upstreams[name]!.certPem).subjectAltName, new RegExp(`DNS:${u.tls.servername.replace(/\./g, '\\.')}(,|$)`), `the ${name} certificate carries ${u.tls.servername}`);
    t.equal(gw['depends_on'][name]['condition'], 'service_healthy');
  }

  // The client reaches the gateway by a name its certificate carries.
  const client = services['client']!['command'] as string[];
  const gatewayUrl = new URL(flag(client, '--gateway')!);
  t.equal(Number(gatewayUrl.port), config.listen.port);
  t.ok((gw['networks']['mesh']['aliases'] as string[]).includes(gatewayUrl.hostname), `${gatewayUrl.hostname} resolves to the gateway`);
  t.match(new X509Certificate(pki.gatewayServer.certPem).subjectAltName, new RegExp(`DNS:${gatewayUrl.hostname.replace(/\./g, '\\.')}(,|$)`));
  t.equal(flag(client, '--certs'), certsDir);

  // Same routes and upstreams as the demo config.
  const demo = parseYaml(await readFile(path.join(REPO, 'config', 'gateway.yaml'), 'utf8')) as Obj;
  t.same(parseYaml(configText)['routes'], demo['routes'], 'same routes as config/gateway.yaml');
  t.same(Object.keys(config.upstreams), Object.keys(demo['upstreams']));

  // Entry points exist in the build output's sources.
  for (const e of ['src/cli/main.ts', 'src/demo/upstream-main.ts', 'src/demo/tour-main.ts']) await t.resolves(access(path.join(REPO, e)), `${e} exists`);
});
