// The per-version plan for projected evaluation (projection.ts, schemaless.ts): per action, the
// context paths its policies read, the proofs that gate the projected and schema-less paths, and
// one preparsed schema whose action contexts are projected the same way.

import * as cedar from './cedar.js';
import type { PolicyVersion } from './loader.js';
import { addFactsReads, type PolicyFacts } from './facts.js';
import { compileBodyBlame, compileConformance, compileProjector, holdsOnlyLongs, emptyTrie, projectType, type CommonTypes, type Conformance, type PathTrie, type Projector, type SchemaType } from './projection.js';
import { prepareSchemaless, type SchemalessPlan } from './schemaless.js';
import { compileReader, type RequestReader } from './compiled/readers.js';

export interface ActionProjection {
  readonly project: Projector;
  readonly conforms: Conformance;
  /** With request-only entities: evaluation without the schema, when proven (schemaless.ts). */
  readonly schemaless?: SchemalessPlan;
  /** The schema-less proof and the compiled evaluator's inputs in one pass (compiled/readers.ts). */
  readonly compiledReader?: RequestReader;
}

/** Per action whose context has a body: whether a context Cedar refused fails in the body alone. */
export type BodyBlame = ReadonlyMap<string, (context: Record<string, unknown>) => boolean>;

/**
 * compileBodyBlame for every action of the schema whose context has a `body`. Independent of the
 * optimizations: the reason code of a refusal must not depend on whether context is projected.
 */
export function prepareBodyBlame(version: PolicyVersion): BodyBlame {
  const out = new Map<string, (context: Record<string, unknown>) => boolean>();
  if (version.schemaText === null) return out;
  const resolved = cedar.schemaToJsonWithResolvedTypes(version.schemaText);
  if (resolved.type !== 'success') return out;
  for (const namespace of Object.values(resolved.json)) {
    const ns = namespace as unknown as { commonTypes?: Record<string, SchemaType>; actions?: Record<string, { appliesTo?: { context?: SchemaType } }> };
    for (const [action, def] of Object.entries(ns.actions ?? {})) {
      const type = def.appliesTo?.context;
      const blame = type === undefined ? undefined : compileBodyBlame(type, ns.commonTypes ?? {});
      if (blame !== undefined) out.set(action, blame as (context: Record<string, unknown>) => boolean);
    }
  }
  return out;
}

export interface Projection {
  readonly byAction: ReadonlyMap<string, ActionProjection>;
  readonly schemaName: string | undefined;
}

/**
 * Per action, the context paths its policies (its slice, or the whole set) read, a projector for
 * them and, with a schema, a conformance check of the whole context and one preparsed schema
 * whose action contexts are projected the same way. Anything not understood: no projection.
 */
export function prepareProjection(version: PolicyVersion, schemaName: string, members: ReadonlyMap<string, readonly string[]>, extraActions: readonly string[], schemaless: boolean): Projection {
  const none: Projection = { byAction: new Map(), schemaName: undefined };
  const allIds = version.policies.map((p) => p.id);
  const facts = new Map<string, PolicyFacts>();
  for (const p of version.policies) {
    if (p.facts === null) return none;
    facts.set(p.id, p.facts);
  }
  const trieFor = (action: string): PathTrie => {
    const trie = emptyTrie();
    for (const id of members.get(action) ?? allIds) addFactsReads(trie, facts.get(id) as PolicyFacts);
    return trie;
  };
  const byAction = new Map<string, ActionProjection>();
  if (version.schemaText === null) {
    for (const action of new Set(extraActions)) // Without a schema nothing is validated, but cedar-wasm still refuses a number it cannot
    // hold as a Long anywhere in the context: projecting such a value away would turn that
    // refusal into an answer, so such a context takes the plain path and gets cedar-wasm's.
    byAction.set(action, { project: compileProjector(trieFor(action), null, {}), conforms: holdsOnlyLongs });
    return { byAction, schemaName: undefined };
  }
  const resolved = cedar.schemaToJsonWithResolvedTypes(version.schemaText);
  if (resolved.type !== 'success' || Object.keys(resolved.json).some((ns) => ns !== '')) return none;
  const namespace = structuredClone(resolved.json['']) as unknown as {
    commonTypes?: Record<string, SchemaType>;
    entityTypes: Parameters<typeof prepareSchemaless>[0];
    actions: Record<string, { appliesTo?: { context?: SchemaType } }>;
  };
  const common: CommonTypes = namespace.commonTypes ?? {};
  const readAttributes = new Set<string>();
  for (const f of facts.values()) for (const name of f.attributes) readAttributes.add(name);
  const plans = schemaless ? prepareSchemaless(namespace.entityTypes, namespace.actions as Parameters<typeof prepareSchemaless>[1], common, readAttributes) : null;
  for (const [action, def] of Object.entries(namespace.actions)) {
    const type = def.appliesTo?.context;
    if (type === undefined) continue;
    const trie = trieFor(action);
    const plan = plans?.get(action);
    byAction.set(action, {
      project: compileProjector(trie, type, common),
      conforms: compileConformance(type, common),
      ...(plan === undefined ? {} : { schemaless: plan, compiledReader: plan.compiledReader(compileReader(type, common, trie)) }),
    });
    (def.appliesTo as { context: SchemaType }).context = projectType(type, trie, common);
  }
  const schema = cedar.preparseSchema(schemaName, { '': namespace } as unknown as cedar.Schema);
  // A projection cedar-wasm will not take is an optimization lost, not a reason to refuse a valid version.
  if (schema.type === 'failure') return none;
  return { byAction, schemaName };
}
