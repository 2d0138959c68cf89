#!/usr/bin/env node
/**
 * Prints every failed assertion of a TAP log (what `tap` printed), each with its test file and its
 * diagnostic block (failed subtests and files by their line only), so that the end of a long CI
 * log says what failed. The project's CI output is often read from its tail only, and a failure in
 * the middle of 12,000 assertions is otherwise out of sight there. `.ci/run` calls it when a test
 * run fails. (`tap replay` re-renders stored results instead, but of every file's last run, not of
 * this log, and with a terminal's progress output.)
 *
 * Usage: node scripts/tap-failures.mjs LOG [--max-lines=40]
 */
import { readFileSync } from 'node:fs';

const [file, ...rest] = process.argv.slice(2);
if (!file) {
  process.stderr.write('usage: node scripts/tap-failures.mjs LOG [--max-lines=40]\n');
  process.exit(2);
}
const maxArg = rest.find((a) => a.startsWith('--max-lines='));
const maxLines = maxArg ? Number(maxArg.slice('--max-lines='.length)) : 40;
if (!Number.isInteger(maxLines) || maxLines < 0) {
  process.stderr.write(`tap-failures: --max-lines must be a whole number (got "${maxArg}")\n`);
  process.exit(2);
}

const lines = readFileSync(file, 'utf8').split('\n');
const indentOf = (line) => line.length - line.trimStart().length;
const failures = [];
let testFile = '(unknown file)';
for (let i = 0; i < lines.length; i++) {
  const line = lines[i];
  const subtest = /^# Subtest: (.*)$/.exec(line);
  if (subtest) testFile = subtest[1];
  const m = /^(\s*)not ok \d+ - (.*)$/.exec(line);
  if (!m) continue;
  const indent = m[1].length;
  // Its diagnostic block: the lines after it that are indented deeper, up to the block's end.
  const block = [];
  for (let j = i + 1; j < lines.length && block.length < maxLines; j++) {
    const next = lines[j];
    if (next.trim() !== '' && indentOf(next) <= indent) break;
    block.push(next);
    if (next.trim() === '...' && indentOf(next) === indent + 2) break;
  }
  // A failed subtest or file (its line carries `# time=`) only repeats what its assertions said.
  failures.push({ testFile, line: line.trim(), block: line.includes('# time=') ? [] : block });
}

if (failures.length === 0) {
  process.stdout.write(`tap-failures: no failed assertion in ${file}\n`);
} else {
  process.stdout.write(`\n======== ${failures.length} failed assertion(s) and test(s), from ${file} ========\n`);
  for (const f of failures) {
    process.stdout.write(`\n[${f.testFile}] ${f.line}\n`);
    for (const b of f.block) process.stdout.write(`${b}\n`);
  }
  process.stdout.write(`======== end of failures ========\n`);
}
