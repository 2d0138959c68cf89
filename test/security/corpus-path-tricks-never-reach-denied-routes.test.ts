// Pins a security decision: no spelling of a request-target lets a client reach a route the policy
// denies, whatever the upstream does with the path afterwards. Every target in
// corpus/path-targets.txt (CVE-derived tricks: dot segments, escaped separators and dots, double
// encoding, ";params", case, trailing dots and blanks, overlong UTF-8, fragments, absolute-form) is
// sent byte for byte to a gateway where /orders/admin admits nobody and /orders admits billing,
// twice: in front of an upstream that routes on the exact path, and in front of one that
// normalizes aggressively (as servlet containers, IIS and lenient routers do) before deciding what
// to serve. Neither upstream may ever read a path under /orders/admin, every path it receives is
// canonical, every answer is a documented one, and a client without a certificate gets 401.
import t from 'tap';
import { judgeExchange } from '../helpers/documented-answer.js';
import { credentialsFor, errorLogs, isValidClient, knownGoodProblem, startFrontDoor, type ClientKind, type UpstreamMode } from '../helpers/front-door-stack.js';
import { makeTestPki } from '../helpers/harness.js';
import { loadPathCorpus, type PathEntry } from '../helpers/path-corpus.js';
import { distinctFaults, guardProcess, mapLimit } from '../helpers/process-guard.js';
import { rawTlsExchange, show } from '../helpers/raw-tls-request.js';

const corpus = loadPathCorpus();
const CONCURRENCY = 6;
const CHUNK = 36;
const TIMEOUT_MS = 4_000;

function requestBytes(target: Buffer, caseId: string): Buffer {
  return Buffer.concat([Buffer.from('GET ', 'latin1'), target, Buffer.from(` HTTP/1.1\r\nHost: localhost\r\nX-Fuzz-Case: ${caseId}\r\n\r\n`, 'latin1')]);
}

/** Checks the per-entry expectation; the generic contract is judged by judgeExchange. */
function expectationProblems(e: PathEntry, verdict: ReturnType<typeof judgeExchange>, ending: string): string[] {
  const finals = verdict.answers.filter((a) => a.kind !== 'interim');
  const first = finals[0];
  const describe = first ? (first.kind === 'gateway' ? `${first.status} ${first.code}` : `${first.status} (${first.kind})`) : `no answer (${ending})`;
  switch (e.expect) {
    case 'any':
      return [];
    case '400':
      return first?.kind === 'gateway' && first.status === 400 ? [] : [`expected a documented 400, got ${describe}`];
    case 'refused':
      if (first === undefined && ending === 'closed') return [];
      return first?.kind === 'gateway' && first.status === 400 ? [] : [`expected a documented 400 or a close, got ${describe}`];
    case 'not-forwarded':
      if (verdict.forwarded) return [`expected no forward, got ${describe}`];
      if (first === undefined && ending !== 'closed') return [`expected an answer or a close, got ${describe}`];
      return [];
    case '403':
      return first?.kind === 'gateway' && first.code === 'GW_ERR_POLICY_DENIED' ? [] : [`expected 403 GW_ERR_POLICY_DENIED, got ${describe}`];
  }
}

t.test('path tricks from the corpus never reach a denied route', async (t) => {
  t.ok(corpus.length >= 200, `the corpus holds ${corpus.length} targets`);
  const guard = guardProcess();
  t.teardown(() => guard.dispose());
  const pki = await makeTestPki();

  const modes: UpstreamMode[] = ['exact', 'aggressive'];
  for (const mode of modes) {
    await t.test(`in front of the ${mode} upstream`, async (t) => {
      const fd = await startFrontDoor(pki, mode);
      t.teardown(() => fd.close());
      if (fd.configProblem) t.fail(`config for the ${mode} upstream: ${fd.configProblem}`);
      // Only the exact run also sends every target without a certificate: the answer must be 401
      // (or a refusal before routing), never a forward, and never a crash (the %ff report).
      const clients: ClientKind[] = mode === 'exact' ? ['billing', 'none'] : ['billing'];
      const jobs = corpus.flatMap((entry, index) => clients.map((client) => ({ entry, index, client })));
      const problemsByCase = new Map<string, string[]>();
      const faultsBefore = () => guard.faults.length;
      for (let start = 0; start < jobs.length; start += CHUNK) {
        const chunk = jobs.slice(start, start + CHUNK);
        const logStart = fd.logs().length;
        const f0 = faultsBefore();
        guard.during(`${mode}: corpus lines ${chunk[0]!.entry.line}-${chunk.at(-1)!.entry.line}`);
        await mapLimit(chunk, CONCURRENCY, async ({ entry, index, client }) => {
          const caseId = `p${index}-${client}`;
          const x = await rawTlsExchange({
            port: fd.port,
            ca: pki.root.certPem,
            ...credentialsFor(pki, client),
            payload: requestBytes(entry.bytes, caseId),
            expectResponses: 1,
            timeoutMs: TIMEOUT_MS,
          });
          const verdict = judgeExchange(x, { validClient: isValidClient(client) });
          const problems = [...verdict.problems];
          if (isValidClient(client)) problems.push(...expectationProblems(entry, verdict, x.ending));
          else if (x.responses.length === 0 && x.ending !== 'closed') problems.push(`no answer and no close for a client without a certificate (${x.ending})`);
          problemsByCase.set(caseId, problems);
        });
        if (guard.faults.length > f0) {
          // A crash: say which targets were in flight, and what the gateway logged.
          t.comment(`process faults during ${chunk.length} requests around corpus lines ${chunk[0]!.entry.line}-${chunk.at(-1)!.entry.line}:\n${errorLogs(fd.logs(), logStart).join('\n')}`);
        }
        const kg = await knownGoodProblem(fd, pki);
        if (kg !== null) t.fail(`after corpus lines up to ${chunk.at(-1)!.entry.line}: ${kg}`);
      }
      // Let late upstream arrivals (a smuggled or delayed forward) land before judging them.
      await new Promise((r) => setTimeout(r, 100));
      for (const hit of fd.hits) {
        if (hit.violations.length === 0) continue;
        const id = hit.caseId ?? 'unattributed';
        problemsByCase.set(id, [...(problemsByCase.get(id) ?? []), ...hit.violations.map((v) => `upstream: ${v}`)]);
      }
      for (const { entry, index, client } of jobs) {
        const problems = problemsByCase.get(`p${index}-${client}`) ?? [];
        t.strictSame(problems, [], `line ${entry.line} ${client === 'none' ? '(no certificate) ' : ''}${show(entry.bytes, 100)} [expect ${entry.expect}]`);
      }
      t.strictSame(problemsByCase.get('unattributed') ?? [], [], 'no request reached the upstream without a case id (nothing smuggled)');
      t.strictSame(fd.upstream.parseErrors, [], "the upstream's HTTP parser accepted everything the gateway sent");
      // Every upstream hit carries the id of a case sent by billing: no other client got through.
      const foreign = fd.hits.filter((h) => h.caseId !== undefined && !h.caseId.endsWith('-billing') && !h.caseId.startsWith('known'));
      t.strictSame(
        foreign.map((h) => `${h.caseId} ${h.url}`),
        [],
        'nothing sent without a valid certificate reached the upstream',
      );
    });
  }
  t.strictSame(
    distinctFaults(guard.faults),
    [],
    'the gateway raised no uncaught exception or unhandled rejection',
  );
});
