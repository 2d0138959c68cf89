// The docs stay true: every relative link in docs/*.md and README.md points at a file that exists,
// every route example in docs/policies.md compiles with the real policy compiler, and the complete
// example in docs/configuration.md passes the real schema.
import { access, readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { parse as parseYaml } from 'yaml';
import { parseConfigText } from '../../src/config/load-config.js';
import { compilePolicy } from '../../src/policy/compile-policy.js';
import { REPO } from '../helpers/demo-cli.js';

function yamlBlocks(md: string): string[] {
  return [...md.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!);
}

t.test('relative links resolve', async (t) => {
  const docs = (await readdir(path.join(REPO, 'docs'))).filter((f) => f.endsWith('.md')).map((f) => path.join(REPO, 'docs', f));
  const files = [...docs, path.join(REPO, 'README.md')];
  for (const file of files) {
    const text = await readFile(file, 'utf8').catch(() => null);
    if (text === null) continue;
    for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = m[1]!.split('#')[0]!;
      if (target === '' || /^[a-z]+:/i.test(target)) continue;
      await t.resolves(access(path.resolve(path.dirname(file), target)), `${path.relative(REPO, file)} -> ${m[1]}`);
    }
  }
});

t.test('docs/policies.md examples compile', async (t) => {
  const md = await readFile(path.join(REPO, 'docs', 'policies.md'), 'utf8');
  let compiled = 0;
  for (const block of yamlBlocks(md)) {
    const text = block.trimStart().startsWith('- name:') || block.startsWith('  - name:') ? `routes:\n${block}` : block;
    const doc = parseYaml(text) as { routes?: unknown[] } | null;
    if (!doc || !Array.isArray(doc.routes)) continue;
    t.doesNotThrow(() => compilePolicy(doc.routes as never), `compiles: ${text.split('\n').find((l) => l.includes('name:'))?.trim()}`);
    compiled++;
  }
  t.ok(compiled >= 3, `${compiled} route examples compiled`);
});

t.test('docs/configuration.md complete example is valid', async (t) => {
  const md = await readFile(path.join(REPO, 'docs', 'configuration.md'), 'utf8');
  const example = yamlBlocks(md).find((b) => b.includes('listen:') && b.includes('routes:'));
  t.ok(example, 'there is a complete example');
  t.doesNotThrow(() => parseConfigText(example!, path.join(REPO, 'docs', 'example.yaml')));
  compilePolicy(parseConfigText(example!, path.join(REPO, 'docs', 'example.yaml')).routes);
});
