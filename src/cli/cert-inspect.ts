/**
 * `mtls-gateway cert inspect FILE [--config FILE] [--json]`: a certificate as the gateway sees it.
 * The identity comes from the same DER reader the gateway runs on every connection
 * (identityFromDer), so what is printed is exactly what selectors match against. With --config it
 * also checks what the gateway would check before policy (chain to tls.clientCA, validity,
 * clientAuth usage, chain depth, the CRLs the config names) and lists, route by route, whether the
 * identity is allowed, by which selector, or which selector came closest.
 *
 * The pre-policy checks here are an offline reading of the files: the gateway's own verdict comes
 * from OpenSSL and the revocation engine at connection time. They agree on the dev PKI and the
 * cases in test/integration/cli-cert-inspect.test.ts; a disagreement is a bug in this file.
 */
import { randomBytes, X509Certificate } from 'node:crypto';
import { Agent } from 'undici';
import { ConfigError, loadConfig, resolveConfigPath } from '../config/load-config.js';
import { PEM_FILE_MAX_BYTES, readRegularFile, unreadableReason } from '../config/read-regular-file.js';
import type { GatewayConfig, RouteConfig } from '../config/schema.js';
import type { ErrorCode } from '../errors/registry.js';
import { identityFromDer } from '../identity/identity-from-certificate.js';
import type { PeerIdentity } from '../identity/peer-identity.js';
import { compilePolicy } from '../policy/compile-policy.js';
import { selectorMatches } from '../policy/decide.js';
import type { CompiledPolicy, CompiledSelector } from '../policy/types.js';
import { pino } from 'pino';
import { normalizeCrlSources } from '../revocation/crl-sources.js';
import { parseCrlFile } from '../revocation/parse-crl.js';
import { combineLeaf, type OcspPolicy } from '../revocation/combined-revocation.js';
import { createOcspHttpLookup } from '../revocation/ocsp-http-lookup.js';
import { certIdFor, encodeOcspRequest } from '../revocation/ocsp-request.js';
import { verifyOcspResponse } from '../revocation/ocsp-response.js';
import { stateFromCheck, type OcspState } from '../revocation/ocsp-store.js';
import { checkChain } from '../revocation/revocation-policy.js';
import { compileResponders } from '../runtime/ocsp-stores.js';
import { RevocationStore } from '../revocation/revocation-store.js';
import { normalizeSerial } from '../x509/canonical-hex.js';
import type { ChainLink } from '../x509/chain-links.js';
import { certificateDn } from '../x509/dn.js';

const EKU_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const EKU_SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const EKU_ANY = '2.5.29.37.0';
const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

export interface CertificateFile {
  readonly file: string;
  readonly leaf: X509Certificate;
  /** Certificates after the leaf in the file (what a client sends along: its intermediates). */
  readonly presented: readonly X509Certificate[];
}

/**
 * Reads a PEM file (leaf first, then any intermediates) or a single DER certificate. `key` names
 * the argument the file came from (`FILE`, `--cert`) in the refusal of a device, FIFO or oversized
 * file, which are refused like the gateway's own material rather than read without end.
 */
export async function readCertificateFile(file: string, key = 'FILE'): Promise<CertificateFile> {
  const bytes = await readRegularFile(file, { key, maxBytes: PEM_FILE_MAX_BYTES, code: 'GW_ERR_TLS_MATERIAL' });
  const text = bytes.toString('latin1');
  let certs: X509Certificate[];
  if (text.includes('-----BEGIN')) {
    const pems = text.match(PEM_CERT) ?? [];
    if (pems.length === 0) throw new Error(`${file} holds no PEM certificate ("-----BEGIN CERTIFICATE-----")`);
    certs = pems.map((p) => new X509Certificate(p));
  } else {
    certs = [new X509Certificate(bytes)];
  }
  return { file, leaf: certs[0]!, presented: certs.slice(1) };
}

export interface CertificateCheck {
  readonly name: 'trust' | 'validity' | 'usage' | 'depth' | 'revocation' | 'ocsp';
  readonly ok: boolean;
  /** The error code the gateway answers with when this check fails. */
  readonly code: ErrorCode | null;
  readonly detail: string;
}

export interface CertificateVerdict {
  /** True when the gateway would accept the connection and go on to policy. */
  readonly accepted: boolean;
  /** The first failing check's code: the 401 the client would get. */
  readonly code: ErrorCode | null;
  readonly checks: readonly CertificateCheck[];
  /** Subjects from the leaf up to the trust anchor (as far as it could be built). */
  readonly chain: readonly string[];
}

function isSelfSigned(c: X509Certificate): boolean {
  return c.checkIssued(c) && c.verify(c.publicKey);
}

function issuedBy(child: X509Certificate, parent: X509Certificate): boolean {
  return parent.ca && child.checkIssued(parent) && child.verify(parent.publicKey);
}

/** Leaf, intermediates and the trust anchor, or the partial chain and why it stops. */
function buildChain(leaf: X509Certificate, presented: readonly X509Certificate[], anchors: readonly X509Certificate[]): { chain: X509Certificate[]; trusted: boolean } {
  const chain = [leaf];
  const pool = [...presented, ...anchors];
  let cur = leaf;
  for (let depth = 0; depth < 16; depth++) {
    if (isSelfSigned(cur)) {
      // Trust comes only from tls.clientCA, never from what the client sent.
      return { chain, trusted: anchors.some((a) => a.fingerprint256 === cur.fingerprint256) };
    }
    const parent = pool.find((c) => c.fingerprint256 !== cur.fingerprint256 && issuedBy(cur, c));
    if (parent === undefined) return { chain, trusted: false };
    chain.push(parent);
    cur = parent;
  }
  return { chain, trusted: false };
}

/**
 * Revocation exactly as the gateway decides it: the same store loads and validates the configured
 * sources (URLs included) and the same checkChain judges the chain, so the answer cannot drift.
 */
async function checkRevocation(chain: readonly X509Certificate[], config: GatewayConfig, trust: readonly X509Certificate[], now: Date): Promise<CertificateCheck> {
  const rev = config.tls.revocation;
  const store = new RevocationStore({
    domain: 'clients',
    sources: normalizeCrlSources(config.tls.crl, 'tls.crl'),
    trust,
    logger: pino({ level: 'silent' }),
    now: () => now.getTime(),
    parse: async (bytes) => parseCrlFile(bytes),
    warnBeforeMs: rev.warnBefore,
    pollIntervalMs: rev.pollInterval,
  });
  try {
    await store.loadInitial();
  } catch (err) {
    return { name: 'revocation', ok: false, code: 'GW_ERR_CLIENT_CERT_REVOCATION_UNKNOWN', detail: `the gateway would not start with these CRLs: ${(err as Error).message}` };
  } finally {
    await store.stop();
  }
  const links: ChainLink[] = [];
  for (let i = 0; i < chain.length && !isSelfSigned(chain[i]!); i++) {
    links.push({ serial: normalizeSerial(chain[i]!.serialNumber), subject: certificateDn(chain[i]!), isCa: i > 0, issuer: chain[i + 1] ?? null, raw: chain[i]!.raw });
  }
  const v = checkChain(store.index, links, { scope: rev.scope, missing: rev.missing, stale: rev.stale, graceMs: rev.grace ?? 0 }, now.getTime());
  if (!v.ok) {
    const when = v.revokedAt ? ` on ${v.revokedAt.toISOString()}` : '';
    return {
      name: 'revocation',
      ok: false,
      code: v.revoked ? 'GW_ERR_CLIENT_CERT_REVOKED' : 'GW_ERR_CLIENT_CERT_REVOCATION_UNKNOWN',
      detail: v.revoked ? `${v.subject} (serial ${v.serial}) is revoked${when}, reason ${v.reason}, CRL number ${v.crlNumber ?? '-'} of ${v.issuer}` : `${v.subject}: ${v.reason}`,
    };
  }
  const inForce = store.describe().map((c) => `${c.issuer} CRL number ${c.crlNumber ?? '-'}`).join('; ');
  return { name: 'revocation', ok: true, code: null, detail: v.failOpen ? `admitted without a current revocation status: ${v.failOpen}` : `not revoked (scope ${rev.scope}; CRLs in force: ${inForce || 'none'})` };
}

function ekuOf(c: X509Certificate): string[] {
  return (c.keyUsage as string[] | undefined) ?? [];
}

/**
 * OCSP as the gateway decides it for the leaf: the same responder choice (tls.ocsp.responders,
 * else the AIA URL), a real lookup with the configured timeout and limits, the same verification,
 * and the same rule (combineLeaf) joining the answer to the policy. The CRL side is the
 * `revocation` check, so the CRL verdict is not repeated here.
 */
async function checkOcsp(chain: readonly X509Certificate[], config: GatewayConfig, now: Date): Promise<CertificateCheck> {
  const o = config.tls.ocsp;
  const leaf = chain[0]!;
  const issuer = chain[1];
  const link: ChainLink = { serial: normalizeSerial(leaf.serialNumber), subject: certificateDn(leaf), isCa: false, issuer: issuer ?? null, raw: leaf.raw };
  const policy: OcspPolicy = { mode: o.mode === 'require' ? 'require' : 'prefer', onUnavailable: o.onUnavailable };
  const url = issuer === undefined ? null : compileResponders(o.responders)(leaf.raw, issuer);
  let state: OcspState;
  if (url === null || issuer === undefined) {
    state = { kind: 'no-responder' };
  } else {
    const certId = certIdFor(leaf.raw, issuer);
    const nonce = o.nonce ? randomBytes(16) : null;
    // Its own agent, closed at once: a pooled keep-alive socket would hold the CLI open.
    const agent = new Agent();
    const res = await createOcspHttpLookup(agent)({ url, request: encodeOcspRequest(certId, nonce), timeoutMs: o.timeout, maxBytes: o.maxBytes }).finally(() => agent.destroy());
    const until = now.getTime();
    if (!res.ok) state = { kind: 'unavailable', reason: res.reason, url, until };
    else state = stateFromCheck(verifyOcspResponse(res.der, { certId, issuer, now: until, nonce }), url, until, until);
  }
  const v = combineLeaf(link, state, policy, null);
  const what = state.kind === 'answer' ? `${state.answer.status} from ${state.url} (thisUpdate ${state.answer.thisUpdate.toISOString()}, nextUpdate ${state.answer.nextUpdate?.toISOString() ?? 'none'}, signed by ${state.answer.signer})` : state.kind === 'unavailable' ? `no usable answer from ${state.url}: ${state.reason}` : 'no responder known (no tls.ocsp.responders entry for its issuer, no AIA OCSP URL)';
  if (!v.ok) return { name: 'ocsp', ok: false, code: v.revoked ? 'GW_ERR_CLIENT_CERT_REVOKED' : 'GW_ERR_CLIENT_CERT_REVOCATION_UNKNOWN', detail: `${what} (mode ${o.mode}, onUnavailable ${o.onUnavailable})` };
  return { name: 'ocsp', ok: true, code: null, detail: v.failOpen ? `admitted without an OCSP answer: ${what} (onUnavailable: allow)` : state.kind === 'no-responder' ? `${what}: the CRLs decide (mode prefer)` : what };
}

/** What the gateway checks before policy, answered from the files the config names. */
export async function assessCertificate(
  config: GatewayConfig,
  configFile: string,
  cert: CertificateFile,
  now: Date,
): Promise<CertificateVerdict> {
  const anchorsText = (await readRegularFile(config.tls.clientCA, { key: 'tls.clientCA', maxBytes: PEM_FILE_MAX_BYTES, code: 'GW_ERR_TLS_MATERIAL' })).toString('utf8');
  const anchors = (anchorsText.match(PEM_CERT) ?? []).map((p) => new X509Certificate(p));
  const { chain, trusted } = buildChain(cert.leaf, cert.presented, anchors);
  const checks: CertificateCheck[] = [];
  checks.push(
    trusted
      ? { name: 'trust', ok: true, code: null, detail: `chains to tls.clientCA: ${chain.map((c) => certificateDn(c)).join(' <- ')}` }
      : { name: 'trust', ok: false, code: 'GW_ERR_CLIENT_CERT_UNTRUSTED', detail: `does not chain to a root in tls.clientCA (${config.tls.clientCA}); chain built: ${chain.map((c) => certificateDn(c)).join(' <- ')}` },
  );
  const expired = chain.find((c) => new Date(c.validTo).getTime() < now.getTime());
  const early = chain.find((c) => new Date(c.validFrom).getTime() > now.getTime());
  checks.push(
    expired
      ? { name: 'validity', ok: false, code: 'GW_ERR_CLIENT_CERT_EXPIRED', detail: `${expired === cert.leaf ? 'the certificate' : certificateDn(expired)} expired at ${new Date(expired.validTo).toISOString()}` }
      : early
        ? { name: 'validity', ok: false, code: 'GW_ERR_CLIENT_CERT_NOT_YET_VALID', detail: `${early === cert.leaf ? 'the certificate' : certificateDn(early)} is valid only from ${new Date(early.validFrom).toISOString()}` }
        : { name: 'validity', ok: true, code: null, detail: `valid until ${new Date(cert.leaf.validTo).toISOString()}` },
  );
  const eku = ekuOf(cert.leaf);
  checks.push(
    cert.leaf.ca
      ? { name: 'usage', ok: false, code: 'GW_ERR_CLIENT_CERT_USAGE', detail: 'a CA certificate cannot authenticate a client' }
      : eku.length > 0 && !eku.includes(EKU_CLIENT_AUTH) && !eku.includes(EKU_ANY)
        ? { name: 'usage', ok: false, code: 'GW_ERR_CLIENT_CERT_USAGE', detail: 'the extended key usage lacks clientAuth' }
        : { name: 'usage', ok: true, code: null, detail: eku.length === 0 ? 'no extended key usage (any use)' : 'clientAuth' },
  );
  const depth = chain.length - 1;
  checks.push(
    depth > config.tls.verifyDepth
      ? { name: 'depth', ok: false, code: 'GW_ERR_CLIENT_CERT_INVALID', detail: `${depth} CA certificates above the client certificate (tls.verifyDepth is ${config.tls.verifyDepth})` }
      : { name: 'depth', ok: true, code: null, detail: `${depth} CA certificate${depth === 1 ? '' : 's'} above it (tls.verifyDepth ${config.tls.verifyDepth})` },
  );
  if (!config.tls.crl || config.tls.crl.length === 0) {
    checks.push({
      name: 'revocation',
      ok: true,
      code: null,
      detail: config.tls.crlFromDistributionPoints
        ? 'not checked here: the config names no CRL (tls.crl); the CRLs of the CA certificates\' distribution points (tls.crlFromDistributionPoints) are fetched by the running gateway'
        : 'not checked: the config names no CRL (tls.crl)',
    });
  } else if (trusted) {
    checks.push(await checkRevocation(chain, config, anchors, now));
  }
  if (config.tls.ocsp.mode !== 'off' && trusted) checks.push(await checkOcsp(chain, config, now));
  const failed = checks.find((c) => !c.ok);
  return { accepted: failed === undefined, code: failed?.code ?? null, checks, chain: chain.map((c) => certificateDn(c)) };
}

export interface RouteAccess {
  readonly route: string;
  readonly index: number;
  readonly match: string;
  readonly upstream: string;
  /** The route's rewrite.prefix (applied after the policy decision), or null. */
  readonly rewrite: string | null;
  readonly allowed: boolean;
  /** The selector that decided (`routes[0].allow[1]`), or null when no allow entry matched. */
  readonly rule: string | null;
  readonly because: string;
}

function closestAllow(allow: readonly CompiledSelector[], identity: PeerIdentity): { sel: CompiledSelector; matched: number } | null {
  let best: { sel: CompiledSelector; matched: number } | null = null;
  for (const sel of allow) {
    const matched = sel.checks.filter((c) => c.test(identity)).length;
    if (best === null || matched > best.matched) best = { sel, matched };
  }
  return best;
}

/** Route by route: would this identity be allowed on a request that reaches the route? */
export function routeAccess(policy: CompiledPolicy, identity: PeerIdentity, routes: readonly RouteConfig[] = []): RouteAccess[] {
  return policy.routes.map((route) => {
    const base = { route: route.name, index: route.index, match: route.match.description, upstream: route.upstream, rewrite: routes[route.index]?.rewrite?.prefix ?? null };
    const deny = route.deny.find((s) => selectorMatches(s, identity));
    if (deny) return { ...base, allowed: false, rule: deny.rule, because: `denied by ${deny.rule} [${deny.description}]` };
    const allow = route.allow.find((s) => selectorMatches(s, identity));
    if (allow) return { ...base, allowed: true, rule: allow.rule, because: `allowed by ${allow.rule} [${allow.description}]` };
    const near = closestAllow(route.allow, identity);
    if (near === null) return { ...base, allowed: false, rule: null, because: 'the route has no allow entries: it admits nobody' };
    const failed = near.sel.checks
      .filter((c) => !c.test(identity))
      .map((c) => {
        const actual = c.actual(identity);
        return `${c.field} wants ${JSON.stringify(c.expected)}, has ${actual.length === 0 ? 'none' : actual.map((a) => JSON.stringify(a)).join(', ')}`;
      });
    return { ...base, allowed: false, rule: null, because: `no allow entry matches; closest ${near.sel.rule} [${near.sel.description}]: ${failed.join('; ')}` };
  });
}

function usageOf(c: X509Certificate): string {
  if (c.ca) return 'CA certificate';
  const eku = ekuOf(c);
  if (eku.length === 0) return 'any (no extended key usage)';
  return eku.map((o) => (o === EKU_CLIENT_AUTH ? 'clientAuth' : o === EKU_SERVER_AUTH ? 'serverAuth' : o === EKU_ANY ? 'any' : o)).join(', ');
}

function durationText(ms: number): string {
  const abs = Math.abs(ms);
  const d = Math.floor(abs / 86_400_000);
  const h = Math.floor((abs % 86_400_000) / 3_600_000);
  return d > 0 ? `${d}d ${h}h` : h > 0 ? `${h}h` : `${Math.max(1, Math.round(abs / 60_000))}m`;
}

function validityText(id: PeerIdentity, now: Date): string {
  const t = now.getTime();
  if (t > id.notAfter.getTime()) return `EXPIRED ${durationText(t - id.notAfter.getTime())} ago`;
  if (t < id.notBefore.getTime()) return `NOT YET VALID (starts in ${durationText(id.notBefore.getTime() - t)})`;
  return `valid, expires in ${durationText(id.notAfter.getTime() - t)}`;
}

function list(values: readonly string[]): string {
  return values.length === 0 ? '(none)' : values.join(', ');
}

export function formatIdentity(file: string, cert: CertificateFile, id: PeerIdentity, now: Date): string[] {
  return [
    `file:         ${file}${cert.presented.length > 0 ? ` (leaf + ${cert.presented.length} more certificate${cert.presented.length === 1 ? '' : 's'})` : ''}`,
    `subject:      ${id.subject.rfc4514}`,
    `  attributes: ${id.subject.attributes.map((a) => `${a.type}=${JSON.stringify(a.value)}`).join(' ')}`,
    `issuer:       ${id.issuer.rfc4514}`,
    `spiffe:       ${id.spiffe === null ? '(none)' : `${id.spiffe.uri} (trust domain ${id.spiffe.trustDomain}, path ${id.spiffe.path})`}`,
    `san uri:      ${list(id.san.uri)}`,
    `san dns:      ${list(id.san.dns)}`,
    `san email:    ${list(id.san.email)}`,
    `san ip:       ${list(id.san.ip)}`,
    `serial:       ${id.serial}`,
    `fingerprint:  ${id.fingerprint256}   (sha256, as the fingerprint selector takes it)`,
    `not before:   ${id.notBefore.toISOString()}`,
    `not after:    ${id.notAfter.toISOString()}   (${validityText(id, now)})`,
    `usage:        ${usageOf(cert.leaf)}`,
  ];
}

export function formatVerdict(v: CertificateVerdict): string[] {
  const lines = [`gateway:      ${v.accepted ? 'accepts the certificate; policy decides per route' : `refuses it before policy: 401 ${v.code}`}`];
  for (const c of v.checks) lines.push(`  ${c.ok ? 'ok  ' : 'FAIL'} ${c.name.padEnd(10)} ${c.detail}`);
  return lines;
}

function formatRoutes(access: readonly RouteAccess[], accepted: boolean): string[] {
  if (access.length === 0) return ['routes:       (none configured)'];
  const rows = access.map((a) => [`routes[${a.index}] ${a.route}`, a.rewrite === null ? a.match : `${a.match} -> rewrite ${a.rewrite}`, a.allowed ? (accepted ? 'allow' : 'allow*') : 'deny', a.because]);
  const widths = [0, 1, 2].map((i) => Math.max(...rows.map((r) => r[i]!.length), ['ROUTE', 'MATCH', 'VERDICT'][i]!.length));
  const line = (r: string[]) => `  ${r.slice(0, 3).map((c, i) => c.padEnd(widths[i]!)).join('  ')}  ${r[3]}`;
  const out = ['routes (the first route whose match fits a request decides it):', line(['ROUTE', 'MATCH', 'VERDICT', 'WHY']), ...rows.map(line)];
  if (!accepted && access.some((a) => a.allowed)) out.push('  * the policy would allow it, but the certificate is refused before policy (see "gateway" above)');
  return out;
}

export interface InspectResult {
  readonly file: string;
  readonly identity: PeerIdentity;
  readonly usage: string;
  readonly config: { readonly file: string; readonly verdict: CertificateVerdict; readonly routes: readonly RouteAccess[] } | null;
}

/** The whole inspection, for the CLI and tests. Throws on unreadable files or an invalid config. */
export async function inspectCertificate(opts: { file: string; configFile: string | null; now?: Date }): Promise<InspectResult> {
  const now = opts.now ?? new Date();
  const cert = await readCertificateFile(opts.file);
  const identity = identityFromDer(cert.leaf.raw);
  let config: InspectResult['config'] = null;
  if (opts.configFile !== null) {
    const loaded = await loadConfig(opts.configFile);
    const policy = compilePolicy(loaded.config.routes, { caseSensitive: loaded.config.server.paths.caseSensitive });
    const verdict = await assessCertificate(loaded.config, loaded.file, cert, now);
    config = { file: loaded.file, verdict, routes: routeAccess(policy, identity, loaded.config.routes) };
  }
  return { file: opts.file, identity, usage: usageOf(cert.leaf), config };
}

export function formatInspection(r: InspectResult, cert: CertificateFile, now: Date): string {
  const lines = formatIdentity(r.file, cert, r.identity, now);
  if (r.config !== null) {
    lines.push('', `config:       ${r.config.file}`, ...formatVerdict(r.config.verdict), ...formatRoutes(r.config.routes, r.config.verdict.accepted));
  }
  return lines.join('\n') + '\n';
}

export function reportConfigError(err: unknown, cmd: string): number | null {
  if (err instanceof ConfigError) {
    process.stderr.write(`${err.file}: invalid configuration\n`);
    for (const i of err.issues) process.stderr.write(`  ${i.path || '(document)'}: ${i.message}\n`);
    return 1;
  }
  const e = err as { code?: string; message?: string; issues?: { path: string; message: string }[] };
  if (e?.issues) {
    process.stderr.write(`mtls-gateway ${cmd}: invalid policy\n`);
    for (const i of e.issues) process.stderr.write(`  ${i.path}: ${i.message}\n`);
    return 1;
  }
  if (typeof e?.code === 'string' && e.code.startsWith('GW_ERR_')) {
    process.stderr.write(`mtls-gateway ${cmd}: ${e.message}\n`);
    return 1;
  }
  return null;
}

export async function runCertInspect(opts: { file: string | undefined; configFlag: string | undefined; json: boolean }): Promise<number> {
  if (opts.file === undefined) {
    process.stderr.write('mtls-gateway cert inspect: name the certificate file (mtls-gateway cert inspect FILE [--config FILE])\n');
    return 2;
  }
  const now = new Date();
  const configFile = resolveConfigPath(opts.configFlag, {}, process.cwd());
  let cert: CertificateFile;
  try {
    cert = await readCertificateFile(opts.file);
  } catch (err) {
    process.stderr.write(`mtls-gateway cert inspect: cannot read a certificate from ${opts.file}: ${unreadableReason(err)}\n`);
    return 1;
  }
  let result: InspectResult;
  try {
    result = await inspectCertificate({ file: opts.file, configFile, now });
  } catch (err) {
    const code = reportConfigError(err, 'cert inspect');
    if (code !== null) return code;
    process.stderr.write(`mtls-gateway cert inspect: ${(err as Error).message}\n`);
    return 1;
  }
  process.stdout.write(opts.json ? JSON.stringify(result, null, 2) + '\n' : formatInspection(result, cert, now));
  return 0;
}
