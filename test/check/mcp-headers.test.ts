// SEP-2243's mirrored header values (src/check/mcp-headers.ts): the =?base64?...?= form, and
// when a Mcp-Param header says the same as the argument it mirrors.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeMirrored, mirroredMismatch, mirrorsArgument } from '../../src/check/mcp-headers.js';
import type { PinnedTool } from '../../src/config/tools.js';

const b64 = (s: string): string => `=?base64?${Buffer.from(s, 'utf8').toString('base64')}?=`;

describe('decodeMirrored', () => {
  it('takes a plain value as it is, and decodes the sentinel form', () => {
    assert.equal(decodeMirrored('eu-west-1'), 'eu-west-1');
    assert.equal(decodeMirrored(b64('tööl')), 'tööl');
    assert.equal(decodeMirrored(b64(' padded ')), ' padded ');
    assert.equal(decodeMirrored(b64('=?base64?x?=')), '=?base64?x?=');
    assert.equal(decodeMirrored('=?base64??='), '');
  });

  it('reads markers of another case, or half a sentinel, as plain text', () => {
    for (const v of ['=?BASE64?SGVsbG8=?=', '=?base64?SGVsbG8=', 'SGVsbG8=?=']) assert.equal(decodeMirrored(v), v);
  });

  it('refuses a sentinel whose content is not canonical Base64 of UTF-8', () => {
    for (const v of ['=?base64?SGVsbG8?=', '=?base64?SGVsbG8*?=', '=?base64?SGVs bG8=?=', `=?base64?${Buffer.from([0xff, 0xfe]).toString('base64')}?=`]) assert.equal(decodeMirrored(v), null, v);
  });
});

describe('mirrorsArgument', () => {
  it('compares strings exactly, booleans as true/false, numbers as numbers', () => {
    assert.ok(mirrorsArgument('eu', 'eu', 'string'));
    assert.ok(!mirrorsArgument('EU', 'eu', 'string'));
    assert.ok(!mirrorsArgument('5', 5, 'string'));
    assert.ok(mirrorsArgument('true', true, 'boolean'));
    assert.ok(!mirrorsArgument('True', true, 'boolean'));
    assert.ok(!mirrorsArgument('1', true, 'boolean'));
    assert.ok(!mirrorsArgument('true', 'true', 'boolean'));
    assert.ok(mirrorsArgument('42', 42, 'integer'));
    assert.ok(mirrorsArgument('-7', -7, 'integer'));
    for (const h of ['42.0', '4.2e1', '042', '+42', ' 42', '0x2a', '']) assert.ok(!mirrorsArgument(h, 42, 'integer'), h);
    assert.ok(mirrorsArgument('0.1', 0.1, 'number'));
    assert.ok(mirrorsArgument('1e3', 1000, 'number'));
    assert.ok(mirrorsArgument('0.30000000000000004', 0.3, 'number'), 'within 1e-9, as SEP-2243 advises');
    assert.ok(!mirrorsArgument('0.31', 0.3, 'number'));
    assert.ok(!mirrorsArgument('NaN', Number.NaN, 'number'));
  });
});

describe('mirroredMismatch', () => {
  const tool: PinnedTool = {
    schema: true,
    mirrored: [
      { header: 'region', path: ['region'], type: 'string' },
      { header: 'account', path: ['target', 'account'], type: 'string' },
    ],
  };
  const check = (args: Record<string, unknown>, headers: Record<string, string>) => mirroredMismatch(tool, args as never, new Map(Object.entries(headers)));

  it('passes matching headers, and arguments sent without their header', () => {
    assert.equal(check({ region: 'eu', target: { account: 'a-1' } }, { 'mcp-param-region': 'eu', 'mcp-param-account': 'a-1', 'mcp-name': 'x' }), null);
    assert.equal(check({ region: 'eu' }, {}), null);
    assert.equal(check({ region: 'Zürich' }, { 'mcp-param-region': b64('Zürich') }), null);
  });

  it('refuses a header that disagrees, names nothing mirrored, or mirrors an absent or null argument', () => {
    assert.match(check({ region: 'eu' }, { 'mcp-param-region': 'us' }) ?? '', /Mcp-Param-region header does not match params\.arguments\.region/);
    assert.match(check({ region: 'eu' }, { 'mcp-param-tenant': 'acme' }) ?? '', /Mcp-Param-tenant header names no argument this tool mirrors/);
    assert.match(check({}, { 'mcp-param-region': 'eu' }) ?? '', /params\.arguments\.region, which the body does not set/);
    assert.match(check({ region: null }, { 'mcp-param-region': 'null' }) ?? '', /which the body does not set/);
    assert.match(check({ target: 'a-1' }, { 'mcp-param-account': 'a-1' }) ?? '', /params\.arguments\.target\.account, which the body does not set/);
    assert.match(check({ region: 'eu' }, { 'mcp-param-region': '=?base64?@@?=' }) ?? '', /no valid Base64/);
  });
});
