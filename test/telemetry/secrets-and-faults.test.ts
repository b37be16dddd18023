// No secret reaches any output, and telemetry faults never hold a decision up.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { makeTrustDomain, mint } from '../helpers/jwt.js';
import { SUPPORT_AGENT, checkRequest } from '../helpers/requests.js';
import { exampleWith, runCli, spawnServer } from '../helpers/server.js';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createTasksClient } from '../helpers/tasks.js';
import { createCheckClient } from '../helpers/upstream.js';
import { mcpRequest, toolCall } from '../helpers/mcp.js';

describe('secrets', () => {
  it('never writes a JWT-SVID, a task token, a cookie or an authorization header to any output', async () => {
    const td = makeTrustDomain('example.org');
    const { dir, config } = exampleWith(
      {
        identity: 'identity:\n  jwtSvid:\n    audiences: [mandate]\n  bundles:\n    - { trustDomain: example.org, file: ./example.org.json }\n',
        decisionLog: 'decisionLog:\n  sink: ./decisions.jsonl\n  input: true\n',
      },
      { 'example.org.json': td.bundle() },
    );
    const server = await spawnServer(['--config', config]);
    const svid = await mint({ key: td.keys[0]!, sub: SUPPORT_AGENT });
    const tasks = createTasksClient(server.address);
    const check = createCheckClient(server.address);
    const secrets: string[] = [svid, 'session-cookie-value-7f3a'];
    try {
      const { token } = await tasks.call<{ token: string }>('StartTask', { purpose: 'secret scan', tenant: 'acme', tools: ['tickets.read', 'support/get_ticket'] }, svid);
      secrets.push(token);
      const headers = { authorization: `Bearer ${svid}`, cookie: 'session=session-cookie-value-7f3a', 'txn-token': token, 'x-tenant-id': 'acme' };
      await check.check(checkRequest('GET', '/tickets/T-1', { headers }));
      await check.check(checkRequest('GET', '/tickets/internal-0', { headers }));
      await check.check(checkRequest('POST', '/tickets/T-1/comments', { headers }));
      await check.check(mcpRequest(toolCall(1, 'get_ticket', { ticketId: 'T-1' }), { principal: SUPPORT_AGENT, token, headers: { cookie: headers.cookie } }));
      await check.check(checkRequest('GET', '/tickets/T-1', { headers: { ...headers, authorization: `Bearer ${svid}x` } }));
    } finally {
      tasks.close();
      check.close();
      server.child.kill('SIGTERM');
      await server.exited;
    }
    const log = readFileSync(join(dir, 'decisions.jsonl'), 'utf8');
    assert.ok(log.split('\n').filter(Boolean).length >= 5, 'the run was logged, with inputs');
    assert.match(log, /"input":/);
    for (const output of [log, server.stdout(), server.stderr()]) {
      for (const secret of secrets) {
        // The whole token, and each of its parts (a signature alone is a secret too).
        for (const part of [secret, ...secret.split('.').filter((p) => p.length > 20)]) assert.ok(!output.includes(part), 'a secret reached an output');
      }
    }
  });
});

describe('telemetry faults', () => {
  it('keeps deciding at full speed while the OTLP collector is down', async () => {
    const server = await spawnServer([], { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9', OTEL_BSP_SCHEDULE_DELAY: '10' });
    const client = createCheckClient(server.address);
    try {
      const started = Date.now();
      const results = await Promise.all(Array.from({ length: 100 }, () => client.check(checkRequest('GET', '/tickets/T-1', { principal: SUPPORT_AGENT }), 2000)));
      assert.ok(results.every((r) => (r.status?.code ?? 0) === 0));
      assert.ok(Date.now() - started < 10_000, 'no decision waited for the exporter');
      assert.match(server.stderr(), /"msg":"listening"/);
    } finally {
      client.close();
      server.child.kill('SIGTERM');
      assert.equal(await server.exited, 0);
    }
  });
});

describe('OTLP protocol', () => {
  /** A collector that records the content type of each trace export it receives. */
  async function collector(): Promise<{ url: string; types: string[]; close(): Promise<void> }> {
    const types: string[] = [];
    const server = createServer((req, res) => {
      if (req.url === '/v1/traces') types.push(String(req.headers['content-type']));
      req.resume();
      req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, types, close: () => new Promise((r) => server.close(() => r())) };
  }

  for (const [protocol, contentType] of [
    [undefined, 'application/x-protobuf'],
    ['http/protobuf', 'application/x-protobuf'],
    ['http/json', 'application/json'],
  ] as const) {
    it(`exports spans as ${contentType} when OTEL_EXPORTER_OTLP_PROTOCOL is ${protocol ?? 'unset'}`, async () => {
      const c = await collector();
      const server = await spawnServer([], { OTEL_EXPORTER_OTLP_ENDPOINT: c.url, OTEL_BSP_SCHEDULE_DELAY: '10', ...(protocol === undefined ? {} : { OTEL_EXPORTER_OTLP_PROTOCOL: protocol }) });
      const client = createCheckClient(server.address);
      try {
        await client.check(checkRequest('GET', '/tickets/T-1', { principal: SUPPORT_AGENT }));
        for (let i = 0; i < 100 && c.types.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
        assert.ok(c.types.length > 0, 'the collector received spans');
        assert.ok(c.types.every((t) => t.startsWith(contentType)), c.types.join(', '));
      } finally {
        client.close();
        server.child.kill('SIGTERM');
        await server.exited;
        await c.close();
      }
    });
  }

  it('refuses grpc at start with one line', async () => {
    const out = await runCli(['serve', '--listen', '127.0.0.1:0', '--admin-listen', 'off'], undefined, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' });
    assert.equal(out.code, 1);
    assert.match(out.stderr, /OTEL_EXPORTER_OTLP_PROTOCOL=grpc is not supported: use http\/protobuf \(the default\) or http\/json\n$/);
    assert.doesNotMatch(out.stderr, /\n\s+at /);
  });
});
