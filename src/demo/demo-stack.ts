/**
 * The demo stack without any printing: one demo mTLS service per upstream of a config, and the
 * gateway built from that config in this process. Ports come from the config unless overridden
 * (0 = any free port); the config file itself is never rewritten: overrides are applied to the
 * parsed YAML before validation, and relative paths still resolve next to the file.
 */
import type { AddressInfo } from 'node:net';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { parseDocument } from 'yaml';
import { parseConfigText } from '../config/load-config.js';
import type { GatewayConfig } from '../config/schema.js';
import { buildGateway, type Gateway } from '../http/build-gateway.js';
import { startDemoUpstream, type DemoUpstream } from './demo-upstream.js';

export interface DemoStackOptions {
  readonly configFile: string;
  readonly logger: Logger;
  /** Listen port for the gateway instead of listen.port. */
  readonly gatewayPort?: number | null;
  /** Per upstream name: the port of its demo service instead of the one in its URL. */
  readonly upstreamPorts?: Readonly<Record<string, number | null | undefined>>;
}

export interface DemoStack {
  readonly config: GatewayConfig;
  /** Directory of tls.clientCA: where the demo expects the whole dev PKI. */
  readonly certsDir: string;
  readonly upstreams: readonly DemoUpstream[];
  readonly gateway: Gateway;
  readonly address: AddressInfo;
  /** True when a port differs from the config file. */
  readonly overridden: boolean;
  close(): Promise<void>;
}

export class DemoStackError extends Error {
  constructor(
    message: string,
    readonly hint: string | null,
  ) {
    super(hint === null ? message : `${message} (${hint})`);
  }
}

export function upstreamPortEnvName(upstream: string): string {
  return `DEMO_${upstream.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_PORT`;
}

/** The config as written, for finding the certificate directory and upstream names. */
export async function readDemoConfig(configFile: string): Promise<{ text: string; config: GatewayConfig; certsDir: string }> {
  const text = await readFile(configFile, 'utf8');
  const config = parseConfigText(text, configFile);
  return { text, config, certsDir: path.dirname(config.tls.clientCA) };
}

export async function startDemoStack(opts: DemoStackOptions): Promise<DemoStack> {
  const { text, config, certsDir } = await readDemoConfig(opts.configFile);
  const doc = parseDocument(text);
  let overridden = false;
  const upstreams: DemoUpstream[] = [];
  let gateway: Gateway | null = null;
  const close = async () => {
    if (gateway) await gateway.close().catch(() => undefined);
    await Promise.all(upstreams.map((u) => u.close().catch(() => undefined)));
  };
  try {
    for (const [name, u] of Object.entries(config.upstreams)) {
      if (u.url === undefined) throw new DemoStackError(`the demo starts one service per upstream: upstreams.${name} needs a url (not targets or discovery)`, null);
      const url = new URL(u.url);
      const configured = Number(url.port || 443);
      const port = opts.upstreamPorts?.[name] ?? configured;
      const host = url.hostname.replace(/^\[|\]$/g, '');
      try {
        upstreams.push(await startDemoUpstream({ name, certsDir, host, port }));
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        throw new DemoStackError(
          `cannot start the "${name}" demo service on ${host}:${port}: ${code ?? (err as Error).message}`,
          code === 'EADDRINUSE' ? `set ${upstreamPortEnvName(name)}=0 to pick a free port` : null,
        );
      }
      const actual = upstreams[upstreams.length - 1]!.port;
      if (actual !== configured) {
        url.port = String(actual);
        doc.setIn(['upstreams', name, 'url'], url.origin);
        overridden = true;
      }
    }
    if (opts.gatewayPort !== undefined && opts.gatewayPort !== null && opts.gatewayPort !== config.listen.port) {
      doc.setIn(['listen', 'port'], opts.gatewayPort);
      overridden = true;
    }
    const effective = parseConfigText(String(doc), opts.configFile);
    gateway = await buildGateway({ config: effective, logger: opts.logger });
    let address: AddressInfo;
    try {
      address = await gateway.listen();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new DemoStackError(
        `the gateway cannot listen on ${effective.listen.host}:${effective.listen.port}: ${code ?? (err as Error).message}`,
        code === 'EADDRINUSE' ? 'set DEMO_GATEWAY_PORT=0 to pick a free port' : null,
      );
    }
    return { config: effective, certsDir, upstreams, gateway, address, overridden, close };
  } catch (err) {
    await close();
    throw err;
  }
}
