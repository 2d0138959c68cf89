// deploy/kubernetes checked offline (no cluster here): every manifest parses, the kustomization
// names files that exist, the embedded gateway config is valid and agrees with the Deployment on
// ports and mount paths, the probes ask the admin listener (/readyz, /healthz), Prometheus finds
// /metrics on it, the Service keeps it private, shutdown is drainDelay (no preStop sleep) within
// the grace period, and the pod is locked down. When kubectl is installed,
// `kubectl kustomize deploy/kubernetes` must build too.
import { execFile } from 'node:child_process';
import { access, readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { STOP_GRACE_MS, stopBoundMs } from '../../src/cli/stop-deadline-timer.js';
import { parseConfigText } from '../../src/config/load-config.js';
import { REPO } from '../helpers/demo-cli.js';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const K8S = path.join(REPO, 'deploy', 'kubernetes');

async function yamlFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await yamlFiles(p)));
    else if (/\.ya?ml$/.test(e.name)) out.push(p);
  }
  return out;
}

function labelsMatch(selector: Record<string, string>, labels: Record<string, string>): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

t.test('kubernetes base', async (t) => {
  const docs = new Map<string, Obj[]>();
  for (const file of await yamlFiles(K8S)) {
    const parsed = parseAllDocuments(await readFile(file, 'utf8'));
    for (const d of parsed) t.same(d.errors.map((e) => e.message), [], `${path.relative(REPO, file)} parses`);
    docs.set(path.relative(K8S, file), parsed.map((d) => d.toJS() as Obj).filter((d) => d !== null));
  }

  const kustomization = docs.get('kustomization.yaml')![0]!;
  t.equal(kustomization['kind'], 'Kustomization');
  const resources = kustomization['resources'] as string[];
  for (const r of resources) await t.resolves(access(path.join(K8S, r)), `resource ${r} exists`);
  const generator = (kustomization['configMapGenerator'] as Obj[])[0]!;
  t.same(generator['files'], ['gateway.yaml']);
  t.notOk(resources.some((r) => r.startsWith('examples/')), 'the cert-manager example needs CRDs and stays out of the base');

  const objects = resources.flatMap((r) => docs.get(r) ?? []);
  const one = (kind: string): Obj => {
    const found = objects.filter((o) => o['kind'] === kind);
    t.equal(found.length, 1, `one ${kind}`);
    return found[0]!;
  };
  const deployment = one('Deployment');
  const service = one('Service');
  const pdb = one('PodDisruptionBudget');
  const hpa = one('HorizontalPodAutoscaler');
  const netpol = one('NetworkPolicy');
  const sa = one('ServiceAccount');

  // The gateway config the ConfigMap carries.
  const configText = await readFile(path.join(K8S, 'gateway.yaml'), 'utf8');
  const pod = deployment['spec']['template'] as Obj;
  const container = (pod['spec']['containers'] as Obj[]).find((c) => c['name'] === 'gateway')!;
  const env = Object.fromEntries((container['env'] as Obj[]).map((e) => [e['name'], e['value']]));
  const configPath = env['MTLS_GATEWAY_CONFIG'] as string;
  const config = parseConfigText(configText, configPath);
  t.equal(config.listen.host, '0.0.0.0', 'listens on all interfaces in a pod');

  // Ports: container, Service, NetworkPolicy all say listen.port.
  const port = (container['ports'] as Obj[]).find((p) => p['name'] === 'https')!;
  t.equal(port['containerPort'], config.listen.port, 'containerPort = listen.port');
  t.notOk('HEALTHCHECK_PORT' in env, 'no HEALTHCHECK_PORT: Kubernetes probes the admin listener');
  const svcPorts = service['spec']['ports'] as Obj[];
  t.equal(svcPorts.length, 1, 'the Service has the TLS port only');
  const svcPort = svcPorts[0]!;
  t.ok(svcPort['targetPort'] === 'https' || svcPort['targetPort'] === config.listen.port, 'Service targets the container port');
  const ingress = netpol['spec']['ingress'] as Obj[];
  t.ok(ingress.some((i) => (i['ports'] as Obj[]).some((p) => p['port'] === config.listen.port)), 'ingress allowed on listen.port');

  // The admin listener: on every interface (the kubelet probes the pod IP), a named container
  // port, the probes' and Prometheus' target, kept out of the Service and admitted by the
  // NetworkPolicy only from chosen sources.
  t.equal(config.admin.enabled, true, 'the admin listener is on');
  t.equal(config.admin.listen.host, '0.0.0.0', 'admin.listen.host: 0.0.0.0 so the kubelet reaches it');
  const adminPortNumber = config.admin.listen.port;
  t.equal(adminPortNumber, 9901, 'admin.listen.port');
  t.not(adminPortNumber, config.listen.port, 'admin and TLS ports differ');
  const adminPort = (container['ports'] as Obj[]).find((p) => p['name'] === 'admin');
  t.equal(adminPort?.['containerPort'], adminPortNumber, 'container port "admin" = admin.listen.port');
  const isAdmin = (p: unknown): boolean => p === 'admin' || p === adminPortNumber;
  const probes: [string, string][] = [['startupProbe', '/readyz'], ['readinessProbe', '/readyz'], ['livenessProbe', '/healthz']];
  for (const [probe, probePath] of probes) {
    const get = container[probe]?.['httpGet'] as Obj | undefined;
    t.ok(get, `${probe} is an HTTP probe`);
    t.ok(isAdmin(get?.['port']), `${probe} asks the admin port (${get?.['port']})`);
    t.equal(get?.['path'], probePath, `${probe} asks ${probePath}`);
    t.notOk(get?.['scheme'] && get['scheme'] !== 'HTTP', `${probe}: plain HTTP`);
  }
  const annotations = pod['metadata']['annotations'] as Record<string, string>;
  t.equal(annotations['prometheus.io/scrape'], 'true', 'Prometheus scrape annotation (a string)');
  t.equal(annotations['prometheus.io/port'], String(adminPortNumber), 'Prometheus scrapes the admin port');
  t.equal(annotations['prometheus.io/path'], '/metrics');
  t.notOk(svcPorts.some((p) => isAdmin(p['targetPort']) || p['port'] === adminPortNumber), 'the clients\' Service does not expose the admin port');
  const adminRules = ingress.filter((i) => (i['ports'] as Obj[]).some((p) => isAdmin(p['port'])));
  t.equal(adminRules.length, 1, 'one ingress rule for the admin port');
  for (const rule of adminRules) {
    t.ok(Array.isArray(rule['from']) && rule['from'].length > 0, 'the admin port is admitted only from listed sources');
    t.notOk((rule['ports'] as Obj[]).some((p) => p['port'] === config.listen.port), 'the admin rule is not the TLS rule');
  }
  for (const rule of ingress.filter((i) => !i['from'])) t.notOk((rule['ports'] as Obj[]).some((p) => isAdmin(p['port'])), 'the admin port is not open to everyone');

  // Shutdown: drainDelay keeps serving while the pod leaves the endpoints (instead of a preStop
  // sleep), then drainTimeout; the grace period covers both and the stop's own bound.
  const { drainDelay, drainTimeout } = config.server;
  t.ok(drainDelay >= 1000, `server.drainDelay is set (${drainDelay} ms)`);
  t.ok(drainTimeout > 0, `server.drainTimeout (${drainTimeout} ms)`);
  t.notOk(container['lifecycle']?.['preStop'], 'no preStop hook: drainDelay does its job');
  // The process is gone by its stop bound, the primary of --workers one grace after killing a worker.
  const bound = stopBoundMs(config.server) + 2 * STOP_GRACE_MS;
  t.ok(pod['spec']['terminationGracePeriodSeconds'] * 1000 > bound, `grace period ${pod['spec']['terminationGracePeriodSeconds']} s > the stop bound with workers, ${bound} ms`);
  const egressPorts = (netpol['spec']['egress'] as Obj[]).flatMap((e) => ((e['ports'] as Obj[] | undefined) ?? []).map((p) => p['port']));
  for (const [name, u] of Object.entries(config.upstreams)) t.ok(egressPorts.includes(Number(new URL(u.url!).port || 443)), `egress allowed to upstream ${name}`);

  // Every file the config names is in a mounted volume that provides it.
  const mounts = container['volumeMounts'] as Obj[];
  const volumes = new Map((pod['spec']['volumes'] as Obj[]).map((v) => [v['name'] as string, v]));
  const files: [string, string][] = [
    ['tls.cert', config.tls.cert],
    ['tls.key', config.tls.key],
    ['tls.clientCA', config.tls.clientCA],
    ...((config.tls.crl ?? []) as unknown[]).map((c, i): [string, string] => [`tls.crl[${i}]`, typeof c === 'string' ? c : ((c as Obj)['file'] ?? (c as Obj)['dir']) as string]),
    ...Object.entries(config.upstreams).flatMap(([n, u]): [string, string][] => [
      [`upstreams.${n}.tls.cert`, u.tls.cert],
      [`upstreams.${n}.tls.key`, u.tls.key],
      [`upstreams.${n}.tls.ca`, u.tls.ca],
    ]),
    ['(config file)', configPath],
  ];
  for (const [key, file] of files) {
    const mount = mounts.find((m) => path.dirname(file) === m['mountPath']);
    if (!t.ok(mount, `${key}: ${file} is in a mounted directory`)) continue;
    t.equal(mount!['readOnly'], true, `${key}: mounted read-only`);
    t.notOk(mount!['subPath'], `${key}: no subPath, so updates reach the pod`);
    const volume = volumes.get(mount!['name'])!;
    const source = (volume['secret'] ?? volume['configMap']) as Obj;
    if (volume['configMap']) {
      t.equal(source['name'], generator['name'], `${key}: from the generated ConfigMap`);
      t.ok((generator['files'] as string[]).includes(path.basename(file)), `${key}: the ConfigMap has ${path.basename(file)}`);
    } else {
      const items = (source['items'] as Obj[]).map((i) => i['path']);
      t.ok(items.includes(path.basename(file)), `${key}: Secret ${source['secretName']} provides ${path.basename(file)}`);
    }
  }

  // Locked down: non-root, read-only root filesystem, no privilege escalation, no capabilities.
  const podSec = pod['spec']['securityContext'] as Obj;
  const sec = container['securityContext'] as Obj;
  t.equal(podSec['runAsNonRoot'], true);
  t.equal(podSec['runAsUser'], 1000, 'the image user (node)');
  t.equal(sec['allowPrivilegeEscalation'], false);
  t.equal(sec['readOnlyRootFilesystem'], true);
  t.equal(sec['runAsNonRoot'], true);
  t.same(sec['capabilities']['drop'], ['ALL']);
  t.equal(pod['spec']['automountServiceAccountToken'], false);
  t.equal(pod['spec']['serviceAccountName'], sa['metadata']['name']);
  t.ok(container['resources']['limits']['cpu'] && container['resources']['limits']['memory'], 'limits set');
  t.ok(container['resources']['requests']['cpu'] && container['resources']['requests']['memory'], 'requests set');

  // Availability: several replicas, PDB, HPA, all selecting the pods.
  const podLabels = pod['metadata']['labels'] as Record<string, string>;
  t.ok(labelsMatch(deployment['spec']['selector']['matchLabels'], podLabels));
  t.ok(deployment['spec']['replicas'] >= 2, 'several replicas');
  t.ok(labelsMatch(service['spec']['selector'], podLabels), 'Service selects the pods');
  t.ok(labelsMatch(pdb['spec']['selector']['matchLabels'], podLabels), 'PDB selects the pods');
  t.ok(labelsMatch(netpol['spec']['podSelector']['matchLabels'], podLabels), 'NetworkPolicy selects the pods');
  t.same(hpa['spec']['scaleTargetRef'], { apiVersion: 'apps/v1', kind: 'Deployment', name: deployment['metadata']['name'] });
  t.ok(hpa['spec']['minReplicas'] >= 2);

  // The optional session ticket key is not required.
  t.equal(config.tls.sessionTickets.keyFile, undefined, 'tls.sessionTickets.keyFile stays a commented example');

  // The PodMonitor example scrapes the same port and path.
  const podMonitor = docs.get(path.join('examples', 'podmonitor.yaml'))![0]!;
  t.equal(podMonitor['kind'], 'PodMonitor');
  t.ok(labelsMatch(podMonitor['spec']['selector']['matchLabels'], pod['metadata']['labels']), 'PodMonitor selects the pods');
  t.same(podMonitor['spec']['podMetricsEndpoints'].map((e: Obj) => [e['port'], e['path']]), [['admin', '/metrics']]);
  t.notOk(resources.some((r) => r.includes('podmonitor')), 'the PodMonitor needs CRDs and stays out of the base');

  // The cert-manager example writes the Secrets the Deployment mounts.
  const certificates = docs.get(path.join('examples', 'cert-manager.yaml'))!;
  const secretNames = [...volumes.values()].map((v) => v['secret']?.['secretName']).filter(Boolean);
  for (const c of certificates) {
    t.equal(c['kind'], 'Certificate');
    t.ok(secretNames.includes(c['spec']['secretName']), `Certificate ${c['metadata']['name']} feeds a mounted Secret`);
  }

  // The routes are the demo's (config/gateway.yaml).
  const demo = parseYaml(await readFile(path.join(REPO, 'config', 'gateway.yaml'), 'utf8')) as Obj;
  t.same(parseYaml(configText)['routes'], demo['routes'], 'same routes as config/gateway.yaml');
  t.same(Object.keys(config.upstreams), Object.keys(demo['upstreams']), 'same upstreams');
});

const run = promisify(execFile);
const kubectl = await run('kubectl', ['version', '--client'], { timeout: 20_000 }).then(() => true, () => false);

t.test('kubectl kustomize builds the base', { skip: kubectl ? false : 'kubectl is not installed here' }, async (t) => {
  const { stdout } = await run('kubectl', ['kustomize', K8S], { timeout: 60_000, maxBuffer: 10_000_000 });
  const objects = parseAllDocuments(stdout).map((d) => d.toJS() as Obj);
  const kinds = objects.map((o) => o['kind']).sort();
  t.same(kinds, ['ConfigMap', 'Deployment', 'HorizontalPodAutoscaler', 'NetworkPolicy', 'PodDisruptionBudget', 'Service', 'ServiceAccount']);
  const cm = objects.find((o) => o['kind'] === 'ConfigMap')!;
  t.match(cm['metadata']['name'], /^mtls-gateway-config-[a-z0-9]+$/, 'the ConfigMap name carries a content hash');
  const deployment = objects.find((o) => o['kind'] === 'Deployment')!;
  const volume = (deployment['spec']['template']['spec']['volumes'] as Obj[]).find((v) => v['configMap']);
  t.equal(volume!['configMap']['name'], cm['metadata']['name'], 'the Deployment mounts the hashed ConfigMap');
  t.equal(deployment['metadata']['labels']['app.kubernetes.io/part-of'], 'mtls-gateway');
  parseConfigText(cm['data']['gateway.yaml'] as string, '/etc/mtls-gateway/config/gateway.yaml');
});
