/**
 * `mtls-gateway pki init | issue | revoke | crl | ticket-key`: a development PKI on disk. `init` writes the whole
 * set (root and intermediate CA, the gateway's server and upstream-client certificates, demo
 * upstream servers, client certificates, CRLs); `issue` adds a certificate signed by the
 * intermediate CA; `revoke` adds a serial to its issuer's CRL and re-signs it with every earlier
 * entry and a higher CRL number; `crl` re-signs both CRLs with fresh dates. The CRL files are the
 * record of what is revoked: nothing else is kept. For development and tests only; production
 * certificates come from a real CA (cert-manager, Vault, step-ca, ...).
 */
import { randomBytes, X509Certificate } from 'node:crypto';
import { access, chmod, mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import { identityFromDer } from '../identity/identity-from-certificate.js';
import { parseSpiffeId } from '../identity/spiffe.js';
import { normalizeSerial } from '../x509/canonical-hex.js';
import {
  createDevPki,
  issueLeaf,
  loadCa,
  readCrl,
  reissueCrl,
  type Ca,
  type RevocationReason,
} from '../pki/dev-pki.js';
import { writeDevPki, writeFileAtomically } from '../pki/write-dev-pki.js';

const KEY_MODE = 0o600;
const PUBLIC_MODE = 0o644;
const SAFE_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;
const DAY_MS = 86_400_000;
const REASONS: readonly RevocationReason[] = [
  'unspecified',
  'keyCompromise',
  'caCompromise',
  'affiliationChanged',
  'superseded',
  'cessationOfOperation',
  'certificateHold',
];

function shown(file: string): string {
  const rel = path.relative(process.cwd(), file);
  return rel.startsWith('..') || path.isAbsolute(rel) ? file : rel;
}

function usageError(cmd: string, message: string): number {
  process.stderr.write(`mtls-gateway ${cmd}: ${message}\n`);
  return 2;
}

function failure(cmd: string, message: string): number {
  process.stderr.write(`mtls-gateway ${cmd}: ${message}\n`);
  return 1;
}

function parseDays(cmd: string, raw: string | undefined, dflt: number): number | null {
  const days = raw === undefined ? dflt : Number(raw);
  if (!Number.isInteger(days) || days < 1 || days > 825) {
    process.stderr.write(`mtls-gateway ${cmd}: --days must be a whole number from 1 to 825 (got "${raw}")\n`);
    return null;
  }
  return days;
}

const exists = (file: string): Promise<boolean> => access(file).then(() => true, () => false);

export async function runPkiInit(opts: { out: string | undefined; force: boolean; ifAbsent?: boolean; days: string | undefined }): Promise<number> {
  const out = path.resolve(process.cwd(), opts.out ?? 'certs');
  const days = parseDays('pki init', opts.days, 30);
  if (days === null) return 2;
  const marker = path.join(out, 'root-ca.crt');
  if (!opts.force && (await exists(marker))) {
    if (opts.ifAbsent) {
      process.stdout.write(`${shown(out)} already holds a PKI (root-ca.crt); left as it is\n`);
      return 0;
    }
    process.stderr.write(`mtls-gateway pki init: ${out} already holds a PKI (root-ca.crt); pass --force to replace it\n`);
    return 1;
  }
  const pki = await createDevPki({ validityDays: days });
  const files = await writeDevPki(pki, out);
  process.stdout.write(`wrote a development PKI to ${out} (leaves valid ${days} days, CRLs 7 days):\n`);
  for (const f of files) process.stdout.write(`  ${shown(f)}\n`);
  process.stdout.write('Development use only: keys are unencrypted and CAs are short-lived.\n');
  return 0;
}

/** The two CAs of a PKI directory written by `pki init`, with their keys. */
async function loadCas(dir: string): Promise<{ root: Ca; intermediate: Ca }> {
  const read = async (name: string): Promise<string> => {
    try {
      return await readFile(path.join(dir, name), 'utf8');
    } catch (err) {
      throw new Error(`cannot read ${path.join(dir, name)} (${(err as NodeJS.ErrnoException).code ?? String(err)}); is ${dir} a directory written by "mtls-gateway pki init"?`);
    }
  };
  const root = await loadCa({ name: 'root', certPem: await read('root-ca.crt'), keyPem: await read('root-ca.key'), issuer: null });
  const intermediate = await loadCa({
    name: 'intermediate',
    certPem: await read('intermediate-ca.crt'),
    keyPem: await read('intermediate-ca.key'),
    issuer: root,
  });
  return { root, intermediate };
}

export interface PkiIssueOptions {
  dir: string | undefined;
  name: string | undefined;
  cn: string | undefined;
  ou: string[] | undefined;
  o: string | undefined;
  spiffe: string | undefined;
  uri: string[] | undefined;
  dns: string[] | undefined;
  ip: string[] | undefined;
  email: string[] | undefined;
  days: string | undefined;
  server: boolean;
  force: boolean;
}

export async function runPkiIssue(opts: PkiIssueOptions): Promise<number> {
  const cmd = 'pki issue';
  const dir = path.resolve(process.cwd(), opts.dir ?? 'certs');
  if (opts.name === undefined) return usageError(cmd, '--name is required (it becomes the file name, e.g. client-NAME.crt)');
  if (!SAFE_NAME.test(opts.name)) return usageError(cmd, `--name must be lower-case letters, digits, ".", "_" or "-" (got "${opts.name}")`);
  const days = parseDays(cmd, opts.days, 30);
  if (days === null) return 2;
  if (opts.spiffe !== undefined) {
    const id = parseSpiffeId(opts.spiffe);
    if (id === null || id.path === '') return usageError(cmd, `--spiffe must be a SPIFFE ID with a path, e.g. spiffe://example.org/ns/default/sa/${opts.name} (got "${opts.spiffe}")`);
  }
  const uris = [...(opts.spiffe !== undefined ? [opts.spiffe] : []), ...(opts.uri ?? [])];
  if (uris.filter((u) => u.toLowerCase().startsWith('spiffe://')).length > 1) {
    return usageError(cmd, 'a certificate carries at most one SPIFFE ID (pass it with --spiffe)');
  }
  const usage = opts.server ? 'server' : 'client';
  const prefix = opts.server ? 'server' : 'client';
  const certFile = path.join(dir, `${prefix}-${opts.name}.crt`);
  const keyFile = path.join(dir, `${prefix}-${opts.name}.key`);
  if (!opts.force && ((await exists(certFile)) || (await exists(keyFile)))) {
    return failure(cmd, `${shown(certFile)} already exists; pass --force to replace it or choose another --name`);
  }
  if (opts.server && (opts.dns ?? []).length === 0 && (opts.ip ?? []).length === 0) {
    return usageError(cmd, 'a server certificate needs at least one --dns or --ip name');
  }

  let cas;
  try {
    cas = await loadCas(dir);
  } catch (err) {
    return failure(cmd, (err as Error).message);
  }
  const now = new Date();
  const notAfter = new Date(now.getTime() + days * DAY_MS);
  const caEnd = new Date(cas.intermediate.cert.notAfter);
  if (notAfter > caEnd) {
    return failure(cmd, `--days ${days} would outlive the intermediate CA (valid until ${caEnd.toISOString()}); choose fewer days or re-run "pki init --force"`);
  }
  let issued;
  try {
    issued = await issueLeaf(cas.intermediate, {
      name: opts.name,
      now,
      notAfter,
      subject: { CN: opts.cn ?? opts.name, ...(opts.ou && opts.ou.length > 0 ? { OU: opts.ou } : {}), ...(opts.o !== undefined ? { O: opts.o } : {}) },
      uris,
      dns: opts.dns ?? [],
      ips: opts.ip ?? [],
      emails: opts.email ?? [],
      usage,
    });
  } catch (err) {
    return usageError(cmd, `cannot issue the certificate: ${(err as Error).message}`);
  }
  await mkdir(dir, { recursive: true });
  // Key first: a certificate file never exists without its key.
  await writeFileAtomically(keyFile, issued.keyPem, KEY_MODE);
  await writeFileAtomically(certFile, issued.chainPem, PUBLIC_MODE);
  const subject = identityFromDer(issued.der).subject.rfc4514;
  process.stdout.write(
    [
      `issued a ${usage} certificate signed by the intermediate CA:`,
      `  ${shown(certFile)}   (certificate + intermediate)`,
      `  ${shown(keyFile)}   (private key, mode 0600)`,
      `  subject ${subject}`,
      ...(uris.length > 0 ? [`  URI SAN ${uris.join(', ')}`] : []),
      ...((opts.dns ?? []).length > 0 ? [`  DNS SAN ${(opts.dns ?? []).join(', ')}`] : []),
      `  serial  ${issued.serial}`,
      `  valid until ${notAfter.toISOString()}`,
      opts.server ? '' : `Inspect it: mtls-gateway cert inspect ${shown(certFile)} --config config/gateway.yaml`,
    ]
      .filter((l) => l !== '')
      .join('\n') + '\n',
  );
  return 0;
}

export interface PkiRevokeOptions {
  dir: string | undefined;
  cert: string | undefined;
  serial: string | undefined;
  ca: string | undefined;
  reason: string | undefined;
}

export async function runPkiRevoke(opts: PkiRevokeOptions): Promise<number> {
  const cmd = 'pki revoke';
  const dir = path.resolve(process.cwd(), opts.dir ?? 'certs');
  if ((opts.cert === undefined) === (opts.serial === undefined)) return usageError(cmd, 'pass exactly one of --cert FILE or --serial HEX');
  const reason = (opts.reason ?? 'unspecified') as RevocationReason;
  if (!REASONS.includes(reason)) return usageError(cmd, `--reason must be one of ${REASONS.join(', ')} (got "${opts.reason}")`);
  if (opts.ca !== undefined && opts.ca !== 'root' && opts.ca !== 'intermediate') return usageError(cmd, '--ca must be "intermediate" or "root"');

  let cas;
  try {
    cas = await loadCas(dir);
  } catch (err) {
    return failure(cmd, (err as Error).message);
  }
  let serial: string;
  let issuerName: 'root' | 'intermediate';
  let what: string;
  if (opts.cert !== undefined) {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(await readFile(path.resolve(process.cwd(), opts.cert)));
    } catch (err) {
      return failure(cmd, `cannot read a certificate from ${opts.cert}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    const signedBy = (ca: Ca) => {
      const caCert = new X509Certificate(ca.certPem);
      return cert.checkIssued(caCert) && cert.verify(caCert.publicKey);
    };
    // A self-signed root cannot be revoked by a CRL it signs itself.
    if (cert.fingerprint256 === new X509Certificate(cas.root.certPem).fingerprint256) return failure(cmd, 'the root CA cannot be revoked; replace the PKI instead');
    if (signedBy(cas.intermediate)) issuerName = 'intermediate';
    else if (signedBy(cas.root)) issuerName = 'root';
    else return failure(cmd, `${opts.cert} was not issued by a CA in ${shown(dir)}`);
    if (opts.ca !== undefined && opts.ca !== issuerName) return failure(cmd, `${opts.cert} was issued by the ${issuerName} CA, not the ${opts.ca} CA`);
    serial = normalizeSerial(cert.serialNumber);
    what = identityFromDer(cert.raw).subject.rfc4514;
  } else {
    try {
      serial = normalizeSerial(opts.serial!);
    } catch {
      return usageError(cmd, `--serial must be a hex serial number (got "${opts.serial}")`);
    }
    issuerName = (opts.ca as 'root' | 'intermediate' | undefined) ?? 'intermediate';
    what = `serial ${serial}`;
  }
  const issuer = issuerName === 'root' ? cas.root : cas.intermediate;
  const crlFile = path.join(dir, `${issuerName}.crl.pem`);
  const previous = await readFile(crlFile, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return null;
    throw err;
  });
  try {
    if (previous !== null && (await readCrl(issuer, previous)).revoked.some((e) => e.serial === serial)) {
      process.stdout.write(`${what} is already on ${shown(crlFile)}; nothing changed\n`);
      return 0;
    }
    const crl = await reissueCrl(issuer, previous, { add: [{ serial, ...(reason !== 'unspecified' ? { reason } : {}) }] });
    await writeFileAtomically(crlFile, crl.pem, PUBLIC_MODE);
    process.stdout.write(
      `revoked ${what} (serial ${serial}, reason ${reason})\n` +
        `  rewrote ${shown(crlFile)}: CRL number ${crl.crlNumber}, ${crl.revoked.length} revoked serial${crl.revoked.length === 1 ? '' : 's'}, next update in 7 days\n` +
        'A running gateway that names this file in tls.crl reloads it by itself (file watch, tls.revocation.pollInterval) or on SIGHUP.\n',
    );
    return 0;
  } catch (err) {
    return failure(cmd, `cannot rewrite ${shown(crlFile)}: ${(err as Error).message}`);
  }
}

/**
 * Re-signs the root and intermediate CRLs of a PKI directory with their current entries, a higher
 * number and fresh dates (a CRL past its nextUpdate makes every client under that CA fail).
 */
export async function refreshCrls(dir: string): Promise<{ file: string; crlNumber: bigint; revoked: number }[]> {
  const cas = await loadCas(dir);
  const out: { file: string; crlNumber: bigint; revoked: number }[] = [];
  for (const [name, ca] of [['root', cas.root], ['intermediate', cas.intermediate]] as const) {
    const file = path.join(dir, `${name}.crl.pem`);
    const previous = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return null;
      throw err;
    });
    let crl;
    try {
      crl = await reissueCrl(ca, previous);
    } catch (err) {
      throw new Error(`cannot rewrite ${shown(file)}: ${(err as Error).message}`);
    }
    await writeFileAtomically(file, crl.pem, PUBLIC_MODE);
    out.push({ file, crlNumber: crl.crlNumber, revoked: crl.revoked.length });
  }
  return out;
}

export async function runPkiCrl(opts: { dir: string | undefined }): Promise<number> {
  const dir = path.resolve(process.cwd(), opts.dir ?? 'certs');
  try {
    for (const r of await refreshCrls(dir)) {
      process.stdout.write(`re-signed ${shown(r.file)}: CRL number ${r.crlNumber}, ${r.revoked} revoked, next update in 7 days\n`);
    }
    return 0;
  } catch (err) {
    return failure('pki crl', (err as Error).message);
  }
}

/** Bytes in a session ticket key file: what Node's tls `ticketKeys` takes (16 name, 16 HMAC, 16 AES). */
const TICKET_KEY_BYTES = 48;

/**
 * `pki ticket-key --out FILE [--force]`: 48 random bytes, mode 0600, for `tls.sessionTickets.keyFile`
 * (the TLS session ticket keys every worker and replica shares, so a session resumes on any of them).
 * Without --force an existing FILE is left alone (exclusive create, exit 1); with --force it is
 * replaced through a same-directory temp file and a rename, so a reader never sees half a key.
 * Nothing else is created: no directory, no backup.
 */
export async function runPkiTicketKey(opts: { out: string | undefined; force: boolean }): Promise<number> {
  const cmd = 'pki ticket-key';
  if (opts.out === undefined || opts.out === '') return usageError(cmd, '--out FILE is required (the file tls.sessionTickets.keyFile names)');
  const file = path.resolve(process.cwd(), opts.out);
  const name = shown(file) === '' ? file : shown(file);
  const key = randomBytes(TICKET_KEY_BYTES);
  const target = opts.force ? path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`) : file;
  let fh;
  try {
    // 'wx': never through an existing file or a planted symlink.
    fh = await open(target, 'wx', KEY_MODE);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' && !opts.force) return failure(cmd, `${name} already exists; pass --force to replace it (every worker and replica must then get the new file)`);
    return failure(cmd, `cannot write ${name}: ${code ?? (err as Error).message}`);
  }
  try {
    await fh.writeFile(key);
    // The umask may have narrowed the creation mode; set it exactly.
    await fh.chmod(KEY_MODE);
    await fh.sync();
    await fh.close();
    if (opts.force) {
      await rename(target, file);
      await chmod(file, KEY_MODE);
    }
  } catch (err) {
    await fh.close().catch(() => undefined);
    await unlink(target).catch(() => undefined);
    return failure(cmd, `cannot write ${name}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  process.stdout.write(`wrote a ${TICKET_KEY_BYTES}-byte TLS session ticket key to ${name} (mode 0600); point tls.sessionTickets.keyFile at it on every worker and replica\n`);
  return 0;
}
