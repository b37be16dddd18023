// The example agent policy set grown to N policies, for benchmarks and the differential tests.
// A multi-tenant gateway: each tenant has an agent workload, a team group, a ticket and a tool,
// and policies that name them in their scope (principal ==/in/is..in, resource ==/is), the
// shape per-tenant rules take in practice. Four kinds rotate:
//   0 permit  tenant agent reads tickets inside a task of its own tenant
//   1 permit  team comments on its own ticket when the tenant header says so
//   2 forbid  tenant agent touches its ticket outside a task
//   3 permit  team calls its MCP tool inside a task granted that tool

import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { kPackageRoot } from '../src/package-root.js';

export const EXAMPLE_DIR = resolve(kPackageRoot, 'examples/agent-gateway');

export function tenantAgent(i: number): string {
  return `spiffe://example.org/ns/tenant-${i}/sa/agent`;
}

export function generatedPolicies(count: number): string {
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const agent = `Workload::"${tenantAgent(i)}"`;
    switch (i % 4) {
      case 0:
        out.push(`@id("gen-${i}-read")\npermit (principal == ${agent}, action in Action::"read", resource is Ticket)\nwhen { context has task && context.task.tenant == "tenant-${i}" };`);
        break;
      case 1:
        out.push(`@id("gen-${i}-comment")\npermit (principal in Group::"team-${i}", action == Action::"POST /tickets/{id}/comments", resource == Ticket::"T-${i}")\nwhen { context.http.headers has "x-tenant-id" && context.http.headers["x-tenant-id"] == "tenant-${i}" };`);
        break;
      case 2:
        out.push(`@id("gen-${i}-task-only")\nforbid (principal == ${agent}, action, resource == Ticket::"T-${i}")\nunless { context has task };`);
        break;
      default:
        out.push(`@id("gen-${i}-tool")\npermit (principal is Workload in Group::"team-${i}", action == Action::"mcp:tools/call", resource == Tool::"support/tool-${i}")\nwhen { context has task && context.task.tools.contains("support/tool-${i}") };`);
    }
  }
  return `${out.join('\n\n')}\n`;
}

/** Each tenant's agent (in its team) and the team, as Cedar entities JSON. */
export function generatedEntities(count: number): unknown[] {
  const out: unknown[] = [];
  for (let i = 0; i < count; i++) {
    out.push({ uid: { type: 'Group', id: `team-${i}` }, attrs: {}, parents: [] });
    out.push({ uid: { type: 'Workload', id: tenantAgent(i) }, attrs: { trustDomain: 'example.org', path: `/ns/tenant-${i}/sa/agent` }, parents: [{ type: 'Group', id: `team-${i}` }] });
  }
  return out;
}

/** A copy of the example with `extra` generated policies (and their entities) added. */
export function writeGrownExample(extra: number): { dir: string; config: string } {
  const dir = mkdtempSync(join(tmpdir(), `mandate-grown-${extra}-`));
  cpSync(EXAMPLE_DIR, dir, { recursive: true });
  writeFileSync(join(dir, 'policies', 'generated.cedar'), generatedPolicies(extra));
  const entities = JSON.parse(readFileSync(join(dir, 'entities.json'), 'utf8')) as unknown[];
  writeFileSync(join(dir, 'entities.json'), JSON.stringify([...entities, ...generatedEntities(extra)]));
  return { dir, config: join(dir, 'mandate.yaml') };
}
