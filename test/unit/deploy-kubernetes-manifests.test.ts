// deploy/kubernetes checked offline (no cluster here): every manifest parses, the kustomization
// names files that exist, the embedded gateway config is valid and agrees with the Deployment on
// ports and mount paths, probes use the container port, and the pod is locked down. When kubectl
// is installed, `kubectl kustomize deploy/kubernetes` must build too.
import { execFile } from 'node:child_process';
import { access, readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
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

  // Ports: container, Service, probes, NetworkPolicy, HEALTHCHECK_PORT all say listen.port.
  const port = (container['ports'] as Obj[]).find((p) => p['name'] === 'https')!;
  t.equal(port['containerPort'], config.listen.port, 'containerPort = listen.port');
  t.equal(env['HEALTHCHECK_PORT'], String(config.listen.port));
  const svcPort = (service['spec']['ports'] as Obj[])[0]!;
  t.ok(svcPort['targetPort'] === 'https' || svcPort['targetPort'] === config.listen.port, 'Service targets the container port');
  for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
    const p = container[probe]?.['tcpSocket']?.['port'];
    t.ok(p === 'https' || p === config.listen.port, `${probe} checks the listener (${p})`);
  }
  t.ok((netpol['spec']['ingress'] as Obj[]).some((i) => (i['ports'] as Obj[]).some((p) => p['port'] === config.listen.port)), 'ingress allowed on listen.port');
  const egressPorts = (netpol['spec']['egress'] as Obj[]).flatMap((e) => ((e['ports'] as Obj[] | undefined) ?? []).map((p) => p['port']));
  for (const [name, u] of Object.entries(config.upstreams)) t.ok(egressPorts.includes(Number(new URL(u.url).port || 443)), `egress allowed to upstream ${name}`);

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
  t.ok(pod['spec']['terminationGracePeriodSeconds'] > 25 + 5, 'grace period covers the 25 s drain after the preStop pause');

  // Availability: several replicas, PDB, HPA, all selecting the pods.
  const podLabels = pod['metadata']['labels'] as Record<string, string>;
  t.ok(labelsMatch(deployment['spec']['selector']['matchLabels'], podLabels));
  t.ok(deployment['spec']['replicas'] >= 2, 'several replicas');
  t.ok(labelsMatch(service['spec']['selector'], podLabels), 'Service selects the pods');
  t.ok(labelsMatch(pdb['spec']['selector']['matchLabels'], podLabels), 'PDB selects the pods');
  t.ok(labelsMatch(netpol['spec']['podSelector']['matchLabels'], podLabels), 'NetworkPolicy selects the pods');
  t.same(hpa['spec']['scaleTargetRef'], { apiVersion: 'apps/v1', kind: 'Deployment', name: deployment['metadata']['name'] });
  t.ok(hpa['spec']['minReplicas'] >= 2);

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
