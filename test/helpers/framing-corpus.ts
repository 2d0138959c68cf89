/**
 * The framing corpus (test/security/corpus/framing-cases.json; its `$comment` describes the
 * format): the cases, and each case's bytes as the pieces a client writes.
 */
import { readFileSync } from 'node:fs';

type Part = string | { repeat: string; times: number };

export interface FramingCase {
  id: string;
  source: string;
  raw: string | Part[];
  expect: 'forwarded-allowed' | 'refused-4xx' | 'closed' | 'no-smuggle' | 'incomplete-head';
  status?: number[];
  statuses?: number[];
  responses?: number;
  bodyBytes?: number;
  closes?: boolean;
  methods?: string[];
  pieceDelayMs?: number;
}

export const framingCorpus: readonly FramingCase[] = (JSON.parse(readFileSync(new URL('../security/corpus/framing-cases.json', import.meta.url), 'utf8')) as { cases: FramingCase[] }).cases;

function partText(p: Part): string {
  return typeof p === 'string' ? p : Array.from({ length: p.times }, (_, i) => p.repeat.replaceAll('{i}', String(i))).join('');
}

/** The case's bytes as pieces (each string is latin1: one character, one byte); one piece unless the case paces its parts. */
export function framingPieces(c: FramingCase): Buffer[] {
  const parts = typeof c.raw === 'string' ? [c.raw] : c.raw;
  if (c.pieceDelayMs === undefined || typeof c.raw === 'string') return [Buffer.from(parts.map(partText).join(''), 'latin1')];
  return parts.map((p) => Buffer.from(partText(p), 'latin1'));
}
