/**
 * The settings of one upstream target's client (undici Pool, the gateway's HTTP/1.1 client, or its
 * HTTP/2 session) for tests that drive a client directly: the test PKI's gateway client
 * certificate, trust in its CA bundle, the upstream name orders.internal, generous timeouts.
 */
import tls from 'node:tls';
import type { TargetPoolSettings } from '../../src/proxy/upstream-target.js';
import type { TestPki } from './harness.js';

export function targetSettings(pki: TestPki, over: Partial<TargetPoolSettings> & Pick<TargetPoolSettings, 'protocol'>): TargetPoolSettings {
  return {
    secureContext: tls.createSecureContext({ cert: pki.gatewayClient.chainPem, key: pki.gatewayClient.keyPem, ca: pki.caBundlePem }),
    servername: 'orders.internal',
    checkServerIdentity: tls.checkServerIdentity,
    connections: 1,
    connectTimeout: 5_000,
    responseTimeout: 10_000,
    idleTimeout: 10_000,
    keepAlive: 10_000,
    ...over,
  };
}
