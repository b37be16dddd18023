// What the load-time analyses (slicing, scope index, projection, schema-less evaluation,
// request-only entities) need from each policy, read once from cedar-wasm's JSON form when the
// version is loaded. The JSON itself is not kept: its condition trees are most of a version's
// memory (10,000 policies: ~15 MB of heap in every thread that holds the version, main and
// each pool worker, and most of what a worker is sent).
//
// Identical facts are shared (interned) within a version: generated policies differ in their
// scope but usually read the same context paths. Structured clone keeps that sharing when a
// version is sent to a pool worker.

import type { PolicyJson } from './cedar.js';
import type { Compiled, CompiledShape } from './compiled/compile.js';
import { conditionsConfined } from './analysis.js';
import { addAttributeNames, addContextReads, addTagNames, emptyTrie, type PathTrie } from './projection.js';

/** One node of the context paths a policy reads: `whole` when the value there is used as is. */
export type ContextRead = readonly [path: readonly string[], whole: boolean];

export interface PolicyFacts {
  /** Scope constraints, as cedar-wasm's JSON form gives them (small: an op and an entity or type). */
  readonly principal: unknown;
  readonly action: unknown;
  readonly resource: unknown;
  /** `context` used other than through attribute access: every path counts as read. */
  readonly readsAllContext: boolean;
  /** Every context path the conditions read or test (projection.ts). */
  readonly contextReads: readonly ContextRead[];
  /** Every attribute name read or tested, on anything (schemaless.ts drops the others). */
  readonly attributes: readonly string[];
  /** Every tag name read or tested by a literal name (the JSON alias check, check/map.ts). */
  readonly tags: readonly string[];
  /** The conditions read nothing beyond the request's own entities and context (analysis.ts). */
  readonly confined: boolean;
}

/** Shares equal values within one version. */
export class FactsInterner {
  private readonly reads = new Map<string, readonly ContextRead[]>();
  private readonly names = new Map<string, readonly string[]>();
  private readonly shapes = new Map<string, CompiledShape>();

  /** One object per compiled shape (compiled/compile.ts): structured clone keeps the sharing too. */
  compiled(value: Compiled): Compiled {
    if (!('shape' in value)) return value;
    const known = this.shapes.get(value.shape.source);
    if (known === undefined) {
      this.shapes.set(value.shape.source, value.shape);
      return value;
    }
    return { shape: known, constants: value.constants };
  }

  contextReads(value: readonly ContextRead[]): readonly ContextRead[] {
    return share(this.reads, value);
  }

  attributes(value: readonly string[]): readonly string[] {
    return share(this.names, value);
  }
}

function share<T>(map: Map<string, T>, value: T): T {
  const key = JSON.stringify(value);
  const known = map.get(key);
  if (known !== undefined) return known;
  map.set(key, value);
  return value;
}

export function policyFacts(json: PolicyJson, interner: FactsInterner): PolicyFacts {
  const trie = emptyTrie();
  addContextReads(trie, json.conditions);
  const names = new Set<string>();
  addAttributeNames(names, json.conditions);
  const tags = new Set<string>();
  addTagNames(tags, json.conditions);
  return Object.freeze({
    principal: json.principal,
    action: json.action,
    resource: json.resource,
    readsAllContext: trie.whole,
    contextReads: interner.contextReads(flatten(trie)),
    attributes: interner.attributes([...names].sort()),
    tags: interner.attributes([...tags].sort()),
    confined: conditionsConfined(json.conditions),
  });
}

/** Every node of the trie below the root, parents before children. */
function flatten(trie: PathTrie): ContextRead[] {
  const out: ContextRead[] = [];
  const walk = (node: PathTrie, path: readonly string[]): void => {
    for (const [name, next] of [...node.children].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) {
      const at = [...path, name];
      out.push([at, next.whole]);
      walk(next, at);
    }
  };
  walk(trie, []);
  return out;
}

/** Adds a policy's context reads to an action's trie (the union of its policies' reads). */
export function addFactsReads(trie: PathTrie, facts: PolicyFacts): void {
  if (facts.readsAllContext) trie.whole = true;
  for (const [path, whole] of facts.contextReads) {
    let at = trie;
    for (const name of path) {
      let next = at.children.get(name);
      if (next === undefined) at.children.set(name, (next = emptyTrie()));
      at = next;
    }
    if (whole) at.whole = true;
  }
}
