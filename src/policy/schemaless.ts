// Evaluation without the schema, for requests proven to need none.
//
// With a schema, cedar-wasm spends ~90 us of a ~200 us call on it (measured on the issue's
// scenario request). What the schema does per request: parses values by their declared types
// (strings into extension values), checks the request against the action's appliesTo, checks
// the entities against their declared shapes and parent types, and adds the action entities
// with their groups. When JS has proven that every value is of a plain type (string, long,
// boolean, set, closed record, entity reference) Cedar reads them the same way without the
// schema, so the rest is done here: appliesTo and the entities are checked (anything not proven
// goes the schema way, for Cedar's own answer), and the action entity is sent with its groups
// flattened in, so that `action in Action::"read"` holds exactly as with the schema.
// Used only when requests carry their own entities alone (analysis.ts).

import type { EntityJson, EntityUidJson } from './cedar.js';
import { actionGroups } from './hierarchy.js';
import { compileConformance, type CommonTypes, type Conformance, type SchemaType } from './projection.js';
import { compileEntityReader, compileRequestReader, type NOT_PROVEN, type RequestReader } from './compiled/readers.js';
import type { EntityData, Value } from './compiled/values.js';

interface EntityTypeDef {
  readonly memberOfTypes?: readonly string[];
  readonly shape?: SchemaType;
  readonly tags?: SchemaType;
}

interface ActionDef {
  readonly appliesTo?: { readonly principalTypes?: readonly string[]; readonly resourceTypes?: readonly string[] };
  readonly memberOf?: readonly { readonly id: string; readonly type?: string }[];
  readonly attributes?: unknown;
}

export interface SchemalessPlan {
  /** The action entity, its groups flattened into its parents. */
  readonly actionEntity: EntityJson;
  /** True when the request's principal, resource and entities are proven to need no schema. */
  accepts(principalType: string, resourceType: string, entities: readonly EntityJson[]): boolean;
  /** The entities to send: attributes no policy reads left out (~10 us each), and the action entity. */
  entities(entities: readonly EntityJson[]): EntityJson[];
  /** The same proof and the same inputs for the compiled evaluator, in one pass (compiled/readers.ts). */
  compiledReader(context: (v: unknown) => Value | typeof NOT_PROVEN): RequestReader;
}

/** Plans per action, or null when the schema holds anything this does not reason about. */
export function prepareSchemaless(
  entityTypes: Readonly<Record<string, EntityTypeDef>>,
  actions: Readonly<Record<string, ActionDef>>,
  common: CommonTypes,
  /** Every attribute name some policy reads (projection.ts addAttributeNames). */
  readAttributes: ReadonlySet<string>,
): Map<string, SchemalessPlan> | null {
  const entityChecks = new Map<string, (e: EntityJson) => boolean>();
  const entityReaders = new Map<string, (e: EntityJson) => EntityData | typeof NOT_PROVEN>();
  for (const [name, def] of Object.entries(entityTypes)) {
    // Enumerated ids and other newer schema forms: not handled, so never schema-less.
    if (Object.keys(def).some((k) => k !== 'memberOfTypes' && k !== 'shape' && k !== 'tags')) return null;
    entityChecks.set(name, compileEntityCheck(def, common));
    entityReaders.set(name, compileEntityReader(def, common, readAttributes));
  }
  if (Object.values(actions).some((def) => def.attributes !== undefined)) return null;
  const groups = actionGroups(actions);
  if (groups === null) return null;
  const plans = new Map<string, SchemalessPlan>();
  for (const [id, def] of Object.entries(actions)) {
    if (def.appliesTo === undefined) continue;
    const principals = new Set(def.appliesTo.principalTypes ?? []);
    const resources = new Set(def.appliesTo.resourceTypes ?? []);
    const parents: EntityUidJson[] = [...(groups.get(id) ?? [])].map((g) => ({ type: 'Action', id: g }));
    const actionEntity = { uid: { type: 'Action', id }, attrs: {}, parents } as EntityJson;
    plans.set(id, {
      actionEntity,
      compiledReader: (context) => compileRequestReader({ id, groups: [...(groups.get(id) ?? [])] }, principals, resources, context, entityReaders),
      entities: (entities) => {
        const out = entities.map((e) => withReadAttributes(e, readAttributes));
        out.push(actionEntity);
        return out;
      },
      accepts: (principalType, resourceType, entities) => {
        if (!principals.has(principalType) || !resources.has(resourceType)) return false;
        for (const e of entities) {
          const uid = e.uid as { type?: unknown };
          const check = typeof uid.type === 'string' ? entityChecks.get(uid.type) : undefined;
          if (check === undefined || !check(e)) return false;
        }
        return true;
      },
    });
  }
  return plans;
}

function withReadAttributes(e: EntityJson, read: ReadonlySet<string>): EntityJson {
  const attrs = (e as { attrs?: Record<string, unknown> }).attrs ?? {};
  let unread = false;
  for (const name in attrs) if (!read.has(name)) unread = true;
  if (!unread) return e;
  const kept: Record<string, unknown> = {};
  for (const name in attrs) if (read.has(name)) kept[name] = attrs[name];
  return { ...e, attrs: kept } as EntityJson;
}

/** An entity of this type whose attributes, tags and parents are proven to fit its declaration. */
function compileEntityCheck(def: EntityTypeDef, common: CommonTypes): (e: EntityJson) => boolean {
  const shape: Conformance = def.shape === undefined ? (v) => isEmptyRecord(v) : compileConformance(def.shape, common);
  const tag: Conformance | null = def.tags === undefined ? null : compileConformance(def.tags, common);
  const parentTypes = new Set(def.memberOfTypes ?? []);
  return (e) => {
    const entity = e as { uid: unknown; attrs?: unknown; parents?: unknown; tags?: unknown };
    if (!isPlainUid(entity.uid)) return false;
    if (!shape(entity.attrs ?? {})) return false;
    if (entity.tags !== undefined) {
      if (typeof entity.tags !== 'object' || entity.tags === null || Array.isArray(entity.tags)) return false;
      const values = Object.values(entity.tags);
      if (tag === null ? values.length > 0 : !values.every(tag)) return false;
    }
    if (!Array.isArray(entity.parents)) return false;
    for (const p of entity.parents) if (!isPlainUid(p) || !parentTypes.has((p as { type: string }).type)) return false;
    return true;
  };
}

function isPlainUid(u: unknown): boolean {
  if (typeof u !== 'object' || u === null) return false;
  const uid = u as { type?: unknown; id?: unknown };
  return typeof uid.type === 'string' && typeof uid.id === 'string' && Object.keys(uid).length === 2;
}

function isEmptyRecord(v: unknown): boolean {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 0;
}
