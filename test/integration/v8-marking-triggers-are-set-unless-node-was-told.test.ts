// Every gateway process sets V8's incremental-marking triggers at start
// (src/cli/v8-marking-trigger.ts: without them a proxy's heap can sit in back-to-back full
// collections under load, bench/README.md), unless node's own command line sets either of them:
//  - the function: which command lines it leaves alone, in both spellings of a flag's name;
//  - the real `start`: the `listening` record says who set them, and node printed no
//    "unrecognized flag" (a Node whose V8 dropped the flags fails here, not silently in production);
//  - `node --incremental-marking-soft-trigger=N dist/cli/main.js start`: left to the command line.
import t from 'tap';
import { HARD_TRIGGER_PERCENT, setMarkingTriggers, SOFT_TRIGGER_PERCENT } from '../../src/cli/v8-marking-trigger.js';
import { cliGatewayFiles, startCli, waitFor } from '../helpers/cli-process.js';

t.setTimeout(90_000);

t.test('the triggers are set unless the command line names one of them', async (t) => {
  t.same(setMarkingTriggers([]), [`--incremental-marking-soft-trigger=${SOFT_TRIGGER_PERCENT}`, `--incremental-marking-hard-trigger=${HARD_TRIGGER_PERCENT}`]);
  t.same(setMarkingTriggers(['--max-old-space-size=512', '--trace-gc']), [`--incremental-marking-soft-trigger=${SOFT_TRIGGER_PERCENT}`, `--incremental-marking-hard-trigger=${HARD_TRIGGER_PERCENT}`], 'other flags do not count');
  t.same(setMarkingTriggers(['--incremental-marking-soft-trigger=50']), [], 'the soft trigger given');
  t.same(setMarkingTriggers(['--incremental_marking_hard_trigger=90']), [], 'the hard trigger given, with underscores');
  t.same(setMarkingTriggers(['--incremental-marking-soft-trigger']), [], 'a flag without its value is still the operator’s');
  t.ok(SOFT_TRIGGER_PERCENT > 0 && SOFT_TRIGGER_PERCENT < HARD_TRIGGER_PERCENT && HARD_TRIGGER_PERCENT < 100, 'soft below hard, both a share of the limit');
});

for (const [name, nodeArgs, expected] of [
  ['by the gateway', [], 'gateway'],
  ['left to the node command line', ['--incremental-marking-soft-trigger=60'], 'command line'],
] as const) {
  t.test(`a started gateway: the triggers ${name}`, async (t) => {
    const { file } = await cliGatewayFiles(t);
    const gw = startCli(file, { nodeArgs });
    t.teardown(() => {
      if (gw.child.exitCode === null && gw.child.signalCode === null) gw.child.kill('SIGKILL');
    });
    await waitFor('the listening record', () => gw.records.some((r) => r['event'] === 'listening'), 30_000);
    const listening = gw.records.find((r) => r['event'] === 'listening')!;
    t.equal(listening['v8MarkingTriggers'], expected);
    t.notMatch(gw.stderr(), /unrecognized flag/i, 'V8 knows both flags');
    gw.child.kill('SIGTERM');
    const { code } = await gw.exited;
    t.equal(code, 0, 'stops cleanly');
  });
}
