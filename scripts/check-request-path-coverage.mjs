#!/usr/bin/env node
/**
 * Coverage gate for the request path: reads the json-summary that `tap` writes after a run with
 * coverage (.tap/report/coverage-summary.json) and fails unless the branches of the files that
 * handle a request (identity, path normalization, policy, the data plane and its error answers,
 * proxying, the error registry: REQUEST_PATH below), taken together, are at least 95% covered.
 * Prints every request-path file's branch figure and the whole project's, so a drop shows where
 * it happened. A new folder on the request path must be added to REQUEST_PATH.
 *
 * The file list comes from the source tree, not from the report: a request-path file that no test
 * loaded is absent from the report, and counts as uncovered rather than silently skipped.
 *
 * Usage: node scripts/check-request-path-coverage.mjs [summary.json] [--min=95]
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/**
 * The request path, folder by folder (relative to the project root): what one request runs
 * through from the TLS connection to the upstream and back (docs/architecture.md).
 */
const ts = (f) => f.endsWith('.ts');
const REQUEST_PATH = [
  { dir: 'src/identity', match: ts }, // client certificate -> verdict and identity
  { dir: 'src/x509', match: ts }, // the DER reader, DN formatter and chain linking identity uses
  { dir: 'src/request', match: ts }, // path normalization, Host, request id
  { dir: 'src/policy', match: ts }, // route and principal decisions
  { dir: 'src/dataplane', match: ts }, // admission, the HTTP/1 handler, the gateway's own error answers
  { dir: 'src/runtime', match: ts }, // the snapshot each request reads
  { dir: 'src/http', match: ts }, // buildGateway
  { dir: 'src/proxy', match: ts }, // forwarding, upstream pools, admission and error translation
  { dir: 'src/errors', match: (f) => f === 'registry.ts' },
];

const args = process.argv.slice(2);
const minArg = args.find((a) => a.startsWith('--min='));
const MIN = minArg ? Number(minArg.slice('--min='.length)) : 95;
const summaryPath = resolve(root, args.find((a) => !a.startsWith('--')) ?? '.tap/report/coverage-summary.json');

if (!Number.isFinite(MIN) || MIN < 0 || MIN > 100) fail(`--min must be a percentage, got ${minArg}`);
if (!existsSync(summaryPath)) {
  fail(
    `no coverage summary at ${relative(root, summaryPath)}.\n` +
      'Run the suite with coverage first (npm test, or tap), with "json-summary" in the tap "coverage-report" config.',
  );
}

/** @type {Record<string, {branches: {total: number, covered: number, pct: number | string}}>} */
const summary = JSON.parse(readFileSync(summaryPath, 'utf8'));
const byFile = new Map();
for (const [file, entry] of Object.entries(summary)) {
  if (file === 'total') continue;
  byFile.set(relative(root, resolve(root, file)).split(sep).join('/'), entry);
}

const files = [];
for (const { dir, match } of REQUEST_PATH) {
  const abs = join(root, dir);
  if (!existsSync(abs)) fail(`request-path folder ${dir} does not exist: update REQUEST_PATH in ${relative(root, fileURLToPath(import.meta.url))}`);
  for (const f of readdirSync(abs).sort()) if (match(f) && !f.endsWith('.d.ts')) files.push(`${dir}/${f}`);
}

/**
 * Whether a source file compiles to nothing that runs (interfaces and types only): such a module
 * is never loaded, so it is absent from the report without being untested. Judged from the build
 * (`npm test` builds before it runs tap); without a build the file counts as missing.
 */
function typesOnly(file) {
  const built = join(root, 'dist', file.replace(/^src\//, '').replace(/\.ts$/, '.js'));
  if (!existsSync(built)) return false;
  const code = readFileSync(built, 'utf8')
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/^\s*\/\/.*$/gm, '')
    .replace(/^\s*export\s*\{\s*\};?\s*$/gm, '')
    .trim();
  return code === '';
}

let total = 0;
let covered = 0;
const rows = [];
const missing = [];
for (const file of files) {
  const b = byFile.get(file)?.branches;
  if (b === undefined) {
    if (typesOnly(file)) {
      rows.push([file, '-', '-', 'types only: no code runs']);
      continue;
    }
    missing.push(file);
    rows.push([file, '-', '-', 'not loaded by any test']);
    continue;
  }
  total += b.total;
  covered += b.covered;
  rows.push([file, `${b.covered}/${b.total}`, pct(b.covered, b.total), '']);
}

const aggregate = total === 0 ? 0 : (covered / total) * 100;
const overall = summary.total?.branches;
const ok = missing.length === 0 && total > 0 && aggregate >= MIN;

const head = ['request-path file', 'branches', '%', ''];
const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
const line = (r) => r.map((c, i) => (i === 0 || i === 3 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join('  ').trimEnd();
const out = [];
out.push('', `Branch coverage of the request path (from ${relative(root, summaryPath)}, written ${statSync(summaryPath).mtime.toISOString()})`);
out.push(line(head), widths.map((w) => '-'.repeat(w)).join('  ').trimEnd());
for (const r of rows) out.push(line(r));
out.push(widths.map((w) => '-'.repeat(w)).join('  ').trimEnd());
out.push(line(['request path, aggregate', `${covered}/${total}`, pct(covered, total), `minimum ${MIN}%`]));
if (overall) out.push(line(['whole project (src/)', `${overall.covered}/${overall.total}`, pct(overall.covered, overall.total), '']));
out.push('');
if (missing.length > 0) out.push(`FAIL: no coverage recorded for ${missing.join(', ')}`);
if (aggregate < MIN) out.push(`FAIL: request-path branch coverage ${aggregate.toFixed(2)}% is below ${MIN}%`);
if (ok) out.push(`ok: request-path branch coverage ${aggregate.toFixed(2)}% >= ${MIN}%`);
(ok ? console.log : console.error)(out.join('\n'));
process.exitCode = ok ? 0 : 1;

function pct(n, d) {
  return d === 0 ? '100.00' : ((n / d) * 100).toFixed(2);
}

function fail(message) {
  console.error(`check-request-path-coverage: ${message}`);
  process.exit(1);
}
