// The node floor (floor-proxy.mjs) with SPIN_FLOOR_US microseconds of busy-waiting added to every
// request, before its own handler runs: a known amount of added JavaScript per request, to see how
// much CPU per request it costs on this machine (`gateway-variants.mjs --spin-floor US`). Started as
// `node spin-floor.mjs FLOOR_SCRIPT ARGS...`: the script is taken off argv, so that it reads its
// own arguments where it always does.
import { syncBuiltinESMExports } from 'node:module';
import https from 'node:https';
import { pathToFileURL } from 'node:url';

const spinMs = Number(process.env.SPIN_FLOOR_US ?? 0) / 1000;
const original = https.createServer;
https.createServer = (options, listener) =>
  original(options, (req, res) => {
    const until = performance.now() + spinMs;
    while (performance.now() < until);
    listener(req, res);
  });
syncBuiltinESMExports();
const [script] = process.argv.splice(2, 1);
await import(pathToFileURL(script).href);
