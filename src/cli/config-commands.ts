/**
 * `config check` and `config schema`: validation a user can run in CI before deploying. `check`
 * goes as far as startup would (schema, policy compilation, every certificate, key and CA file)
 * without listening.
 */
import { z } from 'zod';
import { ConfigError, loadConfig, resolveConfigPath } from '../config/load-config.js';
import { configSchema } from '../config/schema.js';
import { isGatewayError } from '../errors/registry.js';
import { checkConfigFiles } from './check-files.js';

export async function runConfigCheck(opts: { configFlag: string | undefined }): Promise<number> {
  const file = resolveConfigPath(opts.configFlag, process.env, process.cwd());
  if (file === null) {
    process.stderr.write('mtls-gateway config check: no config file (pass --config FILE or set MTLS_GATEWAY_CONFIG)\n');
    return 2;
  }
  try {
    const { config } = await loadConfig(file);
    const notes = await checkConfigFiles(config);
    process.stdout.write(`${file}: OK (${config.routes.length} route${config.routes.length === 1 ? '' : 's'}, ${Object.keys(config.upstreams).length} upstream${Object.keys(config.upstreams).length === 1 ? '' : 's'})\n`);
    for (const n of notes) process.stdout.write(`  note: ${n}\n`);
    return 0;
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.file}: invalid configuration\n`);
      for (const i of err.issues) process.stderr.write(`  ${i.path || '(document)'}: ${i.message}\n`);
      return 1;
    }
    if (isGatewayError(err) && err.code === 'GW_ERR_CONFIG_UNREADABLE') {
      // Nothing was validated: the file itself could not be read (missing, a device, a FIFO, too big).
      process.stderr.write(`mtls-gateway config check: ${err.message}\n`);
      return 1;
    }
    if (isGatewayError(err) || (err as { issues?: unknown }).issues) {
      const e = err as { message: string; issues?: { path: string; message: string }[] };
      process.stderr.write(`${file}: invalid configuration\n`);
      if (e.issues) for (const i of e.issues) process.stderr.write(`  ${i.path}: ${i.message}\n`);
      else process.stderr.write(`  ${e.message}\n`);
      return 1;
    }
    throw err;
  }
}

export function configJsonSchema(): unknown {
  return z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' });
}

export async function runConfigSchema(): Promise<number> {
  process.stdout.write(JSON.stringify(configJsonSchema(), null, 2) + '\n');
  return 0;
}
