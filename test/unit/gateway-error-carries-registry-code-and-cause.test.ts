/**
 * GatewayError and isGatewayError: an error the gateway raises on purpose carries a registry code,
 * the registry's status and message (or a message of its own), its cause only when one was given,
 * and structured detail for the log. isGatewayError is what code branches on, so it must not be
 * fooled by look-alikes: an error with some other `code`, or a registry code on another error type.
 */
import t from 'tap';
import { ERRORS, GatewayError, isGatewayError } from '../../src/errors/registry.js';

t.test('code, status, message, detail and cause', async (t) => {
  const plain = new GatewayError('GW_ERR_POLICY_DENIED');
  t.equal(plain.code, 'GW_ERR_POLICY_DENIED');
  t.equal(plain.status, 403);
  t.equal(plain.message, ERRORS.GW_ERR_POLICY_DENIED.message);
  t.equal(plain.name, 'GatewayError');
  t.equal(plain.detail, undefined);
  t.notOk('cause' in plain, 'no cause property when none was given');
  t.ok(plain instanceof Error);

  const root = new Error('EACCES');
  const full = new GatewayError('GW_ERR_CONFIG_UNREADABLE', { message: 'config.yaml: permission denied', detail: { file: 'config.yaml' }, cause: root });
  t.equal(full.message, 'config.yaml: permission denied', 'an explicit message replaces the registry one');
  t.equal(full.status, null, 'codes that never reach a client have no status');
  t.same(full.detail, { file: 'config.yaml' });
  t.equal(full.cause, root);
});

t.test('isGatewayError recognises only real gateway errors', async (t) => {
  t.ok(isGatewayError(new GatewayError('GW_ERR_INTERNAL')));
  const lookAlikes: [unknown, string][] = [
    [Object.assign(new Error('x'), { code: 'GW_ERR_INTERNAL' }), 'a registry code on a plain Error'],
    [Object.assign(new Error('x'), { code: 'ENOENT', name: 'GatewayError' }), 'a code not in the registry'],
    [Object.assign(new Error('x'), { code: 'toString', name: 'GatewayError' }), 'an Object.prototype key as the code'],
    [Object.assign(new Error('x'), { code: 7, name: 'GatewayError' }), 'a non-string code'],
    [{ name: 'GatewayError' }, 'no code at all'],
    [null, 'null'],
    [undefined, 'undefined'],
    ['GW_ERR_INTERNAL', 'a string'],
  ];
  for (const [value, why] of lookAlikes) t.notOk(isGatewayError(value), why);
});
