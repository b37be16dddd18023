// Policy slicing by action: a request is evaluated only against the policies whose action
// scope can match its action (plus those with no action constraint), each slice preparsed once
// at load. Cedar evaluates every policy it is given (~20 us each here), so this is most of the
// policy cost. A policy's action scope is read from cedar-wasm's JSON form (facts.ts); action groups come
// from the schema (transitively). Anything this cannot read with certainty turns slicing off.

import * as cedar from './cedar.js';
import type { PolicySource } from './loader.js';
import { actionGroups } from './hierarchy.js';

type Uid = { type: string; id: string } | { __entity: { type: string; id: string } };

function plain(u: Uid): { type: string; id: string } {
  return '__entity' in u ? u.__entity : u;
}

export interface ActionSlices {
  /** For each action the schema declares, the routes name or a policy mentions: the policies that can apply to it. */
  readonly byAction: Map<string, string[]>;
  /**
   * The policies that can apply to any other action: those with no action constraint. Such an
   * action is in no group (groups come from the schema, and without a schema slicing is off
   * when the entity data gives actions parents) and no policy names it.
   */
  readonly other: string[];
}

/** Policy ids by action; null: do not slice. */
export function sliceByAction(policies: readonly PolicySource[], schemaText: string | null, extraActions: readonly string[]): ActionSlices | null {
  // Action groups, transitively: action id -> every group it is in.
  const groups = new Map<string, Set<string>>();
  const actions = new Set<string>(extraActions);
  if (schemaText !== null) {
    const json = cedar.schemaToJsonWithResolvedTypes(schemaText);
    if (json.type !== 'success') return null;
    const namespaces = Object.keys(json.json);
    if (namespaces.some((ns) => ns !== '')) return null; // namespaced actions: not handled, do not slice
    const declared = json.json['']?.actions ?? {};
    const closure = actionGroups(declared);
    if (closure === null) return null;
    for (const [id, groupsOf] of closure) {
      actions.add(id);
      groups.set(id, groupsOf);
    }
  }
  const scopes: { id: string; matches: (action: string) => boolean }[] = [];
  const other: string[] = [];
  for (const p of policies) {
    if (p.facts === null) return null;
    const c = p.facts.action as { op: string; entity?: Uid; entities?: Uid[] };
    if (c.op === 'All') {
      scopes.push({ id: p.id, matches: () => true });
      other.push(p.id);
      continue;
    }
    const targets = c.entity !== undefined ? [plain(c.entity)] : (c.entities ?? []).map(plain);
    if (targets.length === 0 || targets.some((t) => t.type !== 'Action')) return null;
    const ids = new Set(targets.map((t) => t.id));
    for (const id of ids) actions.add(id);
    if (c.op === '==') scopes.push({ id: p.id, matches: (a) => ids.has(a) });
    else if (c.op === 'in') scopes.push({ id: p.id, matches: (a) => ids.has(a) || [...(groups.get(a) ?? [])].some((g) => ids.has(g)) });
    else return null;
  }
  const byAction = new Map<string, string[]>();
  for (const action of actions) byAction.set(action, scopes.filter((s) => s.matches(action)).map((s) => s.id));
  return { byAction, other };
}
