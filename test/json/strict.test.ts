// The strict JSON reader (src/check/json.ts): one reading of a document or none.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { foldName, memberKey, readStrictJson, ReadNames } from '../../src/json/strict.js';

const read = (text: string, maxDepth = 16) => readStrictJson(text, { maxDepth });

describe('readStrictJson reads what JSON.parse reads', () => {
  const same = [
    '{"a":1,"b":[true,false,null],"c":{"d":"e"}}',
    ' [ 1 , -2.5 , 0.1 , 1e3 , 1E-2 , "\\u00e9\\n\\"" ] ',
    '"\\ud83d\\ude00"',
    '0',
    '-0.0',
    '{"constructor":1,"toString":"x"}',
    '{"ticketId":"T-1","TicketID2":"x"}',
    '9007199254740991',
    '-9007199254740991',
    '1.5',
    '123456789.12345678',
  ];
  for (const text of same) {
    it(`reads ${text}`, () => {
      const got = read(text);
      assert.equal(got.ok, true, got.ok ? '' : got.message);
      assert.deepEqual(got.ok && got.value, JSON.parse(text) === 0 ? 0 : JSON.parse(text));
    });
  }
});

describe('readStrictJson refuses what parsers read differently', () => {
  const refused: [string, string, RegExp][] = [
    ['a duplicate name', '{"priority":"critical","priority":"low"}', /appears twice/],
    ['a duplicate name deep down', '{"a":[{"b":{"n":1,"n":2}}]}', /appears twice/],
    ['names equal but for case', '{"method":"tools/list","Method":"tools/call"}', /one name to case-insensitive parsers/],
    ['names equal under Go folding (long s)', '{"params":{},"param\u017f":{}}', /one name to case-insensitive parsers/],
    ['names equal under Go folding (Kelvin sign)', '{"kind":1,"\u212aind":2}', /one name to case-insensitive parsers/],
    ['names equal but for a zero-width space', '{"name":1,"na\u200bme":2}', /one name to case-insensitive parsers/],
    ['names equal but for a fullwidth letter', '{"name":1,"\uff4eame":2}', /one name to case-insensitive parsers/],
    ['one name in snake_case and camelCase', '{"account_id":"a","accountId":"b"}', /one name to frameworks that convert naming styles/],
    ['one name in kebab-case and SCREAMING_SNAKE_CASE', '{"account-id":"a","ACCOUNT_ID":"b"}', /one name to frameworks that convert naming styles/],
    ['a NUL in a name', '{"method\\u0000":"x"}', /control character/],
    ['__proto__', '{"__proto__":{"admin":true}}', /__proto__/],
    ['an integer beyond 2^53', '{"amountCents":9007199254740993}', /beyond/],
    ['2^53 itself', '9007199254740992', /beyond/],
    ['an integral number written with an exponent beyond 2^53', '1e16', /beyond/],
    ['a number beyond a double', '1e400', /beyond the range of a double/],
    ['a negative number beyond a double', '-1e400', /beyond the range of a double/],
    ['more digits than a double keeps', '0.10000000000000000001', /more digits/],
    ['more digits in a long fraction', '123456789.123456789', /more digits/],
    ['an unpaired high surrogate', '"\\ud800"', /unpaired surrogate/],
    ['an unpaired low surrogate in a name', '{"\\udc00":1}', /unpaired surrogate/],
    ['trailing text', '{"a":1} {"a":2}', /after the JSON value/],
    ['a trailing comma', '{"a":1,}', /expected a member name/],
    ['a comment', '{"a":1 /* x */}', /expected/],
    ['a raw control character in a string', '"a\u0001b"', /must be escaped/],
    ['single quotes', "{'a':1}", /expected a member name/],
    ['a leading zero', '01', /after the JSON value/],
    ['a BOM', '\ufeff{}', /not valid JSON/],
    ['NaN', 'NaN', /not valid JSON/],
    ['an empty document', '', /ends too early/],
    ['nesting deeper than the limit', '[[[[[[1]]]]]]', /nested deeper than 4/],
  ];
  for (const [what, text, message] of refused) {
    it(`refuses ${what}`, () => {
      const got = readStrictJson(text, { maxDepth: what.startsWith('nesting') ? 4 : 16 });
      assert.equal(got.ok, false, `${what} was read`);
      assert.match(got.ok ? '' : got.message, message);
    });
  }

  it('says whether the text is not JSON or is JSON read differently', () => {
    const syntax = read('{"a":');
    const ambiguous = read('{"a":1,"a":1}');
    assert.equal(!syntax.ok && syntax.kind, 'syntax');
    assert.equal(!ambiguous.ok && ambiguous.kind, 'ambiguous');
  });

  it('keeps exact duplicates refused when folded duplicates are allowed (entities.json)', () => {
    assert.equal(readStrictJson('{"Name":1,"name":2}', { maxDepth: 4, foldedDuplicates: false }).ok, true);
    assert.equal(readStrictJson('{"name":1,"name":2}', { maxDepth: 4, foldedDuplicates: false }).ok, false);
  });
});

describe('foldName and ReadNames', () => {
  it('folds the way Go, Java and .NET match names', () => {
    assert.equal(foldName('METHOD'), foldName('method'));
    assert.equal(foldName('param\u017f'), 'params');
    assert.equal(foldName('\u212aey'), 'key');
    assert.equal(foldName('stra\u00dfe'), foldName('STRA\u1e9eE'));
    assert.notEqual(foldName('ticketId'), foldName('ticketIds'));
  });

  it('takes names that differ by naming style for one (Rails key conversion, Pydantic aliases), and only those', () => {
    for (const spelling of ['accountId', 'AccountId', 'account-id', 'ACCOUNT_ID', 'account__id', 'Account_ID']) assert.equal(memberKey(spelling), memberKey('account_id'), spelling);
    // A leading or trailing "_" is no word break: no naming style adds or drops it.
    assert.notEqual(memberKey('_meta'), memberKey('meta'));
    assert.notEqual(memberKey('id_'), memberKey('id'));
    assert.notEqual(memberKey('ticketId'), memberKey('ticketIds'));
    const names = new ReadNames(['account_id', '_meta']);
    assert.equal(names.aliasOf('accountId'), 'account_id');
    assert.equal(names.aliasOf('account-id'), 'account_id');
    assert.equal(names.aliasOf('account_id'), null);
    assert.equal(names.aliasOf('meta'), null);
    assert.match(names.findAlias({ accountId: 'x' }, 'body') ?? '', /body has the member "accountId", which frameworks that convert naming styles \(account_id, accountId\) read as "account_id"/);
  });

  it('flags a name spelled otherwise than one that is read, and only such a name', () => {
    const names = new ReadNames(['priority', 'ticketId']);
    assert.equal(names.aliasOf('Priority'), 'priority');
    assert.equal(names.aliasOf('PRIORITY'), 'priority');
    assert.equal(names.aliasOf('ticketid'), 'ticketId');
    assert.equal(names.aliasOf('priority'), null);
    assert.equal(names.aliasOf('summary'), null);
    assert.match(names.findAlias({ a: [{ b: { Priority: 'critical' } }] }, 'body') ?? '', /body\.a\[0\]\.b has the member "Priority"/);
    assert.equal(names.findAlias({ priority: 'low', note: { Summary: 'x' } }, 'body'), null);
  });
});
