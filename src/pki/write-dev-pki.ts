// Writes a generated development PKI (see dev-pki.ts) to a directory as PEM files with
// self-describing names: private keys 0600, certificates and CRLs 0644, each file replaced atomically.
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, open, rename, unlink } from 'node:fs/promises';
import * as path from 'node:path';
import type { DevPki } from './dev-pki.js';

const KEY_MODE = 0o600;
const PUBLIC_MODE = 0o644;

// Names end up in file names; anything that could climb out of outDir or hide a file is refused.
const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

interface PlannedFile {
  readonly file: string;
  readonly content: string;
  readonly mode: number;
}

/**
 * Writes `content` to `target` through a same-directory temp file and a rename, with `mode` set
 * before the file appears under its name: readers never see half a key or a key with loose
 * permissions.
 */
export async function writeFileAtomically(target: string, content: string, mode: number): Promise<void> {
  const f = { file: path.basename(target), content, mode };
  const dir = path.dirname(target);
  // Same directory so rename() stays on one filesystem and replaces the target in one step;
  // readers never see a half-written key or a key with loose permissions.
  const tmp = path.join(dir, `.${f.file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  // 'wx' refuses a pre-existing temp path (e.g. a planted symlink).
  const fh = await open(tmp, 'wx', f.mode);
  try {
    await fh.writeFile(f.content, 'utf8');
    // The umask may have narrowed the creation mode; set it exactly before the file appears.
    await fh.chmod(f.mode);
    await fh.sync();
  } catch (err) {
    await fh.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await fh.close();
  try {
    await rename(tmp, target);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  // rename() keeps the temp file's mode, but chmod again in case the platform did otherwise.
  await chmod(target, f.mode);
}

async function writeAtomically(dir: string, f: PlannedFile): Promise<string> {
  const target = path.join(dir, f.file);
  await writeFileAtomically(target, f.content, f.mode);
  return target;
}

export async function writeDevPki(pki: DevPki, outDir: string): Promise<string[]> {
  const plan: PlannedFile[] = [];
  const cert = (file: string, content: string): void => {
    plan.push({ file, content, mode: PUBLIC_MODE });
  };
  const key = (file: string, content: string): void => {
    plan.push({ file, content, mode: KEY_MODE });
  };
  const checked = (kind: string, name: string): string => {
    if (!SAFE_NAME.test(name)) throw new Error(`${kind} name not usable in a file name: ${JSON.stringify(name)}`);
    return name;
  };

  cert('root-ca.crt', pki.root.certPem);
  key('root-ca.key', pki.root.keyPem);
  cert('intermediate-ca.crt', pki.intermediate.certPem);
  key('intermediate-ca.key', pki.intermediate.keyPem);
  cert('ca-bundle.pem', pki.caBundlePem);
  // Leaf files carry the chain (leaf + intermediate) because that is what a TLS endpoint sends.
  cert('gateway.crt', pki.gatewayServer.chainPem);
  key('gateway.key', pki.gatewayServer.keyPem);
  cert('gateway-client.crt', pki.gatewayClient.chainPem);
  key('gateway-client.key', pki.gatewayClient.keyPem);
  for (const [name, issued] of Object.entries(pki.upstreams)) {
    checked('upstream', name);
    cert(`upstream-${name}.crt`, issued.chainPem);
    key(`upstream-${name}.key`, issued.keyPem);
  }
  for (const [name, issued] of Object.entries(pki.clients)) {
    checked('client', name);
    cert(`client-${name}.crt`, issued.chainPem);
    key(`client-${name}.key`, issued.keyPem);
  }
  cert('root.crl.pem', pki.rootCrl.pem);
  cert('intermediate.crl.pem', pki.intermediateCrl.pem);

  await mkdir(outDir, { recursive: true });
  const written: string[] = [];
  for (const f of plan) written.push(await writeAtomically(outDir, f));
  return written;
}
