/**
 * The issues a config text is refused with (key path and message), or none when it is accepted:
 * what the config tests assert on.
 */
import { ConfigError, parseConfigText } from '../../src/config/load-config.js';

export function configIssuesOf(text: string, file = '/etc/gw/gateway.yaml'): Array<{ path: string; message: string }> {
  try {
    parseConfigText(text, file);
  } catch (err) {
    if (err instanceof ConfigError) return [...err.issues];
    throw err;
  }
  return [];
}
