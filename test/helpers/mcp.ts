// CheckRequests for the example's MCP endpoint (POST /mcp), as Envoy sends them with the body.

import { SUPPORT_AGENT } from './requests.js';

export interface McpRequestOptions {
  principal?: string;
  headers?: Record<string, string>;
  raw?: Uint8Array;
  token?: string | null;
  protocolVersion?: string;
}

export function mcpRequest(body: unknown, options: McpRequestOptions = {}): Record<string, unknown> {
  const raw = options.raw ?? Buffer.from(JSON.stringify(body));
  const headers: Record<string, string> = {
    ':path': '/mcp',
    ':method': 'POST',
    'content-type': 'application/json',
    'content-length': String(raw.length),
    'mcp-protocol-version': options.protocolVersion ?? '2026-07-28',
    'x-tenant-id': 'acme',
    ...options.headers,
  };
  if (options.token) headers['txn-token'] = options.token;
  return {
    attributes: {
      source: { principal: options.principal ?? SUPPORT_AGENT },
      request: { http: { method: 'POST', path: '/mcp', host: 'tools.example.org', scheme: 'https', headers, rawBody: raw } },
    },
  };
}

export function toolCall(id: number | string, name: string, args: unknown): Record<string, unknown> {
  return { jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } };
}

export interface RpcDeny {
  httpStatus: number;
  id: unknown;
  rpcCode: number;
  code: string;
  approval?: { task: string | null; tool: string; argumentsDigest: string | null };
}

/** The JSON-RPC error of a denied MCP call, or null when allowed. */
export function rpcDeny(res: { status?: { code?: number }; deniedResponse?: { status?: { code?: number }; body?: string } }): RpcDeny | null {
  if ((res.status?.code ?? 0) === 0) return null;
  const body = JSON.parse(res.deniedResponse?.body ?? '{}') as { jsonrpc: string; id: unknown; error: { code: number; data: { code: string; approval?: RpcDeny['approval'] } } };
  if (body.jsonrpc !== '2.0') throw new Error(`not a JSON-RPC error: ${res.deniedResponse?.body}`);
  return { httpStatus: res.deniedResponse?.status?.code ?? 0, id: body.id, rpcCode: body.error.code, code: body.error.data.code, ...(body.error.data.approval ? { approval: body.error.data.approval } : {}) };
}
