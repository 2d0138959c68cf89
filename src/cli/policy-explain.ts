/**
 * `mtls-gateway policy explain --config FILE --cert FILE --path /x [--method M] [--host H]
 * [--expect allow|deny] [--json]`: the gateway's answer to one request from one certificate, and
 * why. The request goes through the same steps as on the wire: the certificate checks before
 * policy (see cert-inspect.ts), path normalization, Host parsing, then `explain`, whose decision
 * comes from the gateway's own `decide`. The exit code is the answer (0 allow, 3 deny), so a
 * policy can be pinned in CI; with --expect the exit code says whether the answer was the one
 * expected.
 */
import { loadConfig, resolveConfigPath } from '../config/load-config.js';
import { ERRORS, type ErrorCode } from '../errors/registry.js';
import { hostForRouting } from '../request/host-header.js';
import { normalizeTarget } from '../request/normalize-path.js';
import { identityFromDer } from '../identity/identity-from-certificate.js';
import { compileRewrite } from '../proxy/rewrite-path.js';
import { compilePolicy } from '../policy/compile-policy.js';
import { explain, formatExplanation } from '../policy/explain.js';
import type { Explanation } from '../policy/types.js';
import { assessCertificate, readCertificateFile, reportConfigError, type CertificateFile, type CertificateVerdict } from './cert-inspect.js';

export const EXIT_ALLOW = 0;
export const EXIT_DENY = 3;

export interface ExplainResult {
  readonly request: { readonly method: string; readonly host: string | null; readonly path: string; readonly normalizedPath: string | null };
  readonly certificate: { readonly file: string; readonly subject: string; readonly spiffe: string | null; readonly verdict: CertificateVerdict };
  /** Null when the request is refused before policy (certificate, path or Host). */
  readonly explanation: Explanation | null;
  readonly result: {
    readonly allowed: boolean;
    readonly status: number;
    /** Error code of a refusal; null when allowed. */
    readonly code: ErrorCode | null;
    readonly upstream: string | null;
    readonly route: string | null;
    readonly rule: string | null;
    /**
     * The path the upstream receives when the request is forwarded: the normalized path after the
     * route's rewrite.prefix (the policy judged the path before it), with the query. Null when
     * nothing is forwarded.
     */
    readonly upstreamPath?: string | null;
    /**
     * The deciding route is in audit mode: a deny is what the policy decides (allowed stays false,
     * exit 3), but the gateway forwards the request and logs it as would-deny.
     */
    readonly audit: boolean;
    readonly summary: string;
  };
}

function refused(code: ErrorCode, summary: string): ExplainResult['result'] {
  return { allowed: false, status: ERRORS[code].status ?? 500, code, upstream: null, route: null, rule: null, audit: false, summary };
}

export async function explainRequest(opts: {
  configFile: string;
  certFile: string;
  method: string;
  path: string;
  host: string | null;
  now?: Date;
}): Promise<ExplainResult> {
  const now = opts.now ?? new Date();
  const loaded = await loadConfig(opts.configFile);
  const paths = loaded.config.server.paths;
  const policy = compilePolicy(loaded.config.routes, { caseSensitive: paths.caseSensitive });
  const cert: CertificateFile = await readCertificateFile(opts.certFile, '--cert');
  const identity = identityFromDer(cert.leaf.raw);
  const verdict = await assessCertificate(loaded.config, loaded.file, cert, now);
  const method = opts.method.toUpperCase();
  const target = normalizeTarget(opts.path, paths);
  const host = opts.host === null ? null : hostForRouting(opts.host);
  const request = { method, host: opts.host, path: opts.path, normalizedPath: target.ok ? target.path : null };
  const certificate = { file: opts.certFile, subject: identity.subject.rfc4514, spiffe: identity.spiffe?.uri ?? null, verdict };

  if (!verdict.accepted) {
    const failed = verdict.checks.find((c) => !c.ok);
    return { request, certificate, explanation: null, result: refused(verdict.code!, `refused before policy: ${failed?.detail ?? verdict.code}`) };
  }
  if (!target.ok) return { request, certificate, explanation: null, result: refused('GW_ERR_PATH_INVALID', `refused before policy: the path is ambiguous or malformed (${target.reason})`) };
  if (host === undefined) return { request, certificate, explanation: null, result: refused('GW_ERR_HOST_INVALID', 'refused before policy: the Host is malformed') };

  const explanation = explain(policy, identity, { method, host, path: target.path });
  const d = explanation.decision;
  // What the upstream would receive: the rewrite runs after the decision, on the judged path.
  const forwardedPath = (index: number) => {
    const route = loaded.config.routes[index]!;
    const rewrite = route.rewrite;
    return (rewrite === undefined ? target.path : compileRewrite(route.match, rewrite.prefix)(target.path)) + target.query;
  };
  let result: ExplainResult['result'];
  if (d.kind === 'allow') {
    result = { allowed: true, status: 200, code: null, upstream: d.route.upstream, route: d.route.name, rule: d.rule, upstreamPath: forwardedPath(d.route.index), audit: d.route.audit, summary: explanation.summary };
  } else if (d.kind === 'deny') {
    result = { ...refused('GW_ERR_POLICY_DENIED', explanation.summary), route: d.route.name, rule: d.rule, audit: d.route.audit, ...(d.route.audit ? { upstream: d.route.upstream, upstreamPath: forwardedPath(d.route.index) } : {}) };
  } else {
    result = refused('GW_ERR_ROUTE_NOT_FOUND', explanation.summary);
  }
  return { request, certificate, explanation, result };
}

/** ", as PATH" when the route rewrites the path the policy judged. */
function rewritten(r: ExplainResult): string {
  const sent = r.result.upstreamPath;
  const judged = r.request.normalizedPath;
  if (sent === undefined || sent === null || judged === null) return '';
  return sent.split('?')[0] === judged ? '' : `, as ${r.request.method} ${sent} (route rewrite; the policy judged ${judged})`;
}

export function formatExplainResult(r: ExplainResult): string {
  const lines = [
    `certificate: ${r.certificate.file}`,
    `  subject ${r.certificate.subject}${r.certificate.spiffe ? `, SPIFFE ID ${r.certificate.spiffe}` : ', no SPIFFE ID'}`,
  ];
  for (const c of r.certificate.verdict.checks) lines.push(`  ${c.ok ? 'ok  ' : 'FAIL'} ${c.name.padEnd(10)} ${c.detail}`);
  if (r.explanation !== null) {
    lines.push(formatExplanation(r.explanation));
  } else {
    lines.push(`request: ${r.request.method} ${r.request.host ?? '(no host)'} ${r.request.path}`);
  }
  const res = r.result;
  lines.push(
    res.allowed
      ? `result: ALLOW: forwarded to upstream "${res.upstream}" by route "${res.route}" (${res.rule})${rewritten(r)}`
      : res.audit
        ? `result: WOULD-DENY: ${res.status} ${res.code} once enforced; route "${res.route}" is in audit mode, so the gateway forwards it to upstream "${res.upstream}" and logs decision would-deny${rewritten(r)}`
        : `result: DENY: ${res.status} ${res.code}${r.explanation === null ? ` (${res.summary})` : ''}`,
  );
  return lines.join('\n') + '\n';
}

export async function runPolicyExplain(opts: {
  configFlag: string | undefined;
  cert: string | undefined;
  method: string | undefined;
  path: string | undefined;
  host: string | undefined;
  expect: string | undefined;
  json: boolean;
}): Promise<number> {
  const cmd = 'policy explain';
  const configFile = resolveConfigPath(opts.configFlag, process.env, process.cwd());
  const usage = (m: string) => {
    process.stderr.write(`mtls-gateway ${cmd}: ${m}\n  usage: mtls-gateway policy explain --config FILE --cert FILE --path /PATH [--method GET] [--host HOST] [--expect allow|deny] [--json]\n`);
    return 2;
  };
  if (configFile === null) return usage('no config file (pass --config FILE or set MTLS_GATEWAY_CONFIG)');
  if (opts.cert === undefined) return usage('--cert FILE is required (the client certificate, PEM)');
  if (opts.path === undefined) return usage('--path is required (the request path, e.g. /orders/42)');
  const method = opts.method ?? 'GET';
  if (!/^[A-Za-z]+$/.test(method)) return usage(`--method must be an HTTP method name (got "${method}")`);
  if (opts.expect !== undefined && opts.expect !== 'allow' && opts.expect !== 'deny') return usage(`--expect must be "allow" or "deny" (got "${opts.expect}")`);

  let r: ExplainResult;
  try {
    r = await explainRequest({ configFile, certFile: opts.cert, method, path: opts.path, host: opts.host ?? null });
  } catch (err) {
    const code = reportConfigError(err, cmd);
    if (code !== null) return code;
    const e = err as NodeJS.ErrnoException;
    process.stderr.write(`mtls-gateway ${cmd}: ${e.code === 'ENOENT' ? `cannot read ${e.path ?? opts.cert}` : e.message}\n`);
    return 1;
  }
  process.stdout.write(opts.json ? JSON.stringify(r, null, 2) + '\n' : formatExplainResult(r));
  const answer = r.result.allowed ? 'allow' : 'deny';
  if (opts.expect !== undefined) {
    if (answer === opts.expect) return 0;
    process.stderr.write(`mtls-gateway ${cmd}: expected ${opts.expect}, got ${answer}\n`);
    return EXIT_DENY;
  }
  return r.result.allowed ? EXIT_ALLOW : EXIT_DENY;
}
