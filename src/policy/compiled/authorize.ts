// A compiled policy set (compile.ts) and Cedar's authorization rules over it: deny unless some
// permit is satisfied, any satisfied forbid denies; a policy whose condition errors is not
// satisfied and is reported among the errors; the determining policies are the satisfied
// forbids for a deny, the satisfied permits for an allow (none for a default deny).

import * as rt from './values.js';
import type { CompiledInput } from './inputs.js';
import type { CompiledShape, Constant } from './compile.js';

export type PolicyFn = (P: rt.Uid, A: rt.Uid, R: rt.Uid, C: rt.Rec, E: rt.Entities) => boolean;

export interface CompiledPolicy {
  readonly id: string;
  readonly effect: 'permit' | 'forbid';
  readonly fn: PolicyFn;
}

export interface CompiledAnswer {
  readonly decision: 'allow' | 'deny';
  readonly determining: readonly string[];
  readonly errors: readonly { readonly policyId: string; readonly message: string }[];
}

type Factory = (runtime: typeof rt, constants: readonly unknown[]) => PolicyFn;
/** One factory per shape, for the process: a reload reuses the shapes it already built. */
const factories = new Map<string, Factory>();

function materialize(c: Constant): unknown {
  switch (c[0]) {
    case 'uid':
      return new rt.Uid(c[1], c[2]);
    case 're':
      return new RegExp(c[1]);
    case 'str':
      return c[1];
    default:
      return BigInt(c[1]);
  }
}

/** A compiled policy's function: its shape's factory (built once per shape) given its literals. */
export function policyFunction(shape: CompiledShape, constants: readonly Constant[]): PolicyFn {
  let factory = factories.get(shape.source);
  if (factory === undefined) factories.set(shape.source, (factory = new Function('rt', 'K', shape.source) as Factory));
  return factory(rt, constants.map(materialize));
}

const NONE: readonly never[] = Object.freeze([]);

export class CompiledPolicySet {
  constructor(readonly policies: readonly CompiledPolicy[]) {}

  get size(): number {
    return this.policies.length;
  }

  /**
   * Cedar's answer for the request. `only`: the numbers (ascending) of the policies whose scope
   * can match (scope-index.ts); the others cannot be satisfied nor error, so they are skipped.
   */
  authorize(input: CompiledInput, only?: readonly number[]): CompiledAnswer {
    const { principal: P, action: A, resource: R, context: C, entities: E } = input;
    const policies = this.policies;
    let forbidden: string[] | null = null;
    let permitted: string[] | null = null;
    let errors: { policyId: string; message: string }[] | null = null;
    const n = only === undefined ? policies.length : only.length;
    for (let i = 0; i < n; i++) {
      const p = policies[only === undefined ? i : (only[i] as number)] as CompiledPolicy;
      try {
        if (p.fn(P, A, R, C, E)) {
          if (p.effect === 'forbid') (forbidden ??= []).push(p.id);
          else (permitted ??= []).push(p.id);
        }
      } catch (err) {
        (errors ??= []).push({ policyId: p.id, message: errorMessage(err) });
      }
    }
    if (forbidden !== null) return { decision: 'deny', determining: forbidden, errors: errors ?? NONE };
    if (permitted !== null) return { decision: 'allow', determining: permitted, errors: errors ?? NONE };
    return { decision: 'deny', determining: NONE, errors: errors ?? NONE };
  }
}

function errorMessage(err: unknown): string {
  if (err instanceof rt.CedarError) return err.message;
  // A JavaScript failure inside generated code (stack overflow on a deep expression): Cedar
  // would answer; this path cannot. Rethrown so the caller falls back to cedar-wasm.
  throw err;
}
