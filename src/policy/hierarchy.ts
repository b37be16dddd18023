// Transitive closure over a parent relation, as Cedar computes `in`: action groups from the
// schema, entity ancestors from the entities a request or the entities file carries. Cycles
// are cut; the start itself is not included.

export function reachable(starts: Iterable<string>, parentsOf: (key: string) => Iterable<string> | undefined): Set<string> {
  const seen = new Set<string>();
  const stack = [...starts];
  while (stack.length > 0) {
    const key = stack.pop() as string;
    if (seen.has(key)) continue;
    seen.add(key);
    for (const p of parentsOf(key) ?? []) stack.push(p);
  }
  return seen;
}

/**
 * Every group of every action (transitively), from the schema's actions in cedar-wasm's JSON
 * form; null when an action is a member of something other than an Action group.
 */
export function actionGroups(actions: Readonly<Record<string, { readonly memberOf?: readonly { readonly id: string; readonly type?: string }[] | null }>>): Map<string, Set<string>> | null {
  const direct = new Map<string, string[]>();
  for (const [id, action] of Object.entries(actions)) {
    const memberOf = action.memberOf ?? [];
    if (memberOf.some((m) => m.type !== undefined && m.type !== 'Action')) return null;
    direct.set(id, memberOf.map((m) => m.id));
  }
  return new Map([...direct.keys()].map((id) => [id, reachable(direct.get(id) ?? [], (g) => direct.get(g))]));
}
