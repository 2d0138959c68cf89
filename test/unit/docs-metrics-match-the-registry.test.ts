// docs/metrics.md is the operators' list of what /metrics exposes. Its table must name exactly the
// mtls_gateway_* metrics GatewayMetrics registers, with the same type and the same label names, so
// that alert rules and dashboards written from the docs match what Prometheus scrapes. Every
// difference is reported naming the docs row or the registered metric that is out of step.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { GatewayMetrics } from '../../src/telemetry/metrics.js';

const DOC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../docs/metrics.md');

interface MetricRow {
  readonly name: string;
  readonly type: string;
  readonly labels: readonly string[];
  /** Where it was found, for failure messages. */
  readonly where: string;
}

/** Rows of the `| Metric | Type | Labels | Meaning |` table, and the rows that do not parse. */
function documentedRows(text: string): { rows: MetricRow[]; problems: string[] } {
  const lines = text.split('\n');
  const header = lines.findIndex((l) => /^\|\s*Metric\s*\|\s*Type\s*\|\s*Labels\s*\|\s*Meaning\s*\|\s*$/.test(l));
  if (header < 0) return { rows: [], problems: ['docs/metrics.md has no "| Metric | Type | Labels | Meaning |" table'] };
  const rows: MetricRow[] = [];
  const problems: string[] = [];
  for (let i = header + 2; i < lines.length && lines[i]!.startsWith('|'); i++) {
    const line = lines[i]!;
    const where = `docs/metrics.md:${i + 1}`;
    const cells = line.split('|').slice(1, -1).map((c) => c.trim());
    if (cells.length < 4) {
      problems.push(`${where}: a table row with ${cells.length} cells instead of 4: ${line}`);
      continue;
    }
    const name = /^`([a-zA-Z_:][a-zA-Z0-9_:]*)`$/.exec(cells[0]!)?.[1];
    if (name === undefined) {
      problems.push(`${where}: the Metric cell is not one backquoted metric name: ${cells[0]}`);
      continue;
    }
    const labelCell = cells[2]!;
    const labels = labelCell === '-' || labelCell === '' ? [] : labelCell.split(',').map((l) => l.trim().replace(/^`|`$/g, ''));
    rows.push({ name, type: cells[1]!, labels, where });
  }
  return { rows, problems };
}

/** The metrics a fresh GatewayMetrics registers, with their declared label names. */
async function registeredMetrics(): Promise<MetricRow[]> {
  const metrics = new GatewayMetrics();
  const json = await metrics.registry.getMetricsAsJSON();
  return json.map((m) => {
    const metric = metrics.registry.getSingleMetric(m.name) as unknown as { labelNames?: readonly string[] } | undefined;
    // prom-client keeps the declared label names on the metric object; without it, the labels of
    // the values (a histogram's `le` is prom-client's, not ours).
    const labels = metric?.labelNames ?? [...new Set(m.values.flatMap((v) => Object.keys(v.labels)))].filter((l) => l !== 'le');
    return { name: m.name, type: String(m.type), labels: [...labels], where: `src/telemetry/metrics.ts: ${m.name}` };
  });
}

const sorted = (xs: readonly string[]) => [...xs].sort();
const list = (xs: readonly string[]) => (xs.length === 0 ? '-' : xs.join(', '));

/** Every way the docs table and the registry differ, one line each naming the row or metric. */
function differences(rows: readonly MetricRow[], registered: readonly MetricRow[]): string[] {
  const out: string[] = [];
  const ours = registered.filter((m) => m.name.startsWith('mtls_gateway_'));
  const byName = new Map<string, MetricRow>();
  for (const r of rows) {
    const twice = byName.get(r.name);
    if (twice !== undefined) out.push(`${r.where}: ${r.name} is listed twice (also at ${twice.where})`);
    else byName.set(r.name, r);
    if (!r.name.startsWith('mtls_gateway_')) out.push(`${r.where}: ${r.name} lacks the mtls_gateway_ prefix`);
  }
  const registeredNames = new Set(ours.map((m) => m.name));
  for (const m of ours) {
    const row = byName.get(m.name);
    if (row === undefined) {
      out.push(`${m.where} (${m.type}, labels: ${list(m.labels)}) is registered but has no row in docs/metrics.md`);
      continue;
    }
    if (row.type !== m.type) out.push(`${row.where}: ${m.name} is documented as a ${row.type} but registered as a ${m.type}`);
    if (JSON.stringify(sorted(row.labels)) !== JSON.stringify(sorted(m.labels))) {
      out.push(`${row.where}: ${m.name} is documented with labels [${list(row.labels)}] but registered with [${list(m.labels)}]`);
    }
  }
  for (const r of byName.values()) {
    if (r.name.startsWith('mtls_gateway_') && !registeredNames.has(r.name)) out.push(`${r.where}: ${r.name} is documented but GatewayMetrics does not register it`);
  }
  return out;
}

t.test('the metrics table of docs/metrics.md parses', async (t) => {
  const { rows, problems } = documentedRows(await readFile(DOC, 'utf8'));
  t.same(problems, [], 'every row of the table names one metric');
  t.ok(rows.length > 0, 'the table lists metrics');
  for (const r of rows) t.ok(['counter', 'gauge', 'histogram', 'summary'].includes(r.type), `${r.where}: the type of ${r.name} ("${r.type}") is a Prometheus type`);
});

t.test('docs/metrics.md and the registry list the same metrics, types and labels', async (t) => {
  const { rows } = documentedRows(await readFile(DOC, 'utf8'));
  const registered = await registeredMetrics();
  t.ok(registered.filter((m) => m.name.startsWith('mtls_gateway_')).length > 0, 'GatewayMetrics registers mtls_gateway_* metrics');
  t.same(differences(rows, registered), [], 'no metric is out of step between docs/metrics.md and src/telemetry/metrics.ts');
});

t.test('without defaultMetrics the registry holds only mtls_gateway_* metrics', async (t) => {
  const names = (await registeredMetrics()).map((m) => m.name);
  t.same(names.filter((n) => !n.startsWith('mtls_gateway_')), [], 'process_* and nodejs_* come only with { defaultMetrics: true }');
});

// The comparison itself: each kind of drift is caught and named (so a green run means something).
t.test('the comparison names each kind of drift', async (t) => {
  const text = await readFile(DOC, 'utf8');
  const registered = await registeredMetrics();
  const rowOf = (name: string) => text.split('\n').find((l) => l.startsWith(`| \`${name}\``))!;
  const drift = (edit: (doc: string) => string) => differences(documentedRows(edit(text)).rows, registered);

  const dropped = drift((d) => d.replace(rowOf('mtls_gateway_ready') + '\n', ''));
  t.match(dropped, [/mtls_gateway_ready .*is registered but has no row/], 'a registered metric without a row');

  const extra = drift((d) => d.replace(rowOf('mtls_gateway_ready'), rowOf('mtls_gateway_ready') + '\n| `mtls_gateway_ghost_total` | counter | - | Nothing. |'));
  t.match(extra, [/docs\/metrics\.md:\d+: mtls_gateway_ghost_total is documented but GatewayMetrics does not register it/], 'a documented metric nobody registers');

  const retyped = drift((d) => d.replace(rowOf('mtls_gateway_crl_entries'), rowOf('mtls_gateway_crl_entries').replace('| gauge |', '| counter |')));
  t.match(retyped, [/docs\/metrics\.md:\d+: mtls_gateway_crl_entries is documented as a counter but registered as a gauge/], 'a wrong type');

  const relabelled = drift((d) => d.replace(rowOf('mtls_gateway_requests_total'), rowOf('mtls_gateway_requests_total').replace('`route`, `decision`, `status`', '`route`, `status`')));
  t.match(relabelled, [/docs\/metrics\.md:\d+: mtls_gateway_requests_total is documented with labels \[route, status\] but registered with \[route, decision, status\]/], 'a missing label');

  const unlabelled = drift((d) => d.replace(rowOf('mtls_gateway_ready'), rowOf('mtls_gateway_ready').replace('| gauge | - |', '| gauge | `worker` |')));
  t.match(unlabelled, [/mtls_gateway_ready is documented with labels \[worker\] but registered with \[-\]/], 'a label the metric does not have');
});
