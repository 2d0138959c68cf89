/**
 * node:http's own rules for what it writes in a header (`validateHeaderName`, `validateHeaderValue`),
 * as booleans: the oracle the tests of relayed header lines judge by.
 */
import { validateHeaderName, validateHeaderValue } from 'node:http';

/** Whether node:http would write `name` as a header name. */
export function nodeHttpWritesName(name: string): boolean {
  try {
    validateHeaderName(name);
    return true;
  } catch {
    return false;
  }
}

/** Whether node:http would write `value` as a header value. */
export function nodeHttpWritesValue(value: string): boolean {
  try {
    validateHeaderValue('x-a', value);
    return true;
  } catch {
    return false;
  }
}
