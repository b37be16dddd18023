// Imports routes from an OpenAPI 3 document: one route per operation under `paths`.
// OpenAPI path templates use the same {name} syntax as Mandate routes (OpenAPI 3.1 §4.8.2).
// An operation may set `x-mandate-resource` (e.g. Ticket::"{id}"); a JSON requestBody turns on
// context.body for that route.

import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { ConfigError, isObject } from './fields.js';
import type { HttpMethod, RouteConfig } from './types.js';

const OPERATION_KEYS: Record<string, HttpMethod> = {
  get: 'GET', put: 'PUT', post: 'POST', delete: 'DELETE', options: 'OPTIONS', head: 'HEAD', patch: 'PATCH', trace: 'TRACE',
};

export function importOpenApiRoutes(file: string, field: string, defaultResource: string | null): RouteConfig[] {
  let doc: unknown;
  try {
    doc = parseYaml(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ConfigError(`${field}.openapi`, `cannot read OpenAPI document ${file}: ${(err as Error).message}`);
  }
  if (!isObject(doc) || typeof doc['openapi'] !== 'string' || !doc['openapi'].startsWith('3.')) {
    throw new ConfigError(`${field}.openapi`, `${file} is not an OpenAPI 3 document (no "openapi: 3.x" field)`);
  }
  const paths = doc['paths'];
  if (!isObject(paths)) throw new ConfigError(`${field}.openapi`, `${file} has no "paths" object`);
  const routes: RouteConfig[] = [];
  for (const [path, item] of Object.entries(paths)) {
    if (!isObject(item)) continue;
    for (const [key, operation] of Object.entries(item)) {
      const method = OPERATION_KEYS[key];
      if (method === undefined || !isObject(operation)) continue;
      const resource = operation['x-mandate-resource'];
      if (resource !== undefined && typeof resource !== 'string') {
        throw new ConfigError(`${field}.openapi`, `${file} ${method} ${path}: x-mandate-resource must be a string`);
      }
      routes.push({
        method,
        path,
        resource: resource ?? defaultResource,
        body: hasJsonBody(operation['requestBody']),
        tool: typeof operation['x-mandate-tool'] === 'string' ? operation['x-mandate-tool'] : null,
        requireTask: typeof operation['x-mandate-require-task'] === 'boolean' ? operation['x-mandate-require-task'] : null,
        matrixParams: false,
        methodOverride: null,
        mcp: null,
        origin: `${field} (${file} ${method} ${path})`,
      });
    }
  }
  return routes;
}

function hasJsonBody(requestBody: unknown): boolean {
  if (!isObject(requestBody) || !isObject(requestBody['content'])) return false;
  return Object.keys(requestBody['content']).some((type) => type === 'application/json' || type.endsWith('+json'));
}
