// Shadow policies: a candidate policy set evaluated beside the enforced one, on the same Cedar
// request, after the answer has been sent. Its answer is never used; every disagreement is
// reported (decision log and a counter). This is how a team rolls out a policy change.

import type { PolicyStore } from './store.js';
import type { Decision } from '../core/decision.js';

export interface ShadowDisagreement {
  readonly type: 'shadow-disagreement';
  readonly decisionId: string;
  readonly time: string;
  readonly action: string | null;
  readonly resource: string | null;
  readonly workload: string | null;
  readonly enforced: { readonly decision: 'allow' | 'deny'; readonly determiningPolicies: readonly string[]; readonly policyVersion: string };
  readonly shadow: { readonly decision: 'allow' | 'deny' | 'error'; readonly determiningPolicies: readonly string[]; readonly policyVersion: string; readonly error?: string };
}

export class ShadowEvaluator {
  evaluated = 0;
  disagreements = 0;

  constructor(private readonly store: PolicyStore) {}

  get version(): string {
    return this.store.current.version.version;
  }

  /** Compares the shadow answer with the enforced one; null when they agree or nothing was evaluated. */
  compare(decision: Decision): ShadowDisagreement | null {
    if (decision.cedar === null || decision.policyDecision === null) return null;
    this.evaluated++;
    const engine = this.store.current;
    // Compiled where proven, as the enforced set is decided: the shadow runs after every decision.
    const r = engine.evaluateCompiled(decision.cedar) ?? engine.evaluate(decision.cedar);
    const shadow = r.ok
      ? { decision: r.value.decision, determiningPolicies: r.value.determining, policyVersion: engine.version.version }
      : { decision: 'error' as const, determiningPolicies: [], policyVersion: engine.version.version, error: r.message ?? r.code };
    if (shadow.decision === decision.policyDecision) return null;
    this.disagreements++;
    return {
      type: 'shadow-disagreement',
      decisionId: decision.decisionId,
      time: new Date().toISOString(),
      action: decision.action,
      resource: decision.resource,
      workload: decision.identity !== null && decision.identity.kind !== 'anonymous' ? decision.identity.spiffe.id : null,
      enforced: { decision: decision.policyDecision, determiningPolicies: decision.determining, policyVersion: decision.policyVersion },
      shadow,
    };
  }
}
