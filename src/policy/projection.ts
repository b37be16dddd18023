// Context projection: send Cedar only the context attributes the policies can read.
//
// cedar-wasm's cost per call is dominated by turning the request into Cedar values inside wasm
// (measured: about 3 us per context attribute; the example's ~30 attributes cost more than
// evaluating its policies). Most attributes are read by no policy of the action's slice, so
// at load the policies' JSON form gives, per action, the context paths they read, and each
// request carries only those, with a schema projected the same way (Cedar records are closed:
// a projected context must be checked against a projected type).
//
// It must not change any answer. Attributes no policy reads cannot change an evaluation; what
// they can change is request validation (a body missing a required field is `bad_request`).
// So a request takes the projected path only when a check in JS proves its whole context
// conforms to the action's full context type; anything it cannot prove (extension types, open
// records, an unexpected shape) goes the plain way, whole context against the whole schema,
// and gets Cedar's own answer and message.

type Json = unknown;

/** The context paths read by a set of policies. `whole`: the value at this path is used as is. */
export interface PathTrie {
  whole: boolean;
  readonly children: Map<string, PathTrie>;
}

export function emptyTrie(): PathTrie {
  return { whole: false, children: new Map() };
}

function child(node: PathTrie, name: string): PathTrie {
  let next = node.children.get(name);
  if (next === undefined) node.children.set(name, (next = emptyTrie()));
  return next;
}

/**
 * Adds the context paths one policy's conditions read (cedar-wasm's JSON form, `conditions`).
 * `context.a.b` used as a value keeps a.b whole; `context.a has b` keeps only a.b's presence;
 * `context` used any other way keeps everything.
 */
export function addContextReads(trie: PathTrie, conditions: Json): void {
  const visit = (e: Json): void => {
    if (Array.isArray(e)) {
      e.forEach(visit);
      return;
    }
    if (typeof e !== 'object' || e === null) return;
    const node = e as Record<string, Json>;
    if ('Value' in node) return; // a literal: nothing is read
    if ('Var' in node) {
      if (node['Var'] === 'context') trie.whole = true;
      return;
    }
    const dot = node['.'] as { left: Json; attr: string } | undefined;
    const has = node['has'] as { left: Json; attr: string | string[] } | undefined;
    if (dot !== undefined || has !== undefined) {
      const path: string[] = dot !== undefined ? [dot.attr] : Array.isArray(has?.attr) ? [...((has?.attr ?? []) as string[])] : [has?.attr as string];
      let base = (dot ?? has)?.left;
      while (typeof base === 'object' && base !== null && '.' in base) {
        const inner = (base as { '.': { left: Json; attr: string } })['.'];
        path.unshift(inner.attr);
        base = inner.left;
      }
      if (typeof base === 'object' && base !== null && (base as { Var?: string }).Var === 'context') {
        let at = trie;
        for (const name of path) at = child(at, name);
        if (dot !== undefined) at.whole = true;
        return;
      }
      visit(base);
      return;
    }
    for (const value of Object.values(node)) visit(value);
  };
  visit(conditions);
}

/**
 * Adds every attribute name a policy reads or tests (`.`, `has`) on anything, entities included.
 * Cedar has no computed attribute names, so an entity attribute whose name is not here is read
 * by no policy.
 */
export function addAttributeNames(names: Set<string>, conditions: Json): void {
  eachNode(conditions, (node) => {
    const access = (node['.'] ?? node['has']) as { attr?: string | string[] } | undefined;
    if (access !== undefined) for (const a of Array.isArray(access.attr) ? access.attr : [access.attr]) if (typeof a === 'string') names.add(a);
  });
}

/** Adds every tag name a condition reads by a literal name (hasTag / getTag): MCP arguments are tags. */
export function addTagNames(names: Set<string>, conditions: Json): void {
  eachNode(conditions, (node) => {
    const tag = (node['hasTag'] ?? node['getTag']) as { right?: { Value?: unknown } } | undefined;
    if (tag !== undefined && typeof tag.right?.Value === 'string') names.add(tag.right.Value);
  });
}

/** Calls `visit` on every expression node of a condition tree, literals (Value) excepted. */
function eachNode(conditions: Json, visit: (node: Record<string, Json>) => void): void {
  const walk = (e: Json): void => {
    if (Array.isArray(e)) {
      e.forEach(walk);
      return;
    }
    if (typeof e !== 'object' || e === null) return;
    const node = e as Record<string, Json>;
    if ('Value' in node) return;
    visit(node);
    for (const value of Object.values(node)) walk(value);
  };
  walk(conditions);
}

// ---- schema types (cedar-wasm's schemaToJsonWithResolvedTypes form, empty namespace) ----

export interface SchemaType {
  readonly type: string;
  readonly name?: string;
  readonly element?: SchemaType;
  readonly attributes?: Readonly<Record<string, SchemaType & { readonly required?: boolean }>>;
  readonly additionalAttributes?: boolean;
  readonly required?: boolean;
}

export type CommonTypes = Readonly<Record<string, SchemaType>>;

/** Follows common-type names to the type they stand for (cycles are not possible in Cedar). */
export function resolveType(t: SchemaType, common: CommonTypes): SchemaType {
  let out = t;
  for (let i = 0; i < 64 && common[out.type] !== undefined; i++) out = common[out.type] as SchemaType;
  return out;
}

function primitiveName(type: string): string {
  return type.startsWith('__cedar::') ? type.slice('__cedar::'.length) : type;
}

/** The context type projected onto a trie; attributes keep their `required` flag. */
export function projectType(t: SchemaType, trie: PathTrie, common: CommonTypes): SchemaType {
  if (trie.whole) return t;
  const r = resolveType(t, common);
  if (r.type !== 'Record' || r.additionalAttributes === true) return t;
  const attributes: Record<string, SchemaType> = {};
  for (const [name, sub] of trie.children) {
    const declared = r.attributes?.[name];
    if (declared === undefined) continue; // read but not declared: absent in a conforming context too
    const projected = projectType(declared, sub, common);
    attributes[name] = declared.required === false ? { ...projected, required: false } : withoutRequired(projected);
  }
  return { type: 'Record', attributes };
}

function withoutRequired(t: SchemaType): SchemaType {
  if (t.required === undefined) return t;
  const { required: _drop, ...rest } = t;
  return rest;
}

export type Projector = (value: Json) => Json;

/**
 * A function that projects a context value the way projectType projected its type. With a
 * type, the type decides where to stop (only records are projected); without a schema, the
 * value's shape does (entity and extension escapes are kept whole).
 */
export function compileProjector(trie: PathTrie, type: SchemaType | null, common: CommonTypes): Projector {
  if (trie.whole) return (v) => v;
  const r = type === null ? null : resolveType(type, common);
  if (r !== null && (r.type !== 'Record' || r.additionalAttributes === true)) return (v) => v;
  const parts: [string, Projector][] = [];
  for (const [name, sub] of trie.children) {
    const declared = r === null ? null : r.attributes?.[name];
    if (declared === undefined) continue;
    parts.push([name, compileProjector(sub, declared, common)]);
  }
  return (v) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v) || '__entity' in v || '__extn' in v) return v;
    const src = v as Record<string, Json>;
    const out: Record<string, Json> = {};
    for (const [name, project] of parts) {
      const value = src[name];
      if (value !== undefined) out[name] = project(value);
    }
    return out;
  };
}

export type Conformance = (value: Json) => boolean;

/**
 * A check that a value certainly conforms to a schema type, as Cedar's schema-based parsing
 * would accept it. False means "not proven", never "Cedar would refuse": the caller then
 * takes the plain path and Cedar decides. Extension types and open records are never proven.
 */
export function compileConformance(t: SchemaType, common: CommonTypes, seen: Map<SchemaType, Conformance> = new Map()): Conformance {
  const r = resolveType(t, common);
  const cached = seen.get(r);
  if (cached !== undefined) return cached;
  let check: Conformance;
  switch (primitiveName(r.type)) {
    case 'String':
      check = (v) => typeof v === 'string';
      break;
    case 'Long':
      check = (v) => Number.isSafeInteger(v);
      break;
    case 'Bool':
    case 'Boolean':
      check = (v) => typeof v === 'boolean';
      break;
    case 'Set': {
      const element = r.element === undefined ? () => false : compileConformance(r.element, common, seen);
      check = (v) => Array.isArray(v) && v.every(element);
      break;
    }
    case 'Entity': {
      const name = r.name;
      check = (v) => {
        if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
        const keys = Object.keys(v);
        if (keys.length !== 1 || keys[0] !== '__entity') return false;
        const uid = (v as { __entity: unknown }).__entity as { type?: unknown; id?: unknown } | null;
        return typeof uid === 'object' && uid !== null && uid.type === name && typeof uid.id === 'string' && Object.keys(uid).length === 2;
      };
      break;
    }
    case 'Record': {
      if (r.additionalAttributes === true) {
        check = () => false;
        break;
      }
      const attributes = new Map<string, Conformance>();
      const required: string[] = [];
      // Registered before the attributes compile so that recursive types terminate.
      let body: Conformance = () => false;
      check = (v) => body(v);
      seen.set(r, check);
      for (const [name, a] of Object.entries(r.attributes ?? {})) {
        attributes.set(name, compileConformance(a, common, seen));
        if (a.required !== false) required.push(name);
      }
      body = (v) => {
        if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
        const src = v as Record<string, Json>;
        if ('__entity' in src || '__extn' in src) return false; // Cedar's escapes, not a record
        for (const key in src) {
          const value = src[key];
          if (value === undefined) continue; // JSON.stringify drops it: absent to Cedar
          const attr = attributes.get(key);
          if (attr === undefined || !attr(value)) return false;
        }
        for (const name of required) if (src[name] === undefined) return false;
        return true;
      };
      return check;
    }
    default:
      check = () => false; // extension types (decimal, ipaddr, datetime, duration) and anything unknown
  }
  seen.set(r, check);
  return check;
}

/**
 * For an action whose context has a `body` (a route with body: true): whether a context Cedar
 * refused fails in its body alone, the part the caller wrote, while the rest, which Mandate
 * builds, is proven to conform. Cedar's refusal names no attribute, so this tells a caller's
 * mistake (bad_request) from a configuration that does not match the schema (internal_error).
 */
export function compileBodyBlame(t: SchemaType, common: CommonTypes): ((context: Record<string, Json>) => boolean) | undefined {
  const r = resolveType(t, common);
  const body = r.attributes?.['body'];
  if (primitiveName(r.type) !== 'Record' || body === undefined) return undefined;
  const rest = Object.fromEntries(Object.entries(r.attributes ?? {}).filter(([name]) => name !== 'body'));
  const bodyConforms = compileConformance(body, common);
  const restConforms = compileConformance({ ...r, attributes: rest }, common);
  return (context) => {
    const { body: value, ...others } = context;
    return !bodyConforms(value as Json) && restConforms(others);
  };
}

/** Whether every number in a value is a Long cedar-wasm can take exactly (a safe integer). */
export function holdsOnlyLongs(value: Json): boolean {
  if (typeof value === 'number') return Number.isSafeInteger(value);
  if (typeof value !== 'object' || value === null) return true;
  if (Array.isArray(value)) return value.every(holdsOnlyLongs);
  for (const key in value as Record<string, Json>) if (!holdsOnlyLongs((value as Record<string, Json>)[key] as Json)) return false;
  return true;
}
