// CheckRequest builders in proto3 JSON form (what protobufjs fromObject takes).

export const SUPPORT_AGENT = 'spiffe://example.org/ns/support/sa/support-agent';
export const BILLING_AGENT = 'spiffe://example.org/ns/billing/sa/billing-agent';

export interface RequestOptions {
  principal?: string;
  headers?: Record<string, string>;
  headerMap?: { key: string; value?: string; rawValue?: Uint8Array }[];
  body?: string;
  rawBody?: Uint8Array;
  extensions?: Record<string, string>;
}

export function checkRequest(method: string, path: string, options: RequestOptions = {}): Record<string, unknown> {
  const http: Record<string, unknown> = {
    id: '42',
    method,
    path,
    host: 'tools.example.org',
    scheme: 'https',
    protocol: 'HTTP/2',
  };
  if (options.headerMap !== undefined) http['headerMap'] = { headers: options.headerMap };
  else http['headers'] = { ':authority': 'tools.example.org', ':method': method, ':path': path, ...options.headers };
  if (options.body !== undefined) http['body'] = options.body;
  if (options.rawBody !== undefined) http['rawBody'] = options.rawBody;
  return {
    attributes: {
      source: {
        address: { socketAddress: { address: '10.0.4.17', portValue: 51334 } },
        ...(options.principal === undefined ? {} : { principal: options.principal }),
      },
      destination: { address: { socketAddress: { address: '10.0.9.2', portValue: 8443 } } },
      request: { http },
      contextExtensions: options.extensions ?? { app: 'support-gateway' },
    },
  };
}

export function caseBody(fields: Record<string, unknown>): Pick<RequestOptions, 'headers' | 'rawBody'> {
  const raw = Buffer.from(JSON.stringify(fields));
  return {
    headers: { 'content-type': 'application/json', 'x-tenant-id': 'acme', 'content-length': String(raw.length) },
    rawBody: raw,
  };
}
