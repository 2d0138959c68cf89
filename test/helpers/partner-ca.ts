/**
 * A second client CA (a partner's root) that a test adds to tls.clientCA and later removes, with a
 * client certificate it issued (the billing SPIFFE ID, so the default routes admit it). The config
 * is written through `yaml(crlYaml)`, so each test keeps its own routes; the test reloads itself.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createCrl, createRootCa, issueLeaf, type Issued } from '../../src/pki/dev-pki.js';
import type { TestPki } from './harness.js';

const BASE_CRLS = '  crl: [./root.crl.pem, ./intermediate.crl.pem]';

/** Writes the bundle with the partner root and its CRL in tls.crl; returns the partner's client. */
export async function addPartnerCa(dir: string, pki: TestPki, yaml: (crlYaml: string) => string): Promise<Issued> {
  const partnerRoot = await createRootCa({ name: 'partner-root', subject: { CN: 'Partner Root CA', O: 'Partner' } });
  const partner = await issueLeaf(partnerRoot, { name: 'partner', subject: { CN: 'partner' }, uris: ['spiffe://example.org/ns/default/sa/billing'], usage: 'client' });
  await writeFile(path.join(dir, 'partner.crl.pem'), (await createCrl(partnerRoot)).pem);
  await writeFile(path.join(dir, 'ca-bundle.pem'), pki.caBundlePem + partnerRoot.certPem);
  await writeFile(path.join(dir, 'gateway.yaml'), yaml(`${BASE_CRLS.slice(0, -1)}, ./partner.crl.pem]`));
  return partner;
}

/**
 * The partner root leaves the bundle, and its CRL leaves tls.crl (a CRL whose issuer is not
 * trusted is refused, at startup and on reload alike).
 */
export async function removePartnerCa(dir: string, pki: TestPki, yaml: (crlYaml: string) => string): Promise<void> {
  await writeFile(path.join(dir, 'ca-bundle.pem'), pki.caBundlePem);
  await writeFile(path.join(dir, 'gateway.yaml'), yaml(BASE_CRLS));
}
