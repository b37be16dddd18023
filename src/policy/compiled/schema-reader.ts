// Reading entities and a context the way Cedar does with a schema, for the compiled evaluator.
// With a schema Cedar reads JSON by the declared types: `{"type", "id"}` is an entity where an
// entity is declared, entities must fit their type (declared attributes, parents of the
// declared types, tags only when declared), action entities come from the schema with their
// groups, and a context must fit the action's context type. This module does the same for
// the types the compiled evaluator holds (no extension types): a value it cannot read with
// certainty (an extension type, an enumerated entity type, a shape it does not follow) makes it
// answer null, and the request goes to cedar-wasm for Cedar's own answer and message.

import * as cedar from '../cedar.js';
import { addEntity, hasCycle, OUT, OutOfDomain, readExtension, readUid } from './inputs.js';
import { callExtension, Ext } from './extensions.js';
import { Entities, Uid, type EntityData, type Rec, type Value } from './values.js';

interface Type {
  readonly type: string;
  readonly name?: string;
  readonly element?: Type;
  readonly attributes?: Readonly<Record<string, Type & { readonly required?: boolean }>>;
  readonly additionalAttributes?: boolean;
}

interface EntityTypeDef {
  readonly memberOfTypes?: readonly string[];
  readonly shape?: Type;
  readonly tags?: Type;
}

interface ActionDef {
  readonly appliesTo?: { readonly principalTypes?: readonly string[]; readonly resourceTypes?: readonly string[]; readonly context?: Type };
  readonly memberOf?: readonly { readonly id: string; readonly type?: string }[];
}

interface EntityType {
  readonly memberOf: ReadonlySet<string>;
  readonly shape: Type | null;
  readonly tags: Type | null;
  readonly ns: string;
}

interface Action {
  readonly uid: Uid;
  readonly parents: readonly Uid[];
  readonly principals: ReadonlySet<string> | null;
  readonly resources: ReadonlySet<string> | null;
  readonly context: Type | null;
  readonly ns: string;
}


const qualify = (ns: string, name: string): string => (ns === '' || name.includes('::') ? name : `${ns}::${name}`);

export class SchemaReader {
  private constructor(
    private readonly entityTypes: ReadonlyMap<string, EntityType>,
    private readonly actions: ReadonlyMap<string, Action>,
    private readonly common: ReadonlyMap<string, Type>,
  ) {}

  /** null when the schema does not parse or holds forms this reader does not follow. */
  static from(schemaText: string): SchemaReader | null {
    const resolved = cedar.schemaToJsonWithResolvedTypes(schemaText);
    if (resolved.type !== 'success') return null;
    const entityTypes = new Map<string, EntityType>();
    const actions = new Map<string, Action>();
    const common = new Map<string, Type>();
    for (const [ns, body] of Object.entries(resolved.json as unknown as Record<string, { entityTypes?: Record<string, EntityTypeDef>; actions?: Record<string, ActionDef>; commonTypes?: Record<string, Type> }>)) {
      for (const [name, t] of Object.entries(body.commonTypes ?? {})) common.set(qualify(ns, name), t);
      for (const [name, def] of Object.entries(body.entityTypes ?? {})) {
        if (Object.keys(def).some((k) => k !== 'memberOfTypes' && k !== 'shape' && k !== 'tags' && k !== 'annotations')) return null;
        entityTypes.set(qualify(ns, name), { memberOf: new Set((def.memberOfTypes ?? []).map((t) => qualify(ns, t))), shape: def.shape ?? null, tags: def.tags ?? null, ns });
      }
      const actionType = qualify(ns, 'Action');
      for (const [id, def] of Object.entries(body.actions ?? {})) {
        if (Object.keys(def).some((k) => k !== 'appliesTo' && k !== 'memberOf' && k !== 'annotations')) return null;
        const uid = new Uid(actionType, id);
        const parents = (def.memberOf ?? []).map((m) => new Uid(m.type === undefined ? actionType : qualify(ns, m.type), m.id));
        const applies = def.appliesTo;
        actions.set(uid.key, {
          uid,
          parents,
          principals: applies === undefined ? null : new Set((applies.principalTypes ?? []).map((t) => qualify(ns, t))),
          resources: applies === undefined ? null : new Set((applies.resourceTypes ?? []).map((t) => qualify(ns, t))),
          context: applies?.context ?? null,
          ns,
        });
      }
    }
    return new SchemaReader(entityTypes, actions, common);
  }

  /** Whether the request's principal and resource types are those the action applies to (Cedar's request validation). */
  appliesTo(principal: Uid, action: Uid, resource: Uid): boolean {
    const a = this.actions.get(action.key);
    if (a === undefined || a.principals === null || a.resources === null) return false;
    return a.principals.has(principal.type) && a.resources.has(resource.type);
  }

  /** The entities of a file read by the schema, with the schema's action entities; null when not certain. */
  readEntities(list: readonly unknown[]): Entities | null {
    try {
      const byKey = new Map<string, EntityData>();
      for (const a of this.actions.values()) byKey.set(a.uid.key, { uid: a.uid, attrs: Object.create(null) as Rec, parents: a.parents.map((p) => p.key), tags: null });
      const listed = new Map<string, EntityData>();
      for (const item of list) {
        if (typeof item !== 'object' || item === null) throw OUT;
        const e = item as Record<string, unknown>;
        for (const k of Object.keys(e)) if (k !== 'uid' && k !== 'attrs' && k !== 'parents' && k !== 'tags') throw OUT;
        const uid = readUid(e['uid']);
        if (!Array.isArray(e['parents'])) throw OUT;
        const parents = (e['parents'] as unknown[]).map(readUid);
        const action = this.actions.get(uid.key);
        if (action !== undefined) {
          // An action listed in the data must be exactly its declaration.
          const attrs = e['attrs'];
          if (attrs !== undefined && (typeof attrs !== 'object' || attrs === null || Object.keys(attrs).length > 0)) throw OUT;
          if (e['tags'] !== undefined && (typeof e['tags'] !== 'object' || e['tags'] === null || Object.keys(e['tags']).length > 0)) throw OUT;
          const declared = new Set(action.parents.map((p) => p.key));
          const given = new Set(parents.map((p) => p.key));
          if (declared.size !== given.size || [...given].some((k) => !declared.has(k))) throw OUT;
          continue;
        }
        const type = this.entityTypes.get(uid.type);
        if (type === undefined) throw OUT;
        for (const p of parents) if (!type.memberOf.has(p.type)) throw OUT;
        const attrs = type.shape === null ? readEmpty(e['attrs']) : this.record(e['attrs'] ?? {}, type.shape, type.ns);
        let tags: Rec | null = null;
        if (e['tags'] !== undefined) {
          const t = e['tags'];
          if (typeof t !== 'object' || t === null || Array.isArray(t)) throw OUT;
          const out = Object.create(null) as Record<string, Value>;
          for (const k of Object.keys(t)) {
            if (type.tags === null) throw OUT;
            out[k] = this.value((t as Record<string, unknown>)[k], type.tags, type.ns);
          }
          tags = out;
        }
        addEntity(listed, { uid, attrs, parents: parents.map((p) => p.key), tags });
      }
      for (const [k, e] of listed) byKey.set(k, e);
      if (hasCycle(byKey)) throw OUT; // Cedar refuses a cycle among parents
      return new Entities(byKey);
    } catch (err) {
      if (err instanceof OutOfDomain) return null;
      throw err;
    }
  }

  /** The context read by the action's declared context type; null when not certain. */
  readContext(action: Uid, context: unknown): Rec | null {
    const a = this.actions.get(action.key);
    if (a === undefined) return null;
    try {
      if (a.context === null) return readEmpty(context);
      return this.record(context, a.context, a.ns);
    } catch (err) {
      if (err instanceof OutOfDomain) return null;
      throw err;
    }
  }

  private resolve(t: Type, ns: string): Type {
    let out = t;
    for (let i = 0; i < 64; i++) {
      const c = this.common.get(qualify(ns, out.type)) ?? this.common.get(out.type);
      if (c === undefined) return out;
      out = c;
    }
    throw OUT;
  }

  private record(v: unknown, declared: Type, ns: string): Rec {
    const t = this.resolve(declared, ns);
    if (t.type !== 'Record' || t.additionalAttributes === true) throw OUT;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw OUT;
    const src = v as Record<string, unknown>;
    if (Object.hasOwn(src, '__entity') || Object.hasOwn(src, '__extn')) throw OUT;
    const attributes = t.attributes ?? {};
    const out = Object.create(null) as Record<string, Value>;
    for (const k of Object.keys(src)) {
      const a = attributes[k];
      if (a === undefined || !Object.hasOwn(attributes, k)) throw OUT;
      out[k] = this.value(src[k], a, ns);
    }
    for (const [k, a] of Object.entries(attributes)) if (a.required !== false && out[k] === undefined) throw OUT;
    return out;
  }

  private value(v: unknown, declared: Type, ns: string): Value {
    const t = this.resolve(declared, ns);
    switch (t.type.startsWith('__cedar::') ? t.type.slice(9) : t.type) {
      case 'String':
        if (typeof v !== 'string') throw OUT;
        return v;
      case 'Bool':
      case 'Boolean':
        if (typeof v !== 'boolean') throw OUT;
        return v;
      case 'Long':
        if (typeof v === 'number' && Number.isSafeInteger(v)) return v + 0;
        if (typeof v === 'bigint') {
          const n = Number(v);
          if (v < -(2n ** 63n) || v >= 2n ** 63n) throw OUT;
          return Number.isSafeInteger(n) ? n : v;
        }
        throw OUT;
      case 'Set':
        if (!Array.isArray(v) || t.element === undefined) throw OUT;
        return v.map((x) => this.value(x, t.element as Type, ns));
      case 'Record':
        return this.record(v, t, ns);
      case 'Entity': {
        const uid = readUid(v);
        if (t.name === undefined || uid.type !== qualify(ns, t.name)) throw OUT;
        return uid;
      }
      default: {
        const kind = extensionKind(t);
        if (kind === null) throw OUT;
        return this.extension(v, kind);
      }
    }
  }

  /** An extension value: `{"__extn": ...}`, `{fn, arg}` or, with a schema, the constructor's string. */
  private extension(v: unknown, kind: string): Value {
    let out: unknown;
    try {
      if (typeof v === 'string') out = callExtension(CONSTRUCTOR[kind] as string, [v]);
      else if (typeof v === 'object' && v !== null && !Array.isArray(v)) out = readExtension(Object.hasOwn(v, '__extn') && Object.keys(v).length === 1 ? (v as { __extn: unknown }).__extn : v);
      else throw OUT;
    } catch (err) {
      if (err instanceof OutOfDomain) throw err;
      throw OUT;
    }
    if (!(out instanceof Ext) || out.kind !== kind) throw OUT;
    return out;
  }
}

const CONSTRUCTOR: Readonly<Record<string, string>> = { decimal: 'decimal', ipaddr: 'ip', datetime: 'datetime', duration: 'duration' };

/** The extension type a schema type names (`__cedar::decimal`, `{type: "Extension", name}`), or null. */
function extensionKind(t: Type): string | null {
  const name = t.type === 'Extension' ? (t.name ?? '') : t.type;
  const bare = name.startsWith('__cedar::') ? name.slice(9) : name;
  return Object.hasOwn(CONSTRUCTOR, bare) ? bare : null;
}

function readEmpty(v: unknown): Rec {
  if (v === undefined) return Object.create(null) as Rec;
  if (typeof v !== 'object' || v === null || Array.isArray(v) || Object.keys(v).length > 0) throw OUT;
  return Object.create(null) as Rec;
}

