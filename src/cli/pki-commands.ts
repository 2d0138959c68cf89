/**
 * `mtls-gateway pki init`: writes a complete development PKI (root and intermediate CA, the
 * gateway's server and upstream-client certificates, demo upstream servers, client certificates,
 * CRLs) with short validity. For development and tests only; production certificates come from a
 * real CA (cert-manager, Vault, step-ca, ...).
 */
import { access } from 'node:fs/promises';
import path from 'node:path';
import { createDevPki } from '../pki/dev-pki.js';
import { writeDevPki } from '../pki/write-dev-pki.js';

export async function runPkiInit(opts: { out: string | undefined; force: boolean; days: string | undefined }): Promise<number> {
  const out = path.resolve(process.cwd(), opts.out ?? 'certs');
  const days = opts.days === undefined ? 30 : Number(opts.days);
  if (!Number.isInteger(days) || days < 1 || days > 825) {
    process.stderr.write(`mtls-gateway pki init: --days must be a whole number from 1 to 825 (got "${opts.days}")\n`);
    return 2;
  }
  const marker = path.join(out, 'root-ca.crt');
  if (!opts.force && (await access(marker).then(() => true, () => false))) {
    process.stderr.write(`mtls-gateway pki init: ${out} already holds a PKI (root-ca.crt); pass --force to replace it\n`);
    return 1;
  }
  const pki = await createDevPki({ validityDays: days });
  const files = await writeDevPki(pki, out);
  process.stdout.write(`wrote a development PKI to ${out} (leaves valid ${days} days):\n`);
  for (const f of files) {
    const rel = path.relative(process.cwd(), f);
    process.stdout.write(`  ${rel.startsWith('..') ? f : rel}\n`);
  }
  process.stdout.write('Development use only: keys are unencrypted and CAs are short-lived.\n');
  return 0;
}
