import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isJsonContentType, parseJsonBody } from '../../src/check/body.js';

describe('parseJsonBody', () => {
  const converted: [string, unknown][] = [
    ['{"a":1,"b":"x","c":true}', { a: 1, b: 'x', c: true }],
    ['{"a":null,"b":1}', { b: 1 }],
    ['{"price":9.99}', { price: { __extn: { fn: 'decimal', arg: '9.99' } } }],
    ['{"n":[1,2,3]}', { n: [1, 2, 3] }],
    ['{"nested":{"deep":{"x":"y"}}}', { nested: { deep: { x: 'y' } } }],
    ['"just a string"', 'just a string'],
  ];
  for (const [text, expected] of converted) {
    it(`converts ${text}`, () => {
      assert.deepEqual(parseJsonBody(text, 1024, 8), { ok: true, value: expected });
    });
  }

  const refused: [string | Uint8Array, string][] = [
    ['{"a":', 'body is not valid JSON: the JSON ends too early (at offset 5)'],
    ['null', 'body is JSON null'],
    ['{"a":1.23456}', 'body.a is a number with more than 4 fractional digits, which Cedar cannot represent'],
    ['{"a":12345678901234567890}', 'body is refused: the number 12345678901234567890 is an integer beyond ±(2^53 - 1), which parsers read differently (at offset 5)'],
    ['{"a":[1,null]}', 'body.a[1] is null, which a Cedar set cannot hold'],
    ['{"a":{"__entity":{"type":"Group","id":"admins"}}}', 'body.a has the reserved key "__entity"'],
    ['{"__extn":{"fn":"ip","arg":"10.0.0.1"}}', 'body has the reserved key "__extn"'],
    [`${'['.repeat(20)}${']'.repeat(20)}`, 'body is refused: nested deeper than 8 levels (at offset 8)'],
    [new Uint8Array([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]), 'body is not valid UTF-8'],
    ['x'.repeat(2000), 'body is larger than 1024 bytes'],
  ];
  for (const [body, message] of refused) {
    it(`refuses: ${message}`, () => {
      assert.deepEqual(parseJsonBody(body, 1024, 8), { ok: false, code: 'bad_request', message });
    });
  }
});

describe('isJsonContentType', () => {
  const cases: [string | undefined, boolean][] = [
    ['application/json', true],
    ['application/json; charset=utf-8', true],
    ['Application/JSON', true],
    ['application/problem+json', true],
    ['application/jsonx', false],
    ['text/plain', false],
    ['application/json,text/plain', false],
    [undefined, false],
  ];
  for (const [type, expected] of cases) {
    it(`${String(type)} is ${expected ? '' : 'not '}JSON`, () => assert.equal(isJsonContentType(type), expected));
  }
});
