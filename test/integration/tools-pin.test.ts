// mandate tools pin against MCP servers on loopback: a revision 2026-07-28 server (no session,
// pages), an older one (initialize, Mcp-Session-Id, answers as server-sent events, DELETE at the
// end), and lists Mandate cannot pin. The written file is what an MCP route's `tools:` loads.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { eventData, toolChanges } from '../../src/cli/tools.js';
import { parseConfig } from '../../src/config/load.js';
import { validate } from '../../src/json/schema.js';
import { copyExample, runCli } from '../helpers/server.js';

const SECRET = 'Bearer pin-secret-7f3a9c';
const GET_TICKET = { name: 'get_ticket', description: 'Read a ticket', inputSchema: { type: 'object', properties: { ticketId: { type: 'string' } }, required: ['ticketId'] } };
const WEB_FETCH = { name: 'web_fetch', inputSchema: { type: 'object', properties: { url: { type: 'string' } }, required: ['url'], additionalProperties: false } };

interface Seen {
  method: string;
  headers: IncomingMessage['headers'];
  body: Record<string, unknown> | null;
}

/** An MCP endpoint at /mcp whose behaviour `answer` decides; every request is kept in `seen`. */
async function mcpServer(answer: (req: Seen, res: ServerResponse) => void): Promise<{ url: string; seen: Seen[]; server: Server }> {
  const seen: Seen[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const s: Seen = { method: req.method ?? '', headers: req.headers, body: body === '' ? null : (JSON.parse(body) as Record<string, unknown>) };
      seen.push(s);
      if (req.headers.authorization !== SECRET) {
        res.writeHead(401).end();
        return;
      }
      answer(s, res);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`, seen, server };
}

const json = (res: ServerResponse, message: unknown, extra: Record<string, string> = {}) => res.writeHead(200, { 'content-type': 'application/json', ...extra }).end(JSON.stringify(message));
const sse = (res: ServerResponse, messages: unknown[], extra: Record<string, string> = {}) =>
  res.writeHead(200, { 'content-type': 'text/event-stream', ...extra }).end(messages.map((m) => `event: message\ndata: ${JSON.stringify(m)}\n\n`).join(''));

let modern: Awaited<ReturnType<typeof mcpServer>>;
let legacy: Awaited<ReturnType<typeof mcpServer>>;
const dir = mkdtempSync(join(tmpdir(), 'mandate-pin-'));

before(async () => {
  // Revision 2026-07-28: tools/list alone, with its headers; two pages.
  modern = await mcpServer((req, res) => {
    const body = req.body as { id: number; method: string; params?: { cursor?: string } };
    if (req.headers['mcp-protocol-version'] !== '2026-07-28' || req.headers['mcp-method'] !== body.method) return void res.writeHead(400).end();
    if (body.params?.cursor === undefined) json(res, { jsonrpc: '2.0', id: body.id, result: { tools: [GET_TICKET], nextCursor: 'page-2' } });
    else if (body.params.cursor === 'page-2') json(res, { jsonrpc: '2.0', id: body.id, result: { tools: [WEB_FETCH] } });
    else json(res, { jsonrpc: '2.0', id: body.id, error: { code: -32602, message: 'bad cursor' } });
  });
  // An older revision: initialize first, a session, answers as event streams with a
  // notification before the answer, and a DELETE to end the session.
  legacy = await mcpServer((req, res) => {
    if (req.method === 'DELETE') return void res.writeHead(req.headers['mcp-session-id'] === 'session-1' ? 200 : 404).end();
    const body = req.body as { id?: number; method: string };
    if (body.method === 'initialize') return sse(res, [{ jsonrpc: '2.0', id: body.id, result: { protocolVersion: '2025-06-18', capabilities: { tools: {} }, serverInfo: { name: 'old', version: '1' } } }], { 'mcp-session-id': 'session-1' });
    if (req.headers['mcp-session-id'] !== 'session-1') return void res.writeHead(400).end(); // what a 2026-07-28 tools/list gets
    if (body.method === 'notifications/initialized') return void res.writeHead(202).end();
    if (body.method === 'tools/list' && req.headers['mcp-protocol-version'] === '2025-06-18') {
      return sse(res, [{ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: 'listing' } }, { jsonrpc: '2.0', id: body.id, result: { tools: [GET_TICKET, WEB_FETCH] } }]);
    }
    res.writeHead(400).end();
  });
});
after(() => {
  modern.server.close();
  legacy.server.close();
});

describe('mandate tools pin', () => {
  it('pins every page of a 2026-07-28 server, in a file an MCP route loads', async () => {
    const out = join(dir, 'modern.json');
    const run = await runCli(['tools', 'pin', '--url', modern.url, '--header', `Authorization: ${SECRET}`, '--out', out]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stderr, /^pinned 2 tools of http:\/\/127\.0\.0\.1:\d+\/mcp \(MCP 2026-07-28\) in /);
    assert.deepEqual(JSON.parse(readFileSync(out, 'utf8')), { tools: [GET_TICKET, WEB_FETCH] });
    assert.deepEqual(modern.seen.map((s) => (s.body as { params: unknown }).params), [{}, { cursor: 'page-2' }]);
    const config = parseConfig({ policies: './p', routes: [{ method: 'POST', path: '/mcp', protocol: 'mcp', server: 'support', tools: out }] }, dir, null);
    const pinned = config.routes[0]?.mcp?.tools?.tools;
    assert.deepEqual([...(pinned?.keys() ?? [])], ['get_ticket', 'web_fetch']);
    assert.equal(validate(pinned?.get('web_fetch')?.schema ?? false, { url: 'https://example.net/', extra: 1 }, 'a'), 'a has "extra", which the schema does not allow');
    assert.ok(!`${run.stdout}${run.stderr}`.includes('pin-secret'), 'the header value is never printed');
    // The example with its MCP route pinned to that file validates, and says what is pinned.
    const { dir: example, config: exampleConfig } = copyExample();
    const exampleYaml = readFileSync(exampleConfig, 'utf8');
    const repinned = exampleYaml.replace('protocol: mcp, server: support, tools: ./support-tools.json }', `protocol: mcp, server: support, tools: ${out} }`);
    assert.notEqual(repinned, exampleYaml, 'the example has its MCP route where this test expects it');
    writeFileSync(exampleConfig, repinned);
    const validated = await runCli(['validate', '--config', exampleConfig]);
    assert.equal(validated.code, 0, validated.stderr);
    assert.ok(validated.stdout.includes(`  pinned tools: support 2 (${out})\n`), validated.stdout);
    rmSync(example, { recursive: true, force: true });
  });

  it('falls back to initialize and a session for an older server, reads event streams, and ends the session', async () => {
    const run = await runCli(['tools', 'pin', '--url', legacy.url, '--header', `Authorization: ${SECRET}`]);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(JSON.parse(run.stdout), { tools: [GET_TICKET, WEB_FETCH] });
    const methods = legacy.seen.map((s) => (s.method === 'DELETE' ? 'DELETE' : (s.body as { method: string }).method));
    assert.deepEqual(methods, ['tools/list', 'initialize', 'notifications/initialized', 'tools/list', 'DELETE']);
    assert.equal(legacy.seen.at(-1)?.headers['mcp-session-id'], 'session-1');
  });

  const refusals: [string, () => Promise<string[]>, RegExp][] = [
    ['a server that wants credentials it was not given', async () => ['--url', modern.url], /tools\/list: HTTP 401|initialize: HTTP 401/],
    ['a server that is not there', async () => ['--url', 'http://127.0.0.1:1/mcp', '--header', `Authorization: ${SECRET}`], /^mandate tools pin: http:\/\/127\.0\.0\.1:1\/mcp: tools\/list: /],
    [
      'a list with an inputSchema Mandate cannot enforce',
      async () => {
        const s = await mcpServer((req, res) => json(res, { jsonrpc: '2.0', id: (req.body as { id: number }).id, result: { tools: [{ name: 'x', inputSchema: { type: 'object', patternProperties: { '^a': {} } } }] } }));
        after(() => s.server.close());
        return ['--url', s.url, '--header', `Authorization: ${SECRET}`];
      },
      /the list cannot be pinned as it is: .* tools\[0\] \("x"\) inputSchema \/patternProperties: "patternProperties" decides types/,
    ],
    [
      'a server whose pages go round',
      async () => {
        const s = await mcpServer((req, res) => json(res, { jsonrpc: '2.0', id: (req.body as { id: number }).id, result: { tools: [], nextCursor: 'again' } }));
        after(() => s.server.close());
        return ['--url', s.url, '--header', `Authorization: ${SECRET}`];
      },
      /a cursor it had answered before/,
    ],
  ];
  for (const [name, args, message] of refusals) {
    it(`refuses ${name}: exit 1, one line, no file`, async () => {
      const out = join(dir, `refused-${name.length}.json`);
      const run = await runCli(['tools', 'pin', ...(await args()), '--out', out]);
      assert.equal(run.code, 1);
      assert.match(run.stderr, message);
      assert.equal(run.stderr.trim().split('\n').length, 1);
      assert.ok(!existsSync(out));
    });
  }

  it('refuses a usage mistake with the usage', async () => {
    for (const args of [['tools'], ['tools', 'pin'], ['tools', 'pin', '--url', 'ftp://x/'], ['tools', 'pin', '--url', modern.url, '--header', 'no-colon']]) {
      const run = await runCli(args);
      assert.equal(run.code, 1, args.join(' '));
      assert.match(run.stderr, /^mandate tools: .*\nusage:\n {2}mandate tools pin +--url/);
    }
  });
});

describe('mandate tools diff', () => {
  it('exits 0 when the server lists the pinned tools, in whatever order', async () => {
    const pinned = join(dir, 'diff-same.json');
    writeFileSync(pinned, JSON.stringify({ tools: [WEB_FETCH, GET_TICKET] }));
    const run = await runCli(['tools', 'diff', '--url', modern.url, '--header', `Authorization: ${SECRET}`, '--pinned', pinned]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, '');
    assert.match(run.stderr, /^the 2 tools of http:\/\/127\.0\.0\.1:\d+\/mcp are the pinned ones\n$/);
  });

  it('exits 2 with one line per change when the server changed its tools since they were pinned', async () => {
    const pinned = join(dir, 'diff-changed.json');
    // Pinned: an older description of get_ticket, a tool the server no longer lists, not web_fetch.
    writeFileSync(pinned, JSON.stringify({ tools: [{ ...GET_TICKET, description: 'Read a ticket (reviewed)' }, { name: 'retired', inputSchema: { type: 'object' } }] }));
    const run = await runCli(['tools', 'diff', '--url', legacy.url, '--header', `Authorization: ${SECRET}`, '--pinned', pinned]);
    assert.equal(run.code, 2, run.stderr);
    assert.deepEqual(run.stdout.trimEnd().split('\n'), ['~ get_ticket: description changed', '+ web_fetch', '- retired']);
  });

  it('refuses a pinned file it cannot read as a tool list, and a usage mistake', async () => {
    const notList = join(dir, 'diff-not-a-list.json');
    writeFileSync(notList, '{"tool": []}');
    const bad = await runCli(['tools', 'diff', '--url', modern.url, '--pinned', notList]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^mandate tools diff: .*diff-not-a-list\.json is not a tools\/list result\n$/);
    const missing = await runCli(['tools', 'diff', '--url', modern.url]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^mandate tools: diff needs --pinned FILE\n/);
  });

  it('toolChanges: every top-level field, a field only on one side, and entries without a name', () => {
    const schema = { type: 'object', properties: { a: { type: 'string' } } };
    const before = [{ name: 't', inputSchema: schema, annotations: { readOnlyHint: true } }, { name: 'same', inputSchema: schema }, 'junk'];
    const after = [{ name: 't', inputSchema: { ...schema, properties: { a: { type: 'integer' } } }, title: 'T' }, { inputSchema: schema, name: 'same' }, { nameless: true }];
    assert.deepEqual(toolChanges(before as never, after as never), ['? pinned tools[2] has no name', '? listed tools[2] has no name', '~ t: annotations changed', '~ t: inputSchema changed', '~ t: title changed']);
    assert.deepEqual(toolChanges([{ name: 'x', description: null }] as never, [{ name: 'x' }] as never), ['~ x: description changed']);
  });
});

describe('eventData', () => {
  it('joins the data lines of each event, whatever the line ends, and skips events without data', () => {
    assert.deepEqual(eventData('event: message\ndata: {"a":\ndata: 1}\n\n: comment\n\nid: 3\r\ndata:{"b":2}\r\n\r\n'), ['{"a":\n1}', '{"b":2}']);
  });
});
