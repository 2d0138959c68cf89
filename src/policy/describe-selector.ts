/**
 * Selector descriptions: owns the short human form of a principal selector
 * (`spiffe=spiffe://example.org/ns/*, subject.OU=payments`) used in explanations, logs and the CLI.
 */
import type { SelectorConfig } from '../config/schema.js';
import { SELECTOR_FIELDS, type CompiledSelector } from './types.js';

// Quoted only when a value could be misread as two values or as a key.
function showValue(value: unknown): string {
  const text = String(value);
  return text === '' || /[\s,"=]/.test(text) ? JSON.stringify(text) : text;
}

export function describeSelector(sel: SelectorConfig | CompiledSelector): string {
  if ('checks' in sel && Array.isArray(sel.checks)) return sel.description;
  const fields = sel as Record<string, unknown>;
  const parts: string[] = [];
  for (const field of SELECTOR_FIELDS) {
    const value = fields[field];
    if (value === undefined) continue;
    if (typeof value === 'object' && value !== null) {
      for (const [attr, v] of Object.entries(value)) parts.push(`${field}.${attr}=${showValue(v)}`);
    } else {
      parts.push(`${field}=${showValue(value)}`);
    }
  }
  return parts.length === 0 ? '(empty selector)' : parts.join(', ');
}
