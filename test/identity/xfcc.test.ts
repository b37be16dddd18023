import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseXfcc } from '../../src/identity/xfcc.js';

describe('parseXfcc', () => {
  const parsed: [string, string, [string, string][][]][] = [
    ['one element', 'By=spiffe://example.org/gw;URI=spiffe://example.org/agent', [[['By', 'spiffe://example.org/gw'], ['URI', 'spiffe://example.org/agent']]]],
    [
      'a quoted subject with commas and equals signs',
      'Hash=abc;Subject="CN=agent,OU=support,O=Example";URI=spiffe://example.org/agent',
      [[['Hash', 'abc'], ['Subject', 'CN=agent,OU=support,O=Example'], ['URI', 'spiffe://example.org/agent']]],
    ],
    ['escaped quotes and backslashes inside a quoted value', 'Subject="CN=a \\"b\\" \\\\ c";URI=spiffe://x/y', [[['Subject', 'CN=a "b" \\ c'], ['URI', 'spiffe://x/y']]]],
    [
      'two elements, as after two proxies',
      'By=spiffe://a/gw1;URI=spiffe://a/client,By=spiffe://a/gw2;URI=spiffe://a/gw1',
      [[['By', 'spiffe://a/gw1'], ['URI', 'spiffe://a/client']], [['By', 'spiffe://a/gw2'], ['URI', 'spiffe://a/gw1']]],
    ],
    ['spaces after separators', 'By=x; URI=spiffe://a/b, By=y; URI=spiffe://a/c', [[['By', 'x'], ['URI', 'spiffe://a/b']], [['By', 'y'], ['URI', 'spiffe://a/c']]]],
    ['a URL-encoded certificate', 'Cert="-----BEGIN%20CERTIFICATE-----%0AMII%0A-----END%20CERTIFICATE-----%0A";URI=spiffe://a/b', [[['Cert', '-----BEGIN%20CERTIFICATE-----%0AMII%0A-----END%20CERTIFICATE-----%0A'], ['URI', 'spiffe://a/b']]]],
  ];
  for (const [name, header, expected] of parsed) {
    it(`parses ${name}`, () => {
      const elements = parseXfcc(header);
      assert.ok(elements !== null);
      assert.deepEqual(elements.map((e) => e.pairs), expected);
    });
  }

  it('finds every value of a key in an element, case-insensitively', () => {
    const [e] = parseXfcc('URI=spiffe://a/one;uri=spiffe://a/two;DNS=a.example') ?? [];
    assert.deepEqual(e?.values('URI'), ['spiffe://a/one', 'spiffe://a/two']);
  });

  const malformed: [string, string][] = [
    ['empty', ''],
    ['no equals sign', 'URI'],
    ['an unterminated quote', 'Subject="CN=a;URI=spiffe://a/b'],
    ['a quote inside an unquoted value', 'URI=spiffe://a/"b"'],
    ['an equals sign inside an unquoted value', 'Subject=CN=a;URI=spiffe://a/b'],
    ['a trailing separator', 'URI=spiffe://a/b;'],
    ['a trailing comma', 'URI=spiffe://a/b,'],
    ['garbage after a quoted value', 'Subject="CN=a"x;URI=spiffe://a/b'],
    ['an empty key', '=x'],
  ];
  for (const [name, header] of malformed) {
    it(`refuses ${name}`, () => assert.equal(parseXfcc(header), null));
  }
});
