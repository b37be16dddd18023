// The JSON Schema subset that pins MCP tool arguments (src/json/schema.ts): which values each
// keyword accepts, and which schemas are refused because their types would not be enforced.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileSchema, jsonEqual, SchemaError, validate, type Schema } from '../../src/json/schema.js';
import type { JsonValue } from '../../src/json/strict.js';

const valid = (schema: Schema, value: JsonValue): boolean => validate(schema, value, 'v') === null;

// One value of each JSON kind, with the types JSON Schema gives it.
const VALUES: [JsonValue, string[]][] = [
  [null, ['null']],
  [true, ['boolean']],
  [false, ['boolean']],
  [5000, ['number', 'integer']],
  [1.0, ['number', 'integer']], // 2020-12: a number with no fraction is an integer
  [-0.5, ['number']],
  ['5000', ['string']],
  ['true', ['string']],
  ['', ['string']],
  [[], ['array']],
  [['internal-0'], ['array']],
  [{}, ['object']],
  [{ a: 1 }, ['object']],
];
const TYPES = ['null', 'boolean', 'object', 'array', 'number', 'string', 'integer'];

describe('json/schema: type', () => {
  for (const type of TYPES) {
    it(`"${type}" accepts exactly the values of that type`, () => {
      const schema = compileSchema({ type });
      for (const [value, types] of VALUES) assert.equal(valid(schema, value), types.includes(type), `${JSON.stringify(value)} against ${type}`);
    });
  }

  it('a list of types accepts the values of any of them, and says what it wanted', () => {
    const schema = compileSchema({ type: ['string', 'null'] });
    for (const [value, types] of VALUES) assert.equal(valid(schema, value), types.includes('string') || types.includes('null'), JSON.stringify(value));
    assert.equal(validate(schema, 5, 'params.arguments.x'), 'params.arguments.x must be a string or null (got an integer)');
    assert.equal(validate(compileSchema({ type: 'boolean' }), 'true', 'params.arguments.dryRun'), 'params.arguments.dryRun must be a boolean (got a string)');
  });

  it('no type, true and {} accept anything; false accepts nothing', () => {
    for (const schema of [compileSchema({}), compileSchema(true), compileSchema({ description: 'anything' })]) for (const [value] of VALUES) assert.ok(valid(schema, value));
    for (const [value] of VALUES) assert.equal(validate(compileSchema(false), value, 'v'), 'v is not allowed');
  });
});

describe('json/schema: objects', () => {
  const tool = compileSchema({
    type: 'object',
    properties: { ticketId: { type: 'string' }, limit: { type: 'integer' }, dryRun: { type: 'boolean' } },
    required: ['ticketId'],
    additionalProperties: false,
  });

  it('checks each named member, the required ones, and refuses others when additionalProperties is false', () => {
    assert.ok(valid(tool, { ticketId: 'T-1' }));
    assert.ok(valid(tool, { ticketId: 'T-1', limit: 20, dryRun: true }));
    assert.equal(validate(tool, { limit: 20 }, 'args'), 'args needs "ticketId"');
    assert.equal(validate(tool, { ticketId: ['internal-0'] }, 'args'), 'args.ticketId must be a string (got an array)');
    assert.equal(validate(tool, { ticketId: 'T-1', limit: '20' }, 'args'), 'args.limit must be an integer (got a string)');
    assert.equal(validate(tool, { ticketId: 'T-1', limit: 2.5 }, 'args'), 'args.limit must be an integer (got a number)');
    assert.equal(validate(tool, { ticketId: 'T-1', dryRun: 'false' }, 'args'), 'args.dryRun must be a boolean (got a string)');
    assert.equal(validate(tool, { ticketId: null }, 'args'), 'args.ticketId must be a string (got null)');
    assert.equal(validate(tool, { ticketId: 'T-1', TicketId: 'internal-0' }, 'args'), 'args has "TicketId", which the schema does not allow');
  });

  it('lets other members through by default, and checks them against a schema of additionalProperties', () => {
    const open = compileSchema({ type: 'object', properties: { a: { type: 'string' } } });
    assert.ok(valid(open, { a: 'x', b: 1, c: [true] }));
    const typed = compileSchema({ type: 'object', additionalProperties: { type: 'number' } });
    assert.ok(valid(typed, { x: 1, y: 2.5 }));
    assert.equal(validate(typed, { x: 1, y: '2' }, 'v'), 'v.y must be a number (got a string)');
  });

  it('a member whose schema is false is refused when present, and only then', () => {
    const schema = compileSchema({ type: 'object', properties: { admin: false } });
    assert.ok(valid(schema, { other: 1 }));
    assert.equal(validate(schema, { admin: false }, 'v'), 'v.admin is not allowed');
  });

  it('object keywords say nothing about values of other types', () => {
    const schema = compileSchema({ required: ['a'], properties: { a: { type: 'string' } } });
    assert.ok(valid(schema, 'not an object'));
    assert.ok(valid(schema, [1]));
  });
});

describe('json/schema: arrays', () => {
  it('items applies to every item', () => {
    const schema = compileSchema({ type: 'array', items: { type: 'string' } });
    assert.ok(valid(schema, ['a', 'b']));
    assert.equal(validate(schema, ['a', 5], 'v'), 'v[1] must be a string (got an integer)');
  });

  it('prefixItems (and draft-07 items as a list) apply by position, items after them', () => {
    const modern = compileSchema({ type: 'array', prefixItems: [{ type: 'string' }, { type: 'integer' }], items: { type: 'boolean' } });
    assert.ok(valid(modern, ['a', 1, true, false]));
    assert.equal(validate(modern, ['a', 'b'], 'v'), 'v[1] must be an integer (got a string)');
    assert.equal(validate(modern, ['a', 1, 'x'], 'v'), 'v[2] must be a boolean (got a string)');
    const draft7 = compileSchema({ type: 'array', items: [{ type: 'string' }, { type: 'integer' }] });
    assert.ok(valid(draft7, ['a', 1, 'anything', null]));
    assert.equal(validate(draft7, [1], 'v'), 'v[0] must be a string (got an integer)');
  });
});

describe('json/schema: enum, const and equality', () => {
  it('enum and const compare as JSON values: by type, numbers by value, objects whatever their order', () => {
    const e = compileSchema({ enum: ['low', 'high', 1, null, { a: [1, 2] }] });
    for (const v of ['low', 'high', 1, 1.0, null, { a: [1, 2] }] as JsonValue[]) assert.ok(valid(e, v), JSON.stringify(v));
    for (const v of ['1', 'HIGH', true, 'null', { a: [2, 1] }, [1]] as JsonValue[]) assert.ok(!valid(e, v), JSON.stringify(v));
    const c = compileSchema({ const: { x: 1, y: 'z' } });
    assert.ok(valid(c, { y: 'z', x: 1 }));
    assert.ok(!valid(c, { x: 1, y: 'z', w: null }));
    assert.ok(!valid(c, { x: '1', y: 'z' }));
    assert.equal(validate(compileSchema({ const: true }), 'true', 'v'), 'v must be true');
  });

  it('jsonEqual tells apart what canonical JSON strings would not', () => {
    assert.ok(!jsonEqual('5000', 5000));
    assert.ok(!jsonEqual('true', true));
    assert.ok(!jsonEqual('null', null));
    assert.ok(!jsonEqual(['a'], '["a"]'));
    assert.ok(!jsonEqual({ a: 1 }, { a: 1, b: undefined as unknown as JsonValue }));
    assert.ok(jsonEqual([{ b: 1, a: [null] }], [{ a: [null], b: 1 }]));
  });
});

describe('json/schema: combinators and references', () => {
  it('anyOf: one is enough (the Optional[str] of pydantic); oneOf: exactly one; allOf: all; not: none', () => {
    const optional = compileSchema({ anyOf: [{ type: 'string' }, { type: 'null' }], default: null });
    assert.ok(valid(optional, 'x'));
    assert.ok(valid(optional, null));
    assert.match(validate(optional, 5, 'v') ?? '', /^v matches none of the schemas of anyOf/);
    const one = compileSchema({ oneOf: [{ type: 'number' }, { type: 'integer' }] });
    assert.ok(valid(one, 1.5));
    assert.match(validate(one, 2, 'v') ?? '', /^v matches 2 of the schemas of oneOf/);
    assert.match(validate(one, 'x', 'v') ?? '', /^v matches 0 of the schemas of oneOf/);
    const all = compileSchema({ allOf: [{ type: 'object', required: ['a'] }, { properties: { a: { type: 'string' } } }] });
    assert.ok(valid(all, { a: 'x' }));
    assert.equal(validate(all, { a: 1 }, 'v'), 'v.a must be a string (got an integer)');
    assert.equal(validate(all, {}, 'v'), 'v needs "a"');
    const not = compileSchema({ not: { type: 'string' } });
    assert.ok(valid(not, 1));
    assert.match(validate(not, 'x', 'v') ?? '', /^v matches the schema of not/);
  });

  it('$ref into $defs and definitions, and recursive schemas that go down a level each time', () => {
    const schema = compileSchema({
      type: 'object',
      properties: { ticket: { $ref: '#/$defs/Ticket' }, tree: { $ref: '#/definitions/Node' } },
      $defs: { Ticket: { type: 'object', properties: { id: { type: 'string' } }, required: ['id'] } },
      definitions: { Node: { type: 'object', properties: { value: { type: 'integer' }, children: { type: 'array', items: { $ref: '#/definitions/Node' } } } } },
    });
    assert.ok(valid(schema, { ticket: { id: 'T-1' }, tree: { value: 1, children: [{ value: 2, children: [] }, { value: 3 }] } }));
    assert.equal(validate(schema, { ticket: { id: 7 } }, 'v'), 'v.ticket.id must be a string (got an integer)');
    assert.equal(validate(schema, { tree: { children: [{ children: [{ value: 'x' }] }] } }, 'v'), 'v.tree.children[0].children[0].value must be an integer (got a string)');
    const root = compileSchema({ type: 'object', properties: { next: { $ref: '#' } } });
    assert.equal(validate(root, { next: { next: 5 } }, 'v'), 'v.next.next must be an object (got an integer)');
    const escaped = compileSchema({ $defs: { 'a/b~c': { type: 'string' } }, $ref: '#/$defs/a~1b~0c' });
    assert.ok(valid(escaped, 'x'));
    assert.ok(!valid(escaped, 1));
  });
});

describe('json/schema: schemas refused when read', () => {
  const refused: [string, JsonValue, string][] = [
    // Written as JSON text: an object literal with a `then` member is a thenable to the linter.
    ['if/then/else', JSON.parse('{"type":"object","properties":{"x":{"if":{"type":"string"},"then":{"minLength":1}}}}') as JsonValue, '/properties/x/if'],
    ['then alone', JSON.parse('{"then":{"type":"string"}}') as JsonValue, '/then'],
    ['dependentSchemas', { dependentSchemas: { a: { required: ['b'] } } }, '/dependentSchemas'],
    ['dependencies (draft-07)', { dependencies: { a: ['b'] } }, '/dependencies'],
    ['patternProperties', { type: 'object', patternProperties: { '^x-': { type: 'string' } } }, '/patternProperties'],
    ['unevaluatedProperties', { unevaluatedProperties: false }, '/unevaluatedProperties'],
    ['unevaluatedItems', { items: { unevaluatedItems: false } }, '/items/unevaluatedItems'],
    ['additionalItems', { items: [{ type: 'string' }], additionalItems: false }, '/additionalItems'],
    ['$dynamicRef', { $dynamicRef: '#meta' }, '/$dynamicRef'],
    ['$recursiveRef', { $recursiveRef: '#' }, '/$recursiveRef'],
    ['a $ref to another document', { $ref: 'https://example.com/schema.json' }, '/$ref'],
    ['a $ref to an anchor', { $ref: '#ticket' }, '/$ref'],
    ['a $ref that names nothing', { $ref: '#/$defs/Missing' }, '/$ref'],
    ['$id below the root', { properties: { a: { $id: 'https://example.com/a', $ref: '#/x' } } }, '/properties/a/$id'],
    ['a $ref loop', { $defs: { A: { $ref: '#/$defs/B' }, B: { anyOf: [{ $ref: '#/$defs/A' }] } }, $ref: '#/$defs/A' }, '/$defs/'],
    ['a schema that applies itself', { allOf: [{ $ref: '#' }] }, ''],
    ['an unknown type', { type: 'int' }, '/type'],
    ['an empty type list', { type: [] }, '/type'],
    ['required that is not a list of names', { required: 'a' }, '/required'],
    ['properties that is not an object', { properties: [] }, '/properties'],
    ['a subschema that is a number', { properties: { a: 5 } }, '/properties/a'],
    ['an empty anyOf', { anyOf: [] }, '/anyOf'],
    ['enum that is not a list', { enum: 'a' }, '/enum'],
  ];
  for (const [name, schema, where] of refused) {
    it(`refuses ${name}, naming where`, () => {
      assert.throws(
        () => compileSchema(schema),
        (err: unknown) => err instanceof SchemaError && err.where.startsWith(where) && (where !== '' || err.where === ''),
      );
    });
  }

  it('ignores annotations and the keywords that only narrow values of a type it checks', () => {
    const schema = compileSchema({
      $schema: 'https://json-schema.org/draft/2020-12/schema',
      title: 't',
      description: 'd',
      type: 'object',
      properties: { url: { type: 'string', format: 'uri', pattern: '^https://', maxLength: 5 }, n: { type: 'integer', minimum: 10, multipleOf: 7 } },
      propertyNames: { maxLength: 1 },
      'x-vendor': { anything: true },
    });
    // Mandate checks the types; the tool checks its narrower rules itself.
    assert.ok(valid(schema, { url: 'ftp://a-long-value', n: 3 }));
    assert.equal(validate(schema, { url: 5 }, 'v'), 'v.url must be a string (got an integer)');
  });
});
