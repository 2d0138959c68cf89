/**
 * The path-trick corpus (test/security/corpus/path-targets.txt): CVE-derived request-target
 * spellings, each with the answer it must get. Parsed here so every suite that attacks the path
 * handling (plain routes, rewriting routes) sends the same bytes.
 */
import { readFileSync } from 'node:fs';

export type Expectation = 'any' | '400' | 'refused' | 'not-forwarded' | '403';

export interface PathEntry {
  readonly line: number;
  /** As written in the corpus. */
  readonly text: string;
  readonly bytes: Buffer;
  readonly expect: Expectation;
}

/** Parses the corpus format described at the top of path-targets.txt. */
export function parsePathCorpus(text: string): PathEntry[] {
  const entries: PathEntry[] = [];
  let expect: Expectation = 'any';
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '') return;
    if (line.startsWith('#!')) {
      const m = /^#!\s*expect\s+(any|400|refused|not-forwarded|403)\s*$/.exec(line);
      if (!m) throw new Error(`path-targets.txt:${i + 1}: unknown directive ${line}`);
      expect = m[1] as Expectation;
      return;
    }
    if (line.startsWith('#')) return;
    const parts: Buffer[] = [];
    // {{N*text}} repeats; \u{HH} is one raw byte; everything else is UTF-8.
    const re = /\{\{(\d+)\*([^}]*)\}\}|\\u\{([0-9A-Fa-f]{1,2})\}/g;
    let at = 0;
    for (let m = re.exec(line); m !== null; m = re.exec(line)) {
      parts.push(Buffer.from(line.slice(at, m.index), 'utf8'));
      if (m[1] !== undefined) parts.push(Buffer.from(m[2]!.repeat(Number(m[1])), 'utf8'));
      else parts.push(Buffer.from([parseInt(m[3]!, 16)]));
      at = m.index + m[0].length;
    }
    parts.push(Buffer.from(line.slice(at), 'utf8'));
    entries.push({ line: i + 1, text: line, bytes: Buffer.concat(parts), expect });
  });
  return entries;
}


export function loadPathCorpus(): PathEntry[] {
  return parsePathCorpus(readFileSync(new URL('../security/corpus/path-targets.txt', import.meta.url), 'utf8'));
}
