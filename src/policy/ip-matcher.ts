/**
 * IP selectors: owns parsing an address or CIDR from the config and matching it against IP SANs.
 * Matching goes through node:net BlockList, which compares addresses rather than spellings
 * (fd00::1 = FD00:0::1, and an IPv4 rule also covers the IPv4-mapped IPv6 form).
 */
import { BlockList, isIP } from 'node:net';
import { PatternError, type ValueMatcher } from './glob.js';

function ipv4Bytes(text: string): number[] {
  return text.split('.').map(Number);
}

// Only called on text isIP() accepted, so the grammar is already known to be valid.
function ipv6Bytes(text: string): number[] {
  let head = text;
  let tailV4: number[] = [];
  const lastColon = head.lastIndexOf(':');
  if (head.slice(lastColon + 1).includes('.')) {
    tailV4 = ipv4Bytes(head.slice(lastColon + 1));
    head = head.slice(0, lastColon + 1) + '0:0';
  }
  const [left = '', right] = head.split('::');
  const groups = (part: string): number[] => (part === '' ? [] : part.split(':').map((g) => parseInt(g, 16)));
  const l = groups(left);
  const r = right === undefined ? [] : groups(right);
  const words = [...l, ...new Array<number>(8 - l.length - r.length).fill(0), ...r];
  const bytes = words.flatMap((w) => [w >> 8, w & 0xff]);
  if (tailV4.length === 4) bytes.splice(12, 4, ...tailV4);
  return bytes;
}

function hostBitsSet(bytes: readonly number[], prefix: number): boolean {
  for (let bit = prefix; bit < bytes.length * 8; bit++) {
    if (((bytes[bit >> 3] ?? 0) >> (7 - (bit & 7))) & 1) return true;
  }
  return false;
}

export function compileIpPattern(pattern: string): ValueMatcher {
  if (pattern.includes('%')) throw new PatternError('zone IDs ("%eth0") are not allowed in an IP selector');
  const parts = pattern.split('/');
  if (parts.length > 2) throw new PatternError('not an IP address or CIDR (e.g. 10.0.0.0/8, fd00::/8)');
  const [address = '', prefixText] = parts;
  const family = isIP(address);
  if (family === 0) throw new PatternError(`"${address}" is not an IP address (e.g. 10.1.2.3, fd00::1)`);
  const type = family === 4 ? 'ipv4' : 'ipv6';
  const list = new BlockList();
  if (prefixText === undefined) {
    list.addAddress(address, type);
  } else {
    const max = family === 4 ? 32 : 128;
    if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > max) {
      throw new PatternError(`the prefix length must be 0-${max}`);
    }
    const prefix = Number(prefixText);
    // "10.1.2.3/8" is more likely a typo than a wish for 10.0.0.0/8; make the author say which.
    if (hostBitsSet(family === 4 ? ipv4Bytes(address) : ipv6Bytes(address), prefix)) {
      throw new PatternError(`"${pattern}" has host bits set: write the network address, or /${max} for one address`);
    }
    list.addSubnet(address, prefix, type);
  }
  return {
    test: (value) => {
      const f = isIP(value);
      return f !== 0 && list.check(value, f === 4 ? 'ipv4' : 'ipv6');
    },
  };
}
