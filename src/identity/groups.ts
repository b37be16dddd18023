import type { EntityUid } from '../core/cedar-request.js';
// Workload groups by SPIFFE ID pattern, e.g. spiffe://example.org/ns/support/* -> WorkloadGroup::"support".
// "*" stands for one path segment; a trailing "/*" for one or more. Compiled once at load.


interface CompiledGroup {
  readonly pattern: RegExp;
  readonly group: EntityUid;
}

export class WorkloadGroups {
  private readonly compiled: readonly CompiledGroup[];

  constructor(groups: readonly { readonly match: string; readonly group: string }[]) {
    this.compiled = groups.map(({ match, group }) => {
      const sep = group.lastIndexOf('::"');
      const escaped = match.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
      const source = escaped.endsWith('/*') ? `${escaped.slice(0, -2).replace(/\*/g, '[^/]+')}/.+` : escaped.replace(/\*/g, '[^/]+');
      return {
        pattern: new RegExp(`^${source}$`),
        // Frozen: shared by every request of a matching workload (engine.ts parentsByKey keeps merged lists by it).
        group: Object.freeze({ type: group.slice(0, sep), id: group.slice(sep + 3, -1) }),
      };
    });
  }

  get size(): number {
    return this.compiled.length;
  }

  groupsFor(spiffeId: string): EntityUid[] {
    const out: EntityUid[] = [];
    for (const g of this.compiled) if (g.pattern.test(spiffeId)) out.push(g.group);
    return out;
  }
}
