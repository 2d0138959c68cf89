/**
 * Configuration loading: read a YAML or JSON file, validate it against the schema, resolve every
 * file path relative to the config file, and report each problem with its key path
 * (`routes[1].allow[0].spiffe: ...`). This is the only module that reads the environment
 * (MTLS_GATEWAY_CONFIG names the file when --config is absent).
 */
import path from 'node:path';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { GatewayError } from '../errors/registry.js';
import { CONFIG_FILE_MAX_BYTES, readRegularFile, unreadableReason } from './read-regular-file.js';
import { configSchema, type CrlSourceConfig, type GatewayConfig } from './schema.js';

export interface ConfigIssue {
  /** Key path, e.g. `routes[1].allow[0].spiffe` ("" for the whole document). */
  readonly path: string;
  readonly message: string;
}

export interface LoadedConfig {
  readonly config: GatewayConfig;
  /** Absolute path of the file it came from. */
  readonly file: string;
}

export function formatKeyPath(segments: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of segments) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else {
      const s = String(seg);
      out += /^[A-Za-z_$][\w$-]*$/.test(s) ? (out ? '.' : '') + s : `[${JSON.stringify(s)}]`;
    }
  }
  return out;
}

export function zodIssues(error: z.ZodError): ConfigIssue[] {
  return error.issues.map((issue) => {
    let message = issue.message;
    if (issue.code === 'unrecognized_keys') {
      message = `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
    } else if (issue.code === 'invalid_type' && /received undefined/.test(issue.message)) {
      message = `is required (${issue.expected})`;
    }
    return { path: formatKeyPath(issue.path), message };
  });
}

export class ConfigError extends GatewayError {
  readonly issues: readonly ConfigIssue[];
  readonly file: string;
  constructor(file: string, issues: readonly ConfigIssue[]) {
    super('GW_ERR_CONFIG_INVALID', {
      message: `invalid configuration in ${file}:\n${issues.map((i) => `  ${i.path || '(document)'}: ${i.message}`).join('\n')}`,
      detail: { file, issues },
    });
    this.issues = issues;
    this.file = file;
  }
}

/** Resolves the config file path from the CLI flag or the environment. */
export function resolveConfigPath(flag: string | undefined, env: NodeJS.ProcessEnv, cwd: string): string | null {
  const chosen = flag ?? env['MTLS_GATEWAY_CONFIG'];
  return chosen ? path.resolve(cwd, chosen) : null;
}

/** Parses and validates config text; `file` is used for messages and to resolve relative paths. */
export function parseConfigText(text: string, file: string): GatewayConfig {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(file, doc.errors.map((e) => ({ path: '', message: `${e.code}: ${e.message.split('\n')[0]}` })));
  }
  const raw: unknown = doc.toJS({ maxAliasCount: 100 });
  const result = configSchema.safeParse(raw ?? {});
  if (!result.success) throw new ConfigError(file, zodIssues(result.error));
  return resolvePaths(result.data, path.dirname(file));
}

export async function loadConfig(file: string): Promise<LoadedConfig> {
  let text: string;
  try {
    // `--config /dev/zero` or a FIFO is refused here instead of growing or hanging the process.
    text = (await readRegularFile(file, { key: 'config file', maxBytes: CONFIG_FILE_MAX_BYTES, code: 'GW_ERR_CONFIG_UNREADABLE' })).toString('utf8');
  } catch (err) {
    // No config key names the config file itself: the message names the file (from --config or
    // MTLS_GATEWAY_CONFIG) and keeps the wording users and scripts already match on.
    throw new GatewayError('GW_ERR_CONFIG_UNREADABLE', {
      message: `cannot read config file ${file}: ${unreadableReason(err)}`,
      detail: { file, reason: unreadableReason(err) },
      cause: err,
    });
  }
  return { config: parseConfigText(text, file), file };
}

const URL_RE = /^https?:\/\//i;

function resolvePaths(cfg: GatewayConfig, baseDir: string): GatewayConfig {
  const abs = (p: string) => path.resolve(baseDir, p);
  const crlSource = (s: CrlSourceConfig): CrlSourceConfig => {
    if (typeof s === 'string') return URL_RE.test(s) ? s : abs(s);
    if ('file' in s) return { file: abs(s.file) };
    if ('dir' in s) return { dir: abs(s.dir) };
    return { ...s, ...(s.cache !== undefined ? { cache: abs(s.cache) } : {}) };
  };
  const upstreams: GatewayConfig['upstreams'] = {};
  for (const [name, u] of Object.entries(cfg.upstreams)) {
    upstreams[name] = {
      ...u,
      tls: {
        ...u.tls,
        cert: abs(u.tls.cert),
        key: abs(u.tls.key),
        ca: abs(u.tls.ca),
        ...(u.tls.crl ? { crl: u.tls.crl.map(crlSource) } : {}),
      },
    };
  }
  const adminTls = cfg.admin.tls;
  return {
    ...cfg,
    ...(adminTls ? { admin: { ...cfg.admin, tls: { cert: abs(adminTls.cert), key: abs(adminTls.key), clientCA: abs(adminTls.clientCA) } } } : {}),
    tls: {
      ...cfg.tls,
      cert: abs(cfg.tls.cert),
      key: abs(cfg.tls.key),
      clientCA: abs(cfg.tls.clientCA),
      sessionTickets: cfg.tls.sessionTickets.keyFile === undefined ? cfg.tls.sessionTickets : { keyFile: abs(cfg.tls.sessionTickets.keyFile) },
      ...(cfg.tls.crl ? { crl: cfg.tls.crl.map(crlSource) } : {}),
    },
    upstreams,
  };
}
