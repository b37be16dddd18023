// mandate validate: config, routes, schema, policies and entities, without serving.

import { parseArgs } from 'node:util';
import { loadRuntime, StartupError } from './runtime.js';

export async function runValidate(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { config: { type: 'string' } }, strict: true });
  try {
    const { config, routes, store } = loadRuntime(values.config ?? null, { mode: 'validate' });
    const version = store.current.version;
    process.stdout.write(
      `ok: ${config.configFile}\n` +
        `  routes: ${routes.routes.length}\n` +
        `  policies: ${version.policies.length} (version ${version.version})\n` +
        `  schema: ${config.schema ?? 'none (requests are not validated)'}\n` +
        `  entities: ${version.entities.length}\n`,
    );
    return 0;
  } catch (err) {
    if (!(err instanceof StartupError)) throw err;
    for (const line of err.problems) process.stderr.write(`${line}\n`);
    return 1;
  }
}
