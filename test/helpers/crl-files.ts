/**
 * CRL file helpers for revocation tests: atomic replacement (temp file + rename, as editors and
 * config management do) and waiting for the gateway to swap its revocation index.
 */
import { rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Gateway } from '../../src/http/build-gateway.js';

export async function replaceFile(file: string, text: string): Promise<void> {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${Date.now()}.tmp`);
  await writeFile(tmp, text);
  await rename(tmp, file);
}

/** Resolves once the named store's index generation moved past `from` (bounded wait). */
export async function waitForGeneration(gateway: Gateway, domain: string, from: number, timeoutMs = 10_000): Promise<number> {
  const store = gateway.revocation.get(domain);
  if (!store) throw new Error(`no revocation store ${domain}`);
  const until = Date.now() + timeoutMs;
  while (store.index.generation <= from) {
    if (Date.now() > until) throw new Error(`revocation index of ${domain} did not change within ${timeoutMs} ms`);
    await sleep(25);
  }
  return store.index.generation;
}
