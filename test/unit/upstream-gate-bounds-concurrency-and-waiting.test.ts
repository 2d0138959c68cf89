/**
 * Upstream admission (UpstreamGate): at most `capacity` requests at once, the rest wait in arrival
 * order for at most `waitMs`, a waiter that leaves gives its place up, and releasing twice frees
 * one slot only. Security: this bound is what keeps a few stalled uploads from making every other
 * client of an upstream wait for ever (test/security/stalled-uploads-cannot-starve-other-clients).
 */
import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { UpstreamGate, type Release } from '../../src/proxy/upstream-gate.js';

const never = (): void => {
  throw new Error('timed out, but should not have');
};

t.test('grants synchronously while a slot is free, then queues', async (t) => {
  const gate = new UpstreamGate(2, 10_000);
  const granted: Release[] = [];
  gate.acquire((r) => granted.push(r), never);
  gate.acquire((r) => granted.push(r), never);
  t.equal(granted.length, 2, 'both slots granted before acquire returned');
  t.equal(gate.active, 2);
  t.equal(gate.waiting, 0);

  let third: Release | null = null;
  gate.acquire((r) => (third = r), never);
  t.equal(third, null, 'a third request waits');
  t.equal(gate.waiting, 1);

  granted[0]!();
  t.type(third, 'function', 'the release handed the slot to the waiter at once');
  t.equal(gate.active, 2);
  t.equal(gate.waiting, 0);
  granted[1]!();
  third!();
  t.equal(gate.active, 0);
});

t.test('waiters are served in arrival order, also after the queue is compacted', async (t) => {
  // More than 1024 waiters served while others still wait makes the gate drop the served head of
  // its queue; the order must survive that.
  const gate = new UpstreamGate(1, 60_000);
  const order: number[] = [];
  const releases: Release[] = [];
  gate.acquire((r) => releases.push(r), never);
  const n = 1500;
  for (let i = 0; i < n; i++) {
    gate.acquire((r) => {
      order.push(i);
      releases.push(r);
    }, never);
  }
  t.equal(gate.waiting, n);
  for (let i = 0; i <= n; i++) releases[i]!();
  t.equal(order.length, n, 'every waiter was granted');
  t.same(order, Array.from({ length: n }, (_, i) => i), 'in arrival order');
  t.equal(gate.active, 0);
  t.equal(gate.waiting, 0);

  // The emptied gate behaves like a new one.
  let again = false;
  gate.acquire(() => (again = true), never);
  t.ok(again, 'granted synchronously once the queue drained');
});

t.test('a request made from inside a grant queues behind the waiters already there', async (t) => {
  // A release hands the slot to the first waiter synchronously, inside release(); a request that
  // the grantee starts right away must still go to the back of the queue.
  const gate = new UpstreamGate(1, 10_000);
  const order: string[] = [];
  let first: Release | null = null;
  gate.acquire((r) => (first = r), never);
  let secondRelease: Release | null = null;
  gate.acquire((r) => {
    order.push('second');
    secondRelease = r;
    // Arrives while 'third' is still waiting.
    gate.acquire((r2) => {
      order.push('late');
      r2();
    }, never);
  }, never);
  gate.acquire((r) => {
    order.push('third');
    r();
  }, never);
  first!();
  t.same(order, ['second'], 'only the first waiter got the slot');
  secondRelease!();
  t.same(order, ['second', 'third', 'late'], 'the late request was served after the earlier waiter');
  t.equal(gate.active, 0);
  t.equal(gate.waiting, 0);
});

t.test('a waiter that is not granted within waitMs times out and never gets a slot', async (t) => {
  const gate = new UpstreamGate(1, 30);
  let release: Release | null = null;
  gate.acquire((r) => (release = r), never);
  let timedOut = 0;
  let lateGrant = false;
  gate.acquire(() => (lateGrant = true), () => timedOut++);
  t.equal(gate.waiting, 1);
  await sleep(120);
  t.equal(timedOut, 1, 'timed out once');
  t.equal(gate.waiting, 0);
  release!();
  t.notOk(lateGrant, 'the freed slot did not go to the waiter that already gave up');
  t.equal(gate.active, 0);
});

t.test('cancel removes a waiter: no grant, no timeout, and cancelling again changes nothing', async (t) => {
  const gate = new UpstreamGate(1, 30);
  let release: Release | null = null;
  const cancelHeld = gate.acquire((r) => (release = r), never);
  let granted = false;
  let timedOut = false;
  const cancel = gate.acquire(() => (granted = true), () => (timedOut = true));
  t.equal(gate.waiting, 1);
  cancel();
  t.equal(gate.waiting, 0);
  cancel();
  t.equal(gate.waiting, 0, 'a second cancel is a no-op');
  await sleep(80);
  t.notOk(timedOut, 'its timer was cleared');
  release!();
  t.notOk(granted, 'a cancelled waiter is skipped');
  cancelHeld();
  t.equal(gate.active, 0, 'cancelling a request that was granted at once does not free its slot twice');
});

t.test('cancelling after the grant or after the timeout changes nothing', async (t) => {
  const gate = new UpstreamGate(1, 20);
  let first: Release | null = null;
  gate.acquire((r) => (first = r), never);
  let second: Release | null = null;
  const cancelGranted = gate.acquire((r) => (second = r), never);
  first!();
  t.type(second, 'function');
  cancelGranted();
  t.equal(gate.active, 1, 'the granted request still holds its slot');

  let timedOut = false;
  const cancelTimedOut = gate.acquire(never, () => (timedOut = true));
  await sleep(80);
  t.ok(timedOut);
  cancelTimedOut();
  t.equal(gate.waiting, 0, 'not counted twice');
  second!();
  t.equal(gate.active, 0);
});

t.test('a release function frees its slot once, however often it is called', async (t) => {
  const gate = new UpstreamGate(1, 10_000);
  let release: Release | null = null;
  gate.acquire((r) => (release = r), never);
  release!();
  release!();
  t.equal(gate.active, 0, 'not -1');
  let a: Release | null = null;
  let b: Release | null = null;
  gate.acquire((r) => (a = r), never);
  gate.acquire((r) => (b = r), never);
  t.type(a, 'function');
  t.equal(b, null, 'capacity is still 1 after the double release');
  release!();
  t.equal(b, null, 'an old release does not free the new holder\'s slot');
  a!();
  t.type(b, 'function');
  b!();
});
