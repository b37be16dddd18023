// mandate validate: config, routes, schema, policies and entities, without serving.

import { parseArgs } from 'node:util';
import { loadRuntimeForCommand } from './runtime.js';

export async function runValidate(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { config: { type: 'string' } }, strict: true });
  const runtime = loadRuntimeForCommand(values.config ?? null, { mode: 'validate' });
  if (runtime === null) return 1;
  const { config, routes, store } = runtime;
  const version = store.current.version;
  process.stdout.write(
    `ok: ${config.configFile}\n` +
      `  routes: ${routes.routes.length}\n` +
      `  policies: ${version.policies.length} (version ${version.version})\n` +
      `  schema: ${config.schema ?? 'none (requests are not validated)'}\n` +
      `  entities: ${version.entities.length}\n` +
      routes.routes
        .filter((r) => r.mcp?.tools != null)
        .map((r) => `  pinned tools: ${r.mcp?.server} ${r.mcp?.tools?.tools.size} (${r.mcp?.tools?.file})\n`)
        .join(''),
  );
  return 0;
}
