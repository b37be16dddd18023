// Routes against the schema, at load (validate, start, every reload): a route whose action the
// schema does not declare, or whose resource type or the Workload principal is outside the
// action's appliesTo, would make every request on it fail inside Cedar (internal_error). Said
// up front instead, naming the route.

import * as cedar from './cedar.js';

/** What one HTTP route asks of the schema (config/types.ts RouteConfig, compiled). */
export interface RouteNeed {
  readonly action: string;
  readonly resourceType: string;
  /** Where the route came from, for the message: "config.routes[2]" or "tickets.openapi.yaml GET /x". */
  readonly origin: string;
}

interface ActionDef {
  readonly appliesTo?: { readonly resourceTypes?: readonly string[]; readonly principalTypes?: readonly string[] } | null;
}

export function routeProblems(schemaText: string, schemaFile: string, needs: readonly RouteNeed[]): string[] {
  if (needs.length === 0) return [];
  const resolved = cedar.schemaToJsonWithResolvedTypes(schemaText);
  if (resolved.type !== 'success') return []; // the schema's own errors are reported by the loader
  const actions = new Map<string, ActionDef>();
  for (const [ns, body] of Object.entries(resolved.json)) {
    for (const [name, def] of Object.entries((body as { actions?: Record<string, ActionDef> }).actions ?? {})) actions.set(ns === '' ? name : `${ns}::${name}`, def);
  }
  const problems: string[] = [];
  for (const need of needs) {
    const def = actions.get(need.action);
    if (def === undefined) {
      problems.push(`${need.origin}: action "${need.action}" is not declared in ${schemaFile}: every request on this route would fail`);
      continue;
    }
    const resources = def.appliesTo?.resourceTypes ?? [];
    const principals = def.appliesTo?.principalTypes ?? [];
    if (!resources.includes(need.resourceType)) {
      problems.push(`${need.origin}: resource type ${need.resourceType} is not in the appliesTo of action "${need.action}" in ${schemaFile} (${resources.join(', ') || 'none'})`);
    }
    if (!principals.includes('Workload')) {
      problems.push(`${need.origin}: principal type Workload is not in the appliesTo of action "${need.action}" in ${schemaFile} (${principals.join(', ') || 'none'})`);
    }
  }
  return problems;
}
