/**
 * The gateway runs in the test process, so a crash in it is an `uncaughtException` or an
 * `unhandledRejection` here. A listener records each one (with its stack) instead of letting it
 * kill the run: the test then fails naming the error, and carries on to find the next one.
 */
export interface ProcessFault {
  readonly kind: 'uncaughtException' | 'unhandledRejection';
  readonly message: string;
  readonly stack: string;
  /** What the test was doing when it happened (set by the test through `during`). */
  readonly during: string;
}

export interface ProcessGuard {
  readonly faults: ProcessFault[];
  /** Labels faults that happen from now on. */
  during(label: string): void;
  dispose(): void;
}

export function guardProcess(): ProcessGuard {
  const faults: ProcessFault[] = [];
  let label = '';
  const record = (kind: ProcessFault['kind']) => (err: unknown) => {
    const e = err instanceof Error ? err : new Error(String(err));
    faults.push({ kind, message: `${e.name}: ${e.message}`, stack: (e.stack ?? '').split('\n').slice(0, 12).join('\n'), during: label });
  };
  const onException = record('uncaughtException');
  const onRejection = record('unhandledRejection');
  process.on('uncaughtException', onException);
  process.on('unhandledRejection', onRejection);
  return {
    faults,
    during(l) {
      label = l;
    },
    dispose() {
      process.off('uncaughtException', onException);
      process.off('unhandledRejection', onRejection);
    },
  };
}

/** Runs fn over items with at most `limit` in flight; results keep the input order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= items.length) return;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** Faults grouped by kind, message and the top of the stack, each with a count and where it first happened. */
export function distinctFaults(faults: readonly ProcessFault[]): string[] {
  const groups = new Map<string, { count: number; during: string }>();
  for (const f of faults) {
    const key = `${f.kind}: ${f.stack.split('\n').slice(0, 5).join('\n')}`;
    const g = groups.get(key);
    if (g) g.count++;
    else groups.set(key, { count: 1, during: f.during });
  }
  return [...groups.entries()].map(([key, g]) => `×${g.count}, first during ${g.during}: ${key}`);
}
