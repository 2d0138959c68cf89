// deploy/prometheus/alerts.yaml and deploy/grafana/dashboard.json checked offline (no Prometheus or
// Grafana here): both use only metrics, and labels of them, that docs/metrics.md lists; every
// metric of that table is used somewhere; each alert has a severity, a summary, a description and
// a runbook_url whose anchor is a heading of docs/operations.md; the dashboard reads its data
// source from a `datasource` variable, has unique panel ids and the panels operators need.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { parseDocument } from 'yaml';
import { REPO } from '../helpers/demo-cli.js';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
type TT = Parameters<Parameters<typeof t.test>[0]>[0];

interface MetricRow {
  readonly type: string;
  readonly labels: readonly string[];
}

/** The table of docs/metrics.md: `| Metric | Type | Labels | Meaning |`. */
function metricsTable(md: string): Map<string, MetricRow> {
  const lines = md.split('\n');
  const header = lines.findIndex((l) => l.trim() === '| Metric | Type | Labels | Meaning |');
  if (header < 0) throw new Error('docs/metrics.md has no "| Metric | Type | Labels | Meaning |" table');
  const rows = new Map<string, MetricRow>();
  for (const line of lines.slice(header + 2)) {
    if (!line.startsWith('|')) break;
    const cells = line.split(' | ').map((c) => c.replace(/^\|\s*|\s*\|$/g, '').trim());
    const name = /^`(mtls_gateway_[a-z0-9_]+)`$/.exec(cells[0]!)?.[1];
    if (name === undefined) throw new Error(`bad metric cell: ${cells[0]}`);
    const labels = cells[2] === '-' ? [] : cells[2]!.split(', ').map((l) => /^`([a-z_]+)`$/.exec(l)?.[1] ?? `(bad: ${l})`);
    rows.set(name, { type: cells[1]!, labels });
  }
  return rows;
}

/** GitHub's heading anchors: lower case, punctuation other than "-" and "_" dropped, spaces to "-". */
function anchors(md: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  let fence = false;
  for (const line of md.split('\n')) {
    if (line.startsWith('```')) fence = !fence;
    const m = fence ? null : /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!m) continue;
    const base = m[1]!.toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

/** Every `mtls_gateway_*` metric in a PromQL expression, with the label names of its selector. */
function metricUses(expr: string): { name: string; labels: string[] }[] {
  return [...expr.matchAll(/\b(mtls_gateway_[a-z0-9_]+)(\{([^}]*)\})?/g)].map((m) => ({
    name: m[1]!,
    labels: [...(m[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g)].map((l) => l[1]!),
  }));
}

/** The table's name for a series name: histograms expose NAME_bucket, NAME_sum and NAME_count. */
function baseName(name: string, table: Map<string, MetricRow>): string {
  if (table.has(name)) return name;
  const m = /^(.*)_(bucket|sum|count)$/.exec(name);
  return m && table.get(m[1]!)?.type === 'histogram' ? m[1]! : name;
}

/** Labels Prometheus adds to every scraped series. */
const TARGET_LABELS = new Set(['job', 'instance', 'namespace', 'pod']);

function checkExpr(t: TT, where: string, expr: string, table: Map<string, MetricRow>, used: Set<string>): void {
  const uses = metricUses(expr);
  for (const u of uses) {
    const name = baseName(u.name, table);
    const row = table.get(name);
    if (!t.ok(row, `${where}: ${u.name} is in docs/metrics.md`)) continue;
    used.add(name);
    if (u.name !== name) t.equal(row!.type, 'histogram', `${where}: ${u.name} is a histogram series`);
    if (u.name.endsWith('_bucket')) t.match(expr, /\ble\b/, `${where}: ${u.name} is aggregated keeping "le"`);
    for (const l of u.labels) if (!TARGET_LABELS.has(l)) t.ok(row!.labels.includes(l), `${where}: ${name} has label "${l}"`);
  }
  // Labels named in `by (...)` exist on the metrics aggregated there (or are target labels).
  const labelsOfExpr = new Set(uses.flatMap((u) => table.get(baseName(u.name, table))?.labels ?? []));
  for (const m of expr.matchAll(/\bby\s*\(([^)]*)\)/g)) {
    for (const l of m[1]!.split(',').map((s) => s.trim()).filter(Boolean)) {
      if (l === 'le' || TARGET_LABELS.has(l)) continue;
      t.ok(labelsOfExpr.has(l), `${where}: grouped by "${l}", a label of its metrics`);
    }
  }
}

const table = metricsTable(await readFile(path.join(REPO, 'docs', 'metrics.md'), 'utf8'));
const used = new Set<string>();

t.test('docs/metrics.md table', async (t) => {
  t.ok(table.size >= 12, `${table.size} metrics listed`);
  for (const [name, row] of table) {
    t.ok(['counter', 'gauge', 'histogram', 'summary'].includes(row.type), `${name}: type ${row.type}`);
    if (row.type === 'counter') t.match(name, /_total$/, `${name}: a counter ends in _total`);
    for (const l of row.labels) t.match(l, /^[a-z_]+$/, `${name}: label ${l}`);
  }
});

t.test('deploy/prometheus/alerts.yaml', async (t) => {
  const doc = parseDocument(await readFile(path.join(REPO, 'deploy', 'prometheus', 'alerts.yaml'), 'utf8'), { uniqueKeys: true });
  t.same(doc.errors.map((e) => e.message), [], 'parses');
  const rules = doc.toJS() as Obj;
  t.same(Object.keys(rules), ['groups'], 'a plain rule file: groups only');
  const opsAnchors = anchors(await readFile(path.join(REPO, 'docs', 'operations.md'), 'utf8'));
  const names = new Set<string>();
  const alerts: Obj[] = [];
  for (const group of rules['groups'] as Obj[]) {
    t.type(group['name'], 'string', 'the group has a name');
    for (const rule of group['rules'] as Obj[]) {
      const name = rule['alert'] as string;
      if (!t.type(name, 'string', 'an alerting rule')) continue;
      t.notOk(names.has(name), `${name}: unique`);
      names.add(name);
      alerts.push(rule);
      t.type(rule['expr'], 'string', `${name}: expr`);
      t.same(Object.keys(rule).filter((k) => !['alert', 'expr', 'for', 'keep_firing_for', 'labels', 'annotations'].includes(k)), [], `${name}: only rule keys`);
      if (rule['for'] !== undefined) t.match(rule['for'], /^\d+[smhd]$/, `${name}: for is a duration`);
      t.ok(['critical', 'warning', 'info'].includes(rule['labels']?.['severity']), `${name}: severity ${rule['labels']?.['severity']}`);
      const a = (rule['annotations'] ?? {}) as Obj;
      t.ok(typeof a['summary'] === 'string' && a['summary'].length > 10, `${name}: summary`);
      t.ok(typeof a['description'] === 'string' && a['description'].length > 10, `${name}: description`);
      const runbook = /(?:^|\/)docs\/operations\.md#([a-z0-9_-]+)$/.exec(String(a['runbook_url']));
      if (t.ok(runbook, `${name}: runbook_url points at docs/operations.md#... (${a['runbook_url']})`)) {
        t.ok(opsAnchors.has(runbook![1]!), `${name}: docs/operations.md has a heading for #${runbook![1]}`);
      }
      checkExpr(t, name, rule['expr'], table, used);
    }
  }

  // The alerts operators need, recognised by what they compute.
  const find = (re: RegExp) => alerts.filter((r) => re.test(String(r['expr']).replace(/\s+/g, ' ')));
  t.equal(find(/mtls_gateway_certificate_expiration_timestamp_seconds - time\(\)\)? < 7 \* 86400/).length, 1, 'certificate expiring within 7 days');
  t.equal(find(/mtls_gateway_crl_next_update_timestamp_seconds < time\(\)/).length, 1, 'CRL past its nextUpdate');
  t.equal(find(/increase\(mtls_gateway_config_reloads_total\{result="failure"\}\[10m\]\) > 0/).length, 1, 'reload failed');
  t.equal(find(/rate\(mtls_gateway_requests_total\{status=~"5\.\."\}\[5m\]\).*\/.*rate\(mtls_gateway_requests_total\[5m\]\)\) > 0\.05/).length, 1, '5xx ratio over 5 %');
  const notReady = find(/^mtls_gateway_ready == 0$/);
  t.equal(notReady.length, 1, 'gateway not ready');
  t.equal(notReady[0]?.['for'], '5m', 'not ready for 5 minutes');
});

t.test('deploy/grafana/dashboard.json', async (t) => {
  const dashboard = JSON.parse(await readFile(path.join(REPO, 'deploy', 'grafana', 'dashboard.json'), 'utf8')) as Obj;
  t.ok(dashboard['schemaVersion'] >= 36 && dashboard['schemaVersion'] <= 41, `schemaVersion ${dashboard['schemaVersion']}`);
  t.type(dashboard['title'], 'string');
  t.type(dashboard['uid'], 'string');
  t.notOk('id' in dashboard && dashboard['id'] !== null, 'no instance-specific id');

  const variables = dashboard['templating']['list'] as Obj[];
  const dsVar = variables.find((v) => v['type'] === 'datasource');
  if (!t.ok(dsVar, 'a data source variable')) return;
  t.equal(dsVar!['name'], 'datasource');
  t.equal(dsVar!['query'], 'prometheus');
  const dsRef = `\${${dsVar!['name']}}`;

  const panels: Obj[] = [];
  const walk = (list: Obj[]) => {
    for (const p of list) {
      panels.push(p);
      if (Array.isArray(p['panels'])) walk(p['panels']);
    }
  };
  walk(dashboard['panels'] as Obj[]);
  const ids = panels.map((p) => p['id']);
  t.ok(ids.every((id) => Number.isInteger(id)), 'every panel has an id');
  t.equal(new Set(ids).size, ids.length, 'panel ids are unique');

  const exprs: [string, string][] = [];
  for (const p of panels.filter((p) => p['type'] !== 'row')) {
    const title = p['title'] as string;
    t.equal(p['datasource']?.['uid'], dsRef, `${title}: data source from the variable`);
    t.ok(p['gridPos'] && p['gridPos']['w'] > 0 && p['gridPos']['h'] > 0, `${title}: placed`);
    const targets = (p['targets'] ?? []) as Obj[];
    t.ok(targets.length > 0, `${title}: has queries`);
    t.equal(new Set(targets.map((x) => x['refId'])).size, targets.length, `${title}: unique refIds`);
    for (const x of targets) {
      t.equal(x['datasource']?.['uid'], dsRef, `${title} ${x['refId']}: data source from the variable`);
      exprs.push([`${title} ${x['refId']}`, x['expr'] as string]);
    }
  }
  for (const v of variables.filter((v) => v['type'] === 'query')) {
    t.equal(v['datasource']?.['uid'], dsRef, `variable ${v['name']}: data source from the variable`);
    exprs.push([`variable ${v['name']}`, String(v['query']?.['query'] ?? v['query'])]);
  }
  for (const [where, expr] of exprs) checkExpr(t, where, expr, table, used);

  // The panels operators need, found by title; each queries what its title says.
  const need: [string, RegExp, RegExp[]][] = [
    ['requests/s by route and decision', /requests.*route.*decision/i, [/rate\(mtls_gateway_requests_total\b/, /by \((route, decision|decision, route)\)/]],
    ['latency p50 and p99', /latency.*p50.*p99/i, [/histogram_quantile\(0\.5, sum by \(le, route\)/, /histogram_quantile\(0\.99, sum by \(le, route\)/]],
    ['refusals by code', /refusals.*code/i, [/mtls_gateway_client_cert_rejections_total/, /mtls_gateway_requests_total\{[^}]*decision!="allow"/]],
    ['upstream errors by upstream and code', /upstream errors/i, [/mtls_gateway_upstream_errors_total/, /by \(upstream, code\)/]],
    ['certificate days to expiry', /certificate.*expir/i, [/mtls_gateway_certificate_expiration_timestamp_seconds/, /time\(\)/]],
    ['CRL next update', /crl.*next update/i, [/mtls_gateway_crl_next_update_timestamp_seconds/]],
    ['config generation', /generation/i, [/mtls_gateway_config_generation/]],
    ['config reloads', /reload/i, [/mtls_gateway_config_reloads_total/]],
    ['connections open', /connections open/i, [/mtls_gateway_connections_open/]],
  ];
  for (const [what, title, queries] of need) {
    const found = panels.filter((p) => title.test(p['title']) && queries.every((q) => ((p['targets'] ?? []) as Obj[]).some((x) => q.test(x['expr']))));
    t.ok(found.length > 0, `a "${what}" panel`);
  }
});

t.test('every metric of docs/metrics.md is used by an alert or on the dashboard', async (t) => {
  for (const name of table.keys()) t.ok(used.has(name), `${name} is used`);
});

t.test('links into docs/operations.md from the deployment and metrics docs hit a heading', async (t) => {
  const opsAnchors = anchors(await readFile(path.join(REPO, 'docs', 'operations.md'), 'utf8'));
  const metricsAnchors = anchors(await readFile(path.join(REPO, 'docs', 'metrics.md'), 'utf8'));
  for (const f of ['deployment.md', 'metrics.md', 'operations.md']) {
    const md = await readFile(path.join(REPO, 'docs', f), 'utf8');
    for (const m of md.matchAll(/\]\(((operations|metrics)\.md)?#([^)\s]+)\)/g)) {
      const target = m[1] ?? f;
      const set = target === 'operations.md' ? opsAnchors : target === 'metrics.md' ? metricsAnchors : null;
      if (set === null) continue;
      t.ok(set.has(m[3]!), `${f} -> ${target}#${m[3]}`);
    }
  }
});
