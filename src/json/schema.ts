// The part of JSON Schema (draft 2020-12, with draft-07's spellings) that decides what JSON type
// each value of a document has: MCP tools publish their arguments as an `inputSchema`, and a
// policy reads an argument as its tool will only when both agree on that type
// (docs/tool-calls.md, "Pinned tools").
//
// Enforced: type, properties, required, additionalProperties, items, prefixItems (and draft-07's
// array form of items), enum, const, allOf, anyOf, oneOf, not, $ref to a pointer in the same
// document (#, #/$defs/..., #/definitions/...), boolean schemas.
// Refused when the schema is read, because they decide types in ways not enforced here (a
// silent pass would let a value of another type through): if/then/else, dependentSchemas,
// dependencies, patternProperties, unevaluatedProperties, unevaluatedItems, additionalItems,
// $dynamicRef, $recursiveRef, a $ref outside the document, $id below the root.
// Ignored, as any validator ignores what it does not know: annotations (title, description,
// default, examples, ...) and the keywords that only narrow values of a type already checked
// (pattern, format, minLength, minimum, multipleOf, minItems, uniqueItems, contains,
// propertyNames, dependentRequired, ...): the tool itself applies those; they never change
// which type a value is read as.

import type { JsonObject, JsonValue } from './strict.js';

/** A schema that cannot be enforced as written; `where` is a JSON pointer into it. */
export class SchemaError extends Error {
  constructor(
    readonly where: string,
    message: string,
  ) {
    super(`${where === '' ? '(the schema)' : where}: ${message}`);
  }
}

const TYPE_BITS = { null: 1, boolean: 2, object: 4, array: 8, number: 16, string: 32, integer: 64 } as const;
type TypeName = keyof typeof TYPE_BITS;
const ALL_TYPES = 127;

const REFUSED = ['if', 'then', 'else', 'dependentSchemas', 'dependencies', 'patternProperties', 'unevaluatedProperties', 'unevaluatedItems', 'additionalItems', '$dynamicRef', '$recursiveRef'];

interface Node {
  /** TYPE_BITS of the accepted types; ALL_TYPES when the schema names none. */
  readonly types: number;
  /** The types as the schema lists them, for messages: "string or null". */
  readonly typeText: string;
  readonly properties: ReadonlyMap<string, Schema> | null;
  readonly required: readonly string[];
  /** For members not in `properties`. */
  readonly additional: Schema;
  readonly prefixItems: readonly Schema[];
  /** For items past prefixItems. */
  readonly items: Schema;
  readonly enumValues: readonly JsonValue[] | null;
  readonly hasConst: boolean;
  readonly constValue: JsonValue;
  readonly allOf: readonly Schema[];
  readonly anyOf: readonly Schema[] | null;
  readonly oneOf: readonly Schema[] | null;
  readonly not: Schema | null;
  /** The schema a $ref names, filled once the whole document is read. */
  ref: Schema | null;
  readonly where: string;
}

/** A compiled schema: `true` accepts anything, `false` nothing. */
export type Schema = boolean | Node;

const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Reads `root` (a JSON Schema document) into a Schema, or throws SchemaError naming the first
 * keyword that cannot be enforced as written.
 */
export function compileSchema(root: JsonValue): Schema {
  const compiled = new Map<JsonObject, Node>();
  const refs: { node: Node; pointer: string }[] = [];

  const schemaAt = (value: JsonValue, where: string, isRoot = false): Schema => {
    if (typeof value === 'boolean') return value;
    if (!isObject(value)) throw new SchemaError(where, 'a schema is an object or a boolean');
    const seen = compiled.get(value);
    if (seen !== undefined) return seen;
    for (const k of REFUSED) if (k in value) throw new SchemaError(`${where}/${k}`, `"${k}" decides types in a way Mandate does not enforce: write the schema without it`);
    if ('$id' in value && !isRoot) throw new SchemaError(`${where}/$id`, '$id below the root changes what $ref means: not supported');
    const list = (k: string): Schema[] | null => {
      const v = value[k];
      if (v === undefined) return null;
      if (!Array.isArray(v) || v.length === 0) throw new SchemaError(`${where}/${k}`, 'must be a non-empty array of schemas');
      return v.map((s, i) => schemaAt(s, `${where}/${k}/${i}`));
    };
    const one = (k: string, absent: Schema): Schema => (value[k] === undefined ? absent : schemaAt(value[k] as JsonValue, `${where}/${k}`));

    let types = ALL_TYPES;
    let typeText = '';
    const t = value['type'];
    if (t !== undefined) {
      const names = Array.isArray(t) ? t : [t];
      if (names.length === 0) throw new SchemaError(`${where}/type`, 'names no type');
      types = 0;
      for (const n of names) {
        if (typeof n !== 'string' || !Object.hasOwn(TYPE_BITS, n)) throw new SchemaError(`${where}/type`, `${JSON.stringify(n)} is not a JSON Schema type`);
        types |= TYPE_BITS[n as TypeName];
      }
      typeText = names.join(' or ');
    }
    let properties: Map<string, Schema> | null = null;
    const p = value['properties'];
    if (p !== undefined) {
      if (!isObject(p)) throw new SchemaError(`${where}/properties`, 'must be an object of schemas');
      properties = new Map(Object.entries(p).map(([name, s]) => [name, schemaAt(s, `${where}/properties/${escapePointer(name)}`)]));
    }
    const r = value['required'] ?? [];
    if (!Array.isArray(r) || r.some((x) => typeof x !== 'string')) throw new SchemaError(`${where}/required`, 'must be an array of names');
    let prefixItems: Schema[] = list('prefixItems') ?? [];
    let items: Schema = true;
    if (Array.isArray(value['items'])) {
      // draft-07's tuple form: what 2020-12 calls prefixItems, the rest of the items free.
      if (value['prefixItems'] !== undefined) throw new SchemaError(`${where}/items`, 'an array of items beside prefixItems');
      prefixItems = list('items') ?? [];
    } else {
      items = one('items', true);
    }
    const e = value['enum'];
    if (e !== undefined && !Array.isArray(e)) throw new SchemaError(`${where}/enum`, 'must be an array');
    const ref = value['$ref'];
    const node: Node = {
      types,
      typeText,
      properties,
      required: r as string[],
      additional: true,
      prefixItems,
      items,
      enumValues: (e as JsonValue[] | undefined) ?? null,
      hasConst: 'const' in value,
      constValue: value['const'] ?? null,
      allOf: [],
      anyOf: null,
      oneOf: null,
      not: null,
      ref: null,
      where,
    };
    // Registered before its subschemas are read: a subschema may name it again.
    compiled.set(value, node);
    Object.assign(node, {
      additional: one('additionalProperties', true),
      allOf: list('allOf') ?? [],
      anyOf: list('anyOf'),
      oneOf: list('oneOf'),
      not: value['not'] === undefined ? null : one('not', true),
    });
    for (const defs of ['$defs', 'definitions']) {
      const d = value[defs];
      if (d === undefined) continue;
      if (!isObject(d)) throw new SchemaError(`${where}/${defs}`, 'must be an object of schemas');
      for (const [name, s] of Object.entries(d)) schemaAt(s, `${where}/${defs}/${escapePointer(name)}`);
    }
    if (ref !== undefined) {
      if (typeof ref !== 'string' || !(ref === '#' || ref.startsWith('#/'))) throw new SchemaError(`${where}/$ref`, 'only a JSON pointer into this document ("#/...") is supported');
      refs.push({ node, pointer: ref.slice(1) });
    }
    return node;
  };

  const top = schemaAt(root, '', true);
  for (const { node, pointer } of refs) {
    let target: JsonValue = root;
    for (const part of pointer === '' ? [] : pointer.slice(1).split('/')) {
      const key = part.replace(/~1/g, '/').replace(/~0/g, '~');
      const next: JsonValue | undefined = Array.isArray(target) ? target[Number(key)] : isObject(target) ? target[key] : undefined;
      if (next === undefined || (Array.isArray(target) && !/^(0|[1-9][0-9]*)$/.test(key))) throw new SchemaError(`${node.where}/$ref`, `"#${pointer}" names nothing in this document`);
      target = next;
    }
    node.ref = schemaAt(target, pointer);
  }
  refuseCycles(top);
  return top;
}

/**
 * A schema that reaches itself through $ref, allOf, anyOf, oneOf or not without going into a
 * member or an item would be applied forever to the same value.
 */
function refuseCycles(top: Schema): void {
  const state = new Map<Node, 1 | 2>(); // 1: on the current path, 2: done
  const visit = (s: Schema): void => {
    if (typeof s === 'boolean' || state.get(s) === 2) return;
    if (state.get(s) === 1) throw new SchemaError(s.where, 'this schema applies itself to the same value again ($ref loop)');
    state.set(s, 1);
    for (const next of [s.ref, s.not, ...s.allOf, ...(s.anyOf ?? []), ...(s.oneOf ?? [])]) if (next !== null) visit(next);
    state.set(s, 2);
    for (const next of [...(s.properties?.values() ?? []), s.additional, s.items, ...s.prefixItems]) visit(next);
  };
  visit(top);
}

function escapePointer(name: string): string {
  return name.replace(/~/g, '~0').replace(/\//g, '~1');
}

/** The JSON Schema type of a value; an integral number is "integer" (2020-12: 1.0 is one too). */
function typeBits(v: JsonValue): number {
  if (v === null) return TYPE_BITS.null;
  switch (typeof v) {
    case 'boolean':
      return TYPE_BITS.boolean;
    case 'string':
      return TYPE_BITS.string;
    case 'number':
      return Number.isInteger(v) ? TYPE_BITS.number | TYPE_BITS.integer : TYPE_BITS.number;
    default:
      return Array.isArray(v) ? TYPE_BITS.array : TYPE_BITS.object;
  }
}

/** What a value is, for messages: "a string", "an integer", "an object". */
export function describeType(v: JsonValue): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'an integer' : 'a number';
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

/** JSON Schema's equality: numbers by value, objects whatever their members' order. */
export function jsonEqual(a: JsonValue, b: JsonValue): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((x, i) => jsonEqual(x, b[i] as JsonValue));
  }
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => Object.hasOwn(b, k) && jsonEqual(a[k] as JsonValue, b[k] as JsonValue));
}

/**
 * Why `value` (at `path`, for the message) does not conform to `schema`, or null when it does.
 * The first reason found; the value's depth is bounded by whoever read it.
 */
export function validate(schema: Schema, value: JsonValue, path: string): string | null {
  if (schema === true) return null;
  if (schema === false) return `${path} is not allowed`;
  const bits = typeBits(value);
  if ((bits & schema.types) === 0) return `${path} must be ${article(schema.typeText)} (got ${describeType(value)})`;
  if (schema.hasConst && !jsonEqual(value, schema.constValue)) return `${path} must be ${JSON.stringify(schema.constValue)}`;
  if (schema.enumValues !== null && !schema.enumValues.some((x) => jsonEqual(value, x))) return `${path} must be one of ${JSON.stringify(schema.enumValues).slice(0, 200)}`;
  if ((bits & TYPE_BITS.object) !== 0) {
    const obj = value as JsonObject;
    for (const name of schema.required) if (!Object.hasOwn(obj, name)) return `${path} needs "${name}"`;
    for (const [name, v] of Object.entries(obj)) {
      const sub = schema.properties?.get(name) ?? schema.additional;
      const why = sub === false && !schema.properties?.has(name) ? `${path} has "${name}", which the schema does not allow` : validate(sub, v, `${path}.${name}`);
      if (why !== null) return why;
    }
  } else if ((bits & TYPE_BITS.array) !== 0) {
    const arr = value as JsonValue[];
    for (let i = 0; i < arr.length; i++) {
      const why = validate(i < schema.prefixItems.length ? (schema.prefixItems[i] as Schema) : schema.items, arr[i] as JsonValue, `${path}[${i}]`);
      if (why !== null) return why;
    }
  }
  if (schema.ref !== null) {
    const why = validate(schema.ref, value, path);
    if (why !== null) return why;
  }
  for (const s of schema.allOf) {
    const why = validate(s, value, path);
    if (why !== null) return why;
  }
  if (schema.anyOf !== null && !schema.anyOf.some((s) => validate(s, value, path) === null)) return `${path} matches none of the schemas of anyOf (${schema.where}/anyOf)`;
  if (schema.oneOf !== null) {
    const matching = schema.oneOf.filter((s) => validate(s, value, path) === null).length;
    if (matching !== 1) return `${path} matches ${matching} of the schemas of oneOf (${schema.where}/oneOf), not exactly one`;
  }
  if (schema.not !== null && validate(schema.not, value, path) === null) return `${path} matches the schema of not (${schema.where}/not)`;
  return null;
}

function article(types: string): string {
  return types.startsWith('null') ? types : /^[aeiou]/.test(types) ? `an ${types}` : `a ${types}`;
}
