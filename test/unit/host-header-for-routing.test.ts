/**
 * Host header to routing host: lower-cased, port and FQDN dot dropped, IPv6 literals kept in
 * brackets; anything malformed is undefined (the data plane answers 400), an absent header null.
 * Security: route matching on `host` trusts this function to refuse what it cannot read, so a
 * spelling it would misread must come back undefined, never as some other host.
 */
import t from 'tap';
import { hostForRouting } from '../../src/request/host-header.js';

t.test('absent header is null (HTTP/1.0 may omit it)', async (t) => {
  t.equal(hostForRouting(undefined), null);
});

t.test('accepted spellings and the host they route as', async (t) => {
  const rows: [string, string][] = [
    ['api.example.com', 'api.example.com'],
    ['API.Example.COM', 'api.example.com'],
    ['  api.example.com\t', 'api.example.com'],
    ['api.example.com:8443', 'api.example.com'],
    ['api.example.com:0', 'api.example.com'],
    ['api.example.com:65535', 'api.example.com'],
    ['api.example.com.', 'api.example.com'],
    ['api.example.com.:443', 'api.example.com'],
    ['localhost', 'localhost'],
    ['127.0.0.1', '127.0.0.1'],
    ['127.0.0.1:8443', '127.0.0.1'],
    ['[::1]', '[::1]'],
    ['[FD00::1]:443', '[fd00::1]'],
    ['[::ffff:10.0.0.1]', '[::ffff:10.0.0.1]'],
    ['a'.repeat(253), 'a'.repeat(253)],
  ];
  for (const [header, host] of rows) t.equal(hostForRouting(header), host, JSON.stringify(header));
});

t.test('malformed headers are refused, not guessed at', async (t) => {
  const rows: [string, string][] = [
    ['', 'empty'],
    ['   ', 'blank'],
    ['.', 'only the FQDN dot'],
    ['api.example.com:', 'empty port'],
    ['api.example.com:65536', 'port above 65535'],
    ['api.example.com:123456', 'port of six digits'],
    ['api.example.com:+443', 'signed port'],
    ['api.example.com:0x1bb', 'hex port'],
    ['api.example.com: 443', 'blank inside the authority'],
    ['api.example.com:443:443', 'two ports'],
    ['user@api.example.com', 'userinfo'],
    ['api.example.com/admin', 'a path'],
    ['api example.com', 'a space'],
    ['api_example.com', 'an underscore'],
    ['a'.repeat(254), 'longer than 253'],
    ['[::1', 'unclosed bracket'],
    ['[::1]x', 'text after the bracket'],
    ['[::1]:', 'empty port after a literal'],
    ['[::1]:70000', 'port above 65535 after a literal'],
    ['[::1]]', 'second bracket'],
    ['[example.com]', 'a name in brackets'],
    ['[]', 'empty brackets'],
  ];
  for (const [header, why] of rows) t.equal(hostForRouting(header), undefined, `${JSON.stringify(header)}: ${why}`);
});
