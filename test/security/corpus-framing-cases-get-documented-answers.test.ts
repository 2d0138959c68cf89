// Pins a security decision: message framing the gateway and an upstream could read differently is
// refused before routing, and nothing hidden in a request's bytes ever reaches the upstream as a
// request of its own. Every case in corpus/framing-cases.json (CL+TE, Transfer-Encoding spellings,
// duplicate and malformed Content-Length, bare LF and CR, obs-fold, invalid characters, HTTP/0.9,
// CONNECT, Expect, chunk-size overflow, header counts and sizes, pipelining, forged identity
// headers) is written raw over TLS, with billing's certificate, to the gateway in front of the
// exact and the aggressively normalizing upstream, and once more without a certificate. Refused
// cases get a documented 400/417/431/501 (or a close), never a forward; allowed ones are forwarded
// with the body the client framed; no request marked X-Smuggled ever arrives upstream.
import t from 'tap';
import { judgeExchange, type Answer } from '../helpers/documented-answer.js';
import { credentialsFor, errorLogs, isValidClient, knownGoodProblem, startFrontDoor, type ClientKind, type UpstreamMode } from '../helpers/front-door-stack.js';
import { framingCorpus, framingPieces, type FramingCase } from '../helpers/framing-corpus.js';
import { makeTestPki } from '../helpers/harness.js';
import { distinctFaults, guardProcess, mapLimit } from '../helpers/process-guard.js';
import { rawTlsExchange, show, type RawExchange } from '../helpers/raw-tls-request.js';

const corpus = framingCorpus;
const CONCURRENCY = 6;
const CHUNK = 30;
const TIMEOUT_MS = 4_000;

function describe(a: Answer | undefined, x: RawExchange): string {
  if (a === undefined) return `no answer (${x.ending})`;
  return a.kind === 'gateway' ? `${a.status} ${a.code}` : `${a.status} (${a.kind})`;
}

function upstreamBodyBytes(x: RawExchange): number | undefined {
  const r = x.responses.find((res) => res.header('x-upstream').includes('yes'));
  if (!r) return undefined;
  try {
    return (JSON.parse(r.body.toString('utf8')) as { bodyBytes?: number }).bodyBytes;
  } catch {
    return undefined;
  }
}

/** The per-case expectation, for a client with a valid certificate. */
function expectationProblems(c: FramingCase, x: RawExchange, answers: Answer[]): string[] {
  const finals = answers.filter((a) => a.kind !== 'interim');
  const first = finals[0];
  const p: string[] = [];
  const upstreamAnswers = finals.filter((a) => a.kind === 'upstream');
  switch (c.expect) {
    case 'forwarded-allowed': {
      const want = c.statuses ?? Array.from({ length: c.responses ?? 1 }, () => 200);
      const got = finals.map((a) => a.status);
      if (got.join() !== want.join()) p.push(`expected statuses [${want.join(', ')}], got [${got.join(', ')}] (${describe(first, x)})`);
      finals.forEach((a, i) => {
        if (want[i] === 200 && a.kind !== 'upstream') p.push(`answer ${i + 1} should come from the upstream, got ${describe(a, x)}`);
      });
      if (c.bodyBytes !== undefined) {
        const n = upstreamBodyBytes(x);
        if (n !== c.bodyBytes) p.push(`the upstream counted ${n ?? 'no'} body bytes, the client framed ${c.bodyBytes}`);
      }
      break;
    }
    case 'refused-4xx':
      if (upstreamAnswers.length > 0) p.push(`a refused case was forwarded (${describe(upstreamAnswers[0], x)})`);
      if (first?.kind !== 'gateway' || !(c.status ?? [400]).includes(first.status)) p.push(`expected a documented ${(c.status ?? [400]).join('/')}, got ${describe(first, x)}`);
      break;
    case 'closed':
      if (upstreamAnswers.length > 0) p.push(`was forwarded (${describe(upstreamAnswers[0], x)}); expected a refusal or a close`);
      else if (first === undefined && x.ending !== 'closed') p.push(`neither answered nor closed within ${TIMEOUT_MS} ms`);
      else if (first !== undefined && (first.kind !== 'gateway' || !(c.status ?? [400]).includes(first.status))) p.push(`expected a close or a documented ${(c.status ?? [400]).join('/')}, got ${describe(first, x)}`);
      break;
    case 'no-smuggle':
      if (first === undefined && x.ending === 'timeout') p.push(`neither answered nor closed within ${TIMEOUT_MS} ms`);
      break;
    case 'incomplete-head':
      // The head never ends: nothing may be forwarded, and the answer (408 at server.headersTimeout)
      // comes after this test's timeout.
      if (upstreamAnswers.length > 0) p.push(`an incomplete head was forwarded (${describe(upstreamAnswers[0], x)})`);
      if (first !== undefined && (first.kind !== 'gateway' || ![400, 408].includes(first.status))) p.push(`expected no answer yet, or a documented 400/408, got ${describe(first, x)}`);
      break;
  }
  if (c.closes === true && x.ending !== 'closed') p.push(`the connection should close after ${c.expect === 'refused-4xx' ? 'the refusal' : 'the answer'}, it stayed open (${x.ending})`);
  return p;
}

t.test('framing cases from the corpus get documented answers and smuggle nothing', async (t) => {
  t.ok(corpus.length >= 100, `the corpus holds ${corpus.length} framing cases`);
  const guard = guardProcess();
  t.teardown(() => guard.dispose());
  const pki = await makeTestPki();

  // Both HTTP/1.1 upstream clients forward what the corpus lets through: undici's Pool (the
  // default engine) and the gateway's own (server.engine: lean), which writes request heads itself.
  const runs: Array<{ mode: UpstreamMode; engine: 'node' | 'lean' }> = [
    { mode: 'exact', engine: 'node' },
    { mode: 'aggressive', engine: 'node' },
    { mode: 'exact', engine: 'lean' },
  ];
  for (const { mode, engine } of runs) {
    await t.test(`in front of the ${mode} upstream${engine === 'lean' ? ', server.engine: lean' : ''}`, async (t) => {
      const fd = await startFrontDoor(pki, mode, engine === 'lean' ? { serverYaml: 'server:\n  engine: lean\n' } : {});
      t.teardown(() => fd.close());
      if (fd.configProblem) t.fail(`config for the ${mode} upstream: ${fd.configProblem}`);
      // A client without a certificate never reaches the upstream client: once is enough.
      const clients: ClientKind[] = mode === 'exact' && engine === 'node' ? ['billing', 'none'] : ['billing'];
      const jobs = corpus.flatMap((c, index) => clients.map((client) => ({ c, index, client })));
      const problemsByCase = new Map<string, string[]>();
      for (let start = 0; start < jobs.length; start += CHUNK) {
        const chunk = jobs.slice(start, start + CHUNK);
        const logStart = fd.logs().length;
        const f0 = guard.faults.length;
        guard.during(`${mode}: framing cases ${chunk.map((j) => j.c.id).join(', ')}`);
        await mapLimit(chunk, CONCURRENCY, async ({ c, index, client }) => {
          const valid = isValidClient(client);
          // A refusal that must close: wait for the close. Otherwise stop after the answers wanted.
          const waitForClose = c.closes === true || (!valid && c.expect !== 'forwarded-allowed');
          const x = await rawTlsExchange({
            port: fd.port,
            ca: pki.root.certPem,
            ...credentialsFor(pki, client),
            payload: framingPieces(c),
            ...(c.pieceDelayMs !== undefined ? { pieceDelayMs: c.pieceDelayMs } : {}),
            ...(c.methods ? { requestMethods: c.methods } : {}),
            ...(waitForClose ? {} : { expectResponses: valid && c.expect === 'forwarded-allowed' ? (c.statuses?.length ?? c.responses ?? 1) : 1 }),
            timeoutMs: TIMEOUT_MS,
          });
          const verdict = judgeExchange(x, { validClient: valid });
          const problems = [...verdict.problems];
          if (valid) problems.push(...expectationProblems(c, x, verdict.answers));
          else if (x.responses.length === 0 && x.ending === 'timeout' && c.expect !== 'incomplete-head') problems.push(`no answer and no close for a client without a certificate within ${TIMEOUT_MS} ms`);
          problemsByCase.set(`${c.id}/${client}`, problems);
        });
        if (guard.faults.length > f0) {
          t.comment(`process faults during framing cases ${chunk.map((j) => j.c.id).join(', ')}:\n${errorLogs(fd.logs(), logStart).join('\n')}`);
        }
        const kg = await knownGoodProblem(fd, pki);
        if (kg !== null) t.fail(`after framing case ${chunk.at(-1)!.c.id}: ${kg}`);
      }
      await new Promise((r) => setTimeout(r, 100));
      // Each violation the upstream saw (smuggled request, denied path, an XFCC that is not
      // billing's, forged identity header, non-canonical path, bytes its parser refused) fails.
      const violations = fd.violations();
      for (const { c, client } of jobs) {
        const problems = problemsByCase.get(`${c.id}/${client}`) ?? [];
        t.strictSame(problems, [], `${c.id}${client === 'none' ? ' (no certificate)' : ''} [${c.expect}${c.status ? ' ' + c.status.join('/') : ''}] ${show(framingPieces(c)[0]!, 90)} -- ${c.source}`);
      }
      t.strictSame(violations, [], 'every request the upstream received keeps the invariants (nothing smuggled, nothing denied, no forged identity)');
    });
  }
  t.strictSame(
    distinctFaults(guard.faults),
    [],
    'the gateway raised no uncaught exception or unhandled rejection',
  );
});
