/**
 * Path rewrite: owns turning the normalized path a route matched into the path its upstream
 * receives (`rewrite.prefix`), and which rewrite prefixes are acceptable. It runs after the policy
 * decision, so whatever it produces is a path nobody judged: the prefix is held to plain segments
 * and the join is built so that it cannot make a "//" or a dot segment the request did not have.
 */

import { rewritePrefixProblem } from '../config/rewrite-prefix.js';

export type PathRewrite = (path: string) => string;

/**
 * `match` is the route's match: exactly one of path or pathPrefix set. `prefix` is the configured
 * rewrite.prefix. Throws when either is unusable; the config schema refuses both first, so this is
 * the second line, at load time.
 */
export function compileRewrite(
  match: { readonly path?: string | undefined; readonly pathPrefix?: string | undefined },
  prefix: string,
): PathRewrite {
  const problem = rewritePrefixProblem(prefix);
  if (problem !== null) throw new Error(`rewrite.prefix ${JSON.stringify(prefix)} ${problem}`);
  if ((match.path === undefined) === (match.pathPrefix === undefined)) {
    throw new Error('a rewrite needs a match with exactly one of "path" or "pathPrefix"');
  }
  if (match.path !== undefined) return () => prefix;

  // The route's prefix match is segment-bounded ("/orders" matches "/orders" and "/orders/42",
  // never "/ordersX"), so the matched part is the first base.length characters, whatever case the
  // request used when the route folds case; what follows is "" or starts with "/".
  const pathPrefix = match.pathPrefix!;
  const baseLength = pathPrefix.endsWith('/') ? pathPrefix.length - 1 : pathPrefix.length;
  const rewriteBase = prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
  return (path) => {
    // Under pathPrefix "/" the base is "", and the "/" of the root path is not a trailing slash but
    // the one every path must start with; so the root maps to the rewrite's root, as "/orders"
    // maps to "/v1/orders" (and "/" to "/api", as Envoy's prefix_rewrite does).
    const rest = baseLength === 0 && path === '/' ? '' : path.slice(baseLength);
    // Only reachable if called with a path the route did not match; a wrong guess here would send
    // the upstream a path the policy never judged, so refuse instead.
    if (rest !== '' && (rest.charCodeAt(0) !== 0x2f || rest.charCodeAt(1) === 0x2f)) {
      throw new Error(`path ${JSON.stringify(path)} does not extend the route's pathPrefix at a "/"`);
    }
    const out = rewriteBase + rest;
    return out === '' ? '/' : out;
  };
}
