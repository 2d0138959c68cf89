/**
 * Retry budget (RetryBudget): retries in flight are held below max(minRetryConcurrency,
 * floor(active x percent / 100)), as in Envoy, so retries cannot multiply the load of an upstream
 * that is already failing; extra end calls never push a counter below zero.
 */
import t from 'tap';
import { RetryBudget } from '../../src/proxy/retry-budget.js';

function startRetries(budget: RetryBudget, n: number): boolean[] {
  return Array.from({ length: n }, () => budget.tryStartRetry());
}

t.test('with no outstanding requests, the minimum of 3 retries is allowed at once', async (t) => {
  const budget = new RetryBudget(20);
  t.same(startRetries(budget, 4), [true, true, true, false], 'the 4th is refused');
  t.equal(budget.retriesActive, 3, 'a refused retry is not counted');
  t.equal(budget.active, 0);
});

t.test('the budget grows with outstanding requests: 100 active at 20% allow 20', async (t) => {
  const budget = new RetryBudget(20);
  for (let i = 0; i < 100; i++) budget.requestStarted();
  t.equal(budget.active, 100);
  const started = startRetries(budget, 25);
  t.equal(started.filter(Boolean).length, 20);
  t.same(started.slice(19, 21), [true, false], 'the 21st is the first refused');
  t.equal(budget.retriesActive, 20);

  // floor: 104 x 20% = 20.8 is still 20.
  for (let i = 0; i < 4; i++) budget.requestStarted();
  t.notOk(budget.tryStartRetry(), '20.8 rounds down');
  budget.requestStarted();
  t.ok(budget.tryStartRetry(), '105 x 20% = 21');
});

t.test('the minimum holds while the percentage would allow fewer', async (t) => {
  const budget = new RetryBudget(20);
  for (let i = 0; i < 10; i++) budget.requestStarted(); // 10 x 20% = 2 < 3
  t.same(startRetries(budget, 4), [true, true, true, false]);

  const none = new RetryBudget(0);
  for (let i = 0; i < 1000; i++) none.requestStarted();
  t.same(startRetries(none, 4), [true, true, true, false], '0% still allows the minimum');

  const strict = new RetryBudget(0, 0);
  t.notOk(strict.tryStartRetry(), 'a minimum of 0 at 0% allows no retry at all');

  const custom = new RetryBudget(50, 1);
  t.same(startRetries(custom, 2), [true, false], 'a custom minimum of 1');
});

t.test('ending a retry frees its slot', async (t) => {
  const budget = new RetryBudget(20);
  startRetries(budget, 3);
  t.notOk(budget.tryStartRetry());
  budget.retryEnded();
  t.equal(budget.retriesActive, 2);
  t.ok(budget.tryStartRetry(), 'the freed slot is usable');
  t.notOk(budget.tryStartRetry());
});

t.test('the budget shrinks when outstanding requests end', async (t) => {
  const budget = new RetryBudget(50);
  for (let i = 0; i < 10; i++) budget.requestStarted();
  t.same(startRetries(budget, 5), [true, true, true, true, true]);
  for (let i = 0; i < 6; i++) budget.requestEnded(); // 4 x 50% = 2 < 3
  t.equal(budget.active, 4);
  budget.retryEnded();
  t.equal(budget.retriesActive, 4);
  t.notOk(budget.tryStartRetry(), 'still 4 in flight against a budget of 3');
  budget.retryEnded();
  budget.retryEnded();
  t.ok(budget.tryStartRetry(), 'below the budget again');
});

t.test('counters never go negative: extra end calls at 0 are ignored', async (t) => {
  const budget = new RetryBudget(20);
  budget.requestEnded();
  budget.retryEnded();
  t.equal(budget.active, 0);
  t.equal(budget.retriesActive, 0);

  budget.requestStarted();
  budget.requestEnded();
  budget.requestEnded();
  t.ok(budget.tryStartRetry());
  budget.retryEnded();
  budget.retryEnded();
  budget.retryEnded();
  t.equal(budget.active, 0);
  t.equal(budget.retriesActive, 0);
  t.same(startRetries(budget, 4), [true, true, true, false], 'the budget is exactly as before: no credit from extra ends');
});
