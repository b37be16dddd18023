// Load-time analysis: can a request be evaluated with only its own entities (principal,
// resource, MCP arguments) instead of every static entity? Sending fewer entities into wasm
// cuts evaluation by about a third (bench: 761 -> 508 us on the example), but it must never
// change a decision: a policy that reads an entity left out would error, Cedar would skip it,
// and a skipped forbid could turn a deny into an allow. So it is allowed only when every
// policy is provably confined to what the request carries:
//   - attribute and tag reads (., has, getTag, hasTag) only on principal, resource, or a chain
//     of record attributes under context;
//   - `in` only with principal or resource on the left (their ancestors are flattened in at load);
//   - no context attribute the schema types as an entity, other than the request's own
//     McpArguments (a body could otherwise carry a reference to a static entity).
// Anything else, anywhere, turns it off for the whole policy version.

import * as cedar from './cedar.js';
import type { EntityJson } from './cedar.js';

type Json = unknown;

const OWN_CONTEXT_ENTITY_TYPES = new Set(['McpArguments']);

/** `policies`: a version's policies (loader.ts PolicySource); only their facts are read. */
export function requestEntitiesSuffice(policies: readonly { readonly facts: { readonly confined: boolean } | null }[], schemaText: string | null): boolean {
  if (schemaText !== null && !contextHoldsNoForeignEntities(schemaText)) return false;
  return policies.every((p) => p.facts?.confined);
}

/**
 * Without a schema, action groups can only come from the static entities (an `Action` entity
 * with parents). Requests built from their own entities would not carry the action's
 * ancestors, and slicing reads action groups from the schema only: either would leave out a
 * policy scoped `action in` a group, and a forbid left out is an allow by accident. Both are
 * off for such a version (with a schema, Cedar takes action entities from the schema).
 */
export function actionHierarchyInEntities(schemaText: string | null, entities: readonly EntityJson[]): boolean {
  return schemaText === null && entities.some((e) => isActionType('__entity' in e.uid ? e.uid.__entity.type : e.uid.type));
}

function isActionType(type: string): boolean {
  return type === 'Action' || type.endsWith('::Action');
}

/** Whether a policy's conditions (cedar-wasm's JSON form) are confined as above; read at load (facts.ts). */
export function conditionsConfined(conditions: readonly { readonly body: unknown }[]): boolean {
  return conditions.every((clause) => safe(clause.body));
}

function isVar(e: Json, ...names: string[]): boolean {
  return typeof e === 'object' && e !== null && 'Var' in e && names.includes((e as { Var: string }).Var);
}

/** A chain of `.` accesses ending at Var context: context.a.b.c (record navigation). */
function isContextChain(e: Json): boolean {
  if (isVar(e, 'context')) return true;
  if (typeof e === 'object' && e !== null && '.' in e) return isContextChain((e as { '.': { left: Json } })['.'].left);
  return false;
}

function readableBase(e: Json): boolean {
  return isVar(e, 'principal', 'resource') || isContextChain(e);
}

function safe(e: Json): boolean {
  if (Array.isArray(e)) return e.every(safe);
  if (typeof e !== 'object' || e === null) return true;
  const node = e as Record<string, Json>;
  for (const [op, arg] of Object.entries(node)) {
    if (op === 'Value' || op === 'Var' || op === 'Slot') continue;
    const a = arg as Record<string, Json>;
    if (op === '.' || op === 'has') {
      if (!readableBase(a['left'])) return false;
    } else if (op === 'getTag' || op === 'hasTag') {
      if (!readableBase(a['left'])) return false;
    } else if (op === 'in') {
      if (!isVar(a['left'], 'principal', 'resource')) return false;
    } else if (op === 'is' && a['in'] !== undefined) {
      if (!isVar(a['left'], 'principal', 'resource')) return false;
    }
    if (!safe(arg)) return false;
  }
  return true;
}

/** Whether any context type in the schema holds an entity other than the request's own. */
function contextHoldsNoForeignEntities(schemaText: string): boolean {
  const json = cedar.schemaToJsonWithResolvedTypes(schemaText);
  if (json.type !== 'success') return false;
  for (const ns of Object.values(json.json)) {
    const common = ns.commonTypes ?? {};
    const seen = new Set<string>();
    const check = (t: Json): boolean => {
      if (typeof t !== 'object' || t === null) return true;
      const ty = t as { type?: string; name?: string; element?: Json; attributes?: Record<string, Json> };
      if (ty.type === 'Entity') return OWN_CONTEXT_ENTITY_TYPES.has(String(ty.name).split('::').pop() ?? '');
      if (ty.type === 'Set') return check(ty.element);
      if (ty.type === 'Record') return Object.values(ty.attributes ?? {}).every(check);
      if (ty.type === 'EntityOrCommon' || (ty.type !== undefined && common[ty.type] !== undefined)) {
        const name = String(ty.type === 'EntityOrCommon' ? ty.name : ty.type);
        if (common[name] === undefined) return false; // an entity reference we could not resolve
        if (seen.has(name)) return true;
        seen.add(name);
        return check(common[name]);
      }
      return true;
    };
    for (const action of Object.values(ns.actions)) if (action.appliesTo?.context !== undefined && !check(action.appliesTo.context)) return false;
  }
  return true;
}
