/**
 * The demo's PKI: created on first run, and kept usable afterwards. CRLs live 7 days and leaves 30,
 * so a directory from an earlier week gets its CRLs re-signed (same entries) and one with expired
 * or missing certificates is generated anew.
 */
import { X509Certificate } from 'node:crypto';
import { access, readFile } from 'node:fs/promises';
import path from 'node:path';
import { createDevPki } from '../pki/dev-pki.js';
import { writeDevPki } from '../pki/write-dev-pki.js';
import { parseCrlFile } from '../revocation/parse-crl.js';
import { refreshCrls } from '../cli/pki-commands.js';

const MARGIN_MS = 60 * 60 * 1000;
export const DEMO_CLIENTS = ['billing', 'ops-admin', 'intruder', 'revoked'] as const;

export type PkiState = 'created' | 'regenerated' | 'crls-refreshed' | 'ok';

function requiredCertificates(upstreams: readonly string[]): string[] {
  return [
    'root-ca.crt',
    'intermediate-ca.crt',
    'gateway.crt',
    'gateway-client.crt',
    ...upstreams.map((u) => `upstream-${u}.crt`),
    ...DEMO_CLIENTS.map((c) => `client-${c}.crt`),
  ];
}

async function problems(dir: string, upstreams: readonly string[], now: number): Promise<string[]> {
  const out: string[] = [];
  for (const f of requiredCertificates(upstreams)) {
    const file = path.join(dir, f);
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(await readFile(file));
      await access(file.replace(/\.crt$/, '.key'));
    } catch {
      out.push(`${f} or its key is missing`);
      continue;
    }
    if (new Date(cert.validTo).getTime() < now + MARGIN_MS) out.push(`${f} expires at ${new Date(cert.validTo).toISOString()}`);
  }
  return out;
}

async function crlsStale(dir: string, now: number): Promise<boolean> {
  for (const f of ['root.crl.pem', 'intermediate.crl.pem']) {
    try {
      const [crl] = parseCrlFile(await readFile(path.join(dir, f)));
      if (crl === undefined || crl.nextUpdate === null || crl.nextUpdate.getTime() < now + MARGIN_MS) return true;
    } catch {
      return true;
    }
  }
  return false;
}

export async function ensureDemoPki(dir: string, upstreams: readonly string[], say: (line: string) => void): Promise<PkiState> {
  const now = Date.now();
  const exists = await access(path.join(dir, 'root-ca.crt')).then(() => true, () => false);
  if (exists) {
    const wrong = await problems(dir, upstreams, now);
    if (wrong.length === 0) {
      if (!(await crlsStale(dir, now))) return 'ok';
      await refreshCrls(dir);
      say('re-signed the CRLs (they live 7 days)');
      return 'crls-refreshed';
    }
    say(`generating a new development PKI: ${wrong.slice(0, 3).join('; ')}${wrong.length > 3 ? '; ...' : ''}`);
  }
  const pki = await createDevPki({ upstreamNames: [...upstreams] });
  await writeDevPki(pki, dir);
  return exists ? 'regenerated' : 'created';
}
