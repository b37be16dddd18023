// Pinned MCP tools in the config (`tools:` on an MCP route, src/config/tools.ts): what is read,
// and each refusal with the field and file it names.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, parseConfig } from '../../src/config/load.js';
import { validate, type Schema } from '../../src/json/schema.js';
import { kPackageRoot } from '../../src/package-root.js';

const dir = mkdtempSync(join(tmpdir(), 'mandate-tools-'));
const file = (name: string, doc: unknown): string => {
  writeFileSync(join(dir, name), typeof doc === 'string' ? doc : JSON.stringify(doc));
  return name;
};
const mcpRoute = (tools: string) => ({ policies: './p', routes: [{ method: 'GET', path: '/' }, { method: 'POST', path: '/mcp', protocol: 'mcp', server: 'support', tools }] });
const GET_TICKET = { name: 'get_ticket', inputSchema: { type: 'object', properties: { ticketId: { type: 'string' } }, required: ['ticketId'] } };

describe('config: pinned MCP tools', () => {
  it('reads a tools/list result, or the JSON-RPC answer that carries one, relative to the config', () => {
    for (const doc of [{ tools: [GET_TICKET] }, { jsonrpc: '2.0', id: 1, result: { tools: [GET_TICKET], nextCursor: null } }]) {
      const config = parseConfig(mcpRoute(file('list.json', doc)), dir, null);
      const pinned = config.routes[1]?.mcp?.tools;
      assert.equal(pinned?.file, join(dir, 'list.json'));
      assert.deepEqual([...(pinned?.tools.keys() ?? [])], ['get_ticket']);
      const schema = pinned?.tools.get('get_ticket')?.schema as Schema;
      assert.equal(validate(schema, { ticketId: 'T-1' }, 'a'), null);
      assert.equal(validate(schema, { ticketId: 1 }, 'a'), 'a.ticketId must be a string (got an integer)');
    }
    assert.equal(parseConfig(mcpRoute(file('list.json', { tools: [] })), dir, null).routes[1]?.mcp?.tools?.tools.size, 0);
    const unpinned = parseConfig({ policies: './p', routes: [{ method: 'POST', path: '/mcp', protocol: 'mcp', server: 'support' }] }, dir, null);
    assert.equal(unpinned.routes[0]?.mcp?.tools, null);
  });

  const refusals: [string, () => unknown, RegExp][] = [
    ['tools on an HTTP route', () => ({ policies: './p', routes: [{ method: 'GET', path: '/', tools: file('ok.json', { tools: [GET_TICKET] }) }] }), /^config\.routes\[0\]\.server: only MCP routes \(protocol: mcp\) take server, mcpDenyStatus and tools/],
    ['a file that is not there', () => mcpRoute('missing.json'), /^config\.routes\[1\]\.tools: cannot read the tool list .*missing\.json/],
    ['a file that is not JSON', () => mcpRoute(file('bad.json', 'tools: []')), /^config\.routes\[1\]\.tools: .*bad\.json is not JSON Mandate can read/],
    ['a document without a tools array', () => mcpRoute(file('nolist.json', { result: {} })), /is not a tools\/list result: it needs a "tools" array/],
    ['a tool without a name', () => mcpRoute(file('noname.json', { tools: [{ inputSchema: { type: 'object' } }] })), /tools\[0\] needs a name/],
    ['a tool listed twice', () => mcpRoute(file('twice.json', { tools: [GET_TICKET, GET_TICKET] })), /tools\[1\]: the tool "get_ticket" is listed twice/],
    ['a tool without an inputSchema', () => mcpRoute(file('noschema.json', { tools: [{ name: 'x' }] })), /tools\[0\] \("x"\) needs an inputSchema of type "object"/],
    ['an inputSchema that is not of type object', () => mcpRoute(file('notobject.json', { tools: [{ name: 'x', inputSchema: { type: 'string' } }] })), /needs an inputSchema of type "object"/],
    ['an inputSchema with a keyword whose types are not enforced', () => mcpRoute(file('if.json', { tools: [{ name: 'x', inputSchema: { type: 'object', properties: { a: { if: {} } } } }] })), /tools\[0\] \("x"\) inputSchema \/properties\/a\/if: "if" decides types in a way Mandate does not enforce/],
    ['an inputSchema with a $ref to another document', () => mcpRoute(file('remote.json', { tools: [{ name: 'x', inputSchema: { type: 'object', $ref: 'other.json#/a' } }] })), /inputSchema \/\$ref: only a JSON pointer into this document/],
    ['an x-mcp-header that is not a header name', () => mcpRoute(file('hdr-token.json', { tools: [{ name: 'x', inputSchema: { type: 'object', properties: { a: { type: 'string', 'x-mcp-header': 'Bad Name' } } } }] })), /inputSchema \/properties\/a\/x-mcp-header: must be an HTTP header name token/],
    ['two x-mcp-header names that differ only by case', () => mcpRoute(file('hdr-twice.json', { tools: [{ name: 'x', inputSchema: { type: 'object', properties: { a: { type: 'string', 'x-mcp-header': 'Region' }, b: { type: 'string', 'x-mcp-header': 'region' } } } }] })), /\/properties\/b\/x-mcp-header: "region" names a header another property already mirrors/],
    ['an x-mcp-header on a property that is not of one primitive type', () => mcpRoute(file('hdr-object.json', { tools: [{ name: 'x', inputSchema: { type: 'object', properties: { a: { type: 'object', 'x-mcp-header': 'A' } } } }] })), /\/properties\/a\/x-mcp-header: is only for a property of one type/],
  ];
  for (const [name, config, message] of refusals) {
    it(`refuses ${name}`, () => {
      assert.throws(() => parseConfig(config(), dir, null), (err: unknown) => err instanceof ConfigError && message.test(err.message));
    });
  }
});

describe('config: mirrored arguments (SEP-2243 x-mcp-header)', () => {
  it('collects them at any depth, through local $refs, with their type (or that type or null)', () => {
    const inputSchema = {
      type: 'object',
      properties: {
        region: { type: 'string', 'x-mcp-header': 'Region' },
        limit: { type: ['integer', 'null'], 'x-mcp-header': 'Limit' },
        target: { $ref: '#/$defs/Target' },
        plain: { type: 'string' },
      },
      $defs: { Target: { type: 'object', properties: { account: { type: 'string', 'x-mcp-header': 'Account' }, dry: { type: 'boolean', 'x-mcp-header': 'Dry-Run' } } } },
    };
    const config = parseConfig(mcpRoute(file('mirrored.json', { tools: [{ name: 'x', inputSchema }] })), dir, null);
    assert.deepEqual(config.routes[1]?.mcp?.tools?.tools.get('x')?.mirrored, [
      { header: 'region', path: ['region'], type: 'string' },
      { header: 'limit', path: ['limit'], type: 'integer' },
      { header: 'account', path: ['target', 'account'], type: 'string' },
      { header: 'dry-run', path: ['target', 'dry'], type: 'boolean' },
    ]);
  });
});

describe("the example's pinned tool list (examples/agent-gateway/support-tools.json)", () => {
  it('loads, and pins exactly the support tools of the example registry', () => {
    const example = join(kPackageRoot, 'examples/agent-gateway');
    const config = parseConfig({ policies: './policies', routes: [{ method: 'POST', path: '/mcp', protocol: 'mcp', server: 'support', tools: './support-tools.json' }] }, example, null);
    const pinned = [...(config.routes[0]?.mcp?.tools?.tools.keys() ?? [])].map((name) => `support/${name}`).sort();
    const entities = JSON.parse(readFileSync(join(example, 'entities.json'), 'utf8')) as { uid: { type: string; id: string } }[];
    const registry = entities.filter((e) => e.uid.type === 'Tool' && e.uid.id.startsWith('support/')).map((e) => e.uid.id).sort();
    assert.deepEqual(pinned, registry);
    const getTicket = config.routes[0]?.mcp?.tools?.tools.get('get_ticket')?.schema as Schema;
    assert.equal(validate(getTicket, { ticketId: 'T-1042', expand: ['comments'], limit: 20 }, 'a'), null);
    assert.equal(validate(getTicket, { ticketId: ['internal-0'] }, 'a'), 'a.ticketId must be a string (got an array)');
  });
});
