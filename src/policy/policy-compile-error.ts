/**
 * Policy compile errors: every problem found in the route rules, each named by its key path
 * (routes[1].allow[0].spiffe), collected so that one run reports them all.
 */

export interface PolicyIssue {
  path: string;
  message: string;
}

export class PolicyCompileError extends Error {
  readonly issues: PolicyIssue[];

  constructor(issues: PolicyIssue[]) {
    const lines = issues.map((i) => `${i.path}: ${i.message}`);
    super(`invalid route policy (${issues.length} problem${issues.length === 1 ? '' : 's'}):\n  ${lines.join('\n  ')}`);
    this.name = 'PolicyCompileError';
    this.issues = issues;
  }
}
