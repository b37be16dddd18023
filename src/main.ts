#!/usr/bin/env node
// mandate: serve | check | test | validate | task | keys | replay | health | tools. Exit codes: 0 ok/allow, 2 deny
// (check) or refused (task), 1 error. A user's mistake (a bad flag, a bad config, a port in
// use) is one line on stderr, never a stack trace; --debug shows the trace of anything else.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { commandUsage, GLOBAL_USAGE, isParseArgsError, UsageError } from './cli/usage.js';
import { kPackageRoot } from './package-root.js';

// Each command's module is imported when that command runs: `mandate health` (a container's
// health check, every few seconds) loads grpc-js, not cedar-wasm, OpenTelemetry and the rest.
const commands: Record<string, (args: string[]) => Promise<number>> = {
  serve: async (args) => (await import('./cli/serve.js')).runServe(args),
  check: async (args) => (await import('./cli/check.js')).runCheck(args),
  validate: async (args) => (await import('./cli/validate.js')).runValidate(args),
  task: async (args) => (await import('./cli/task.js')).runTask(args),
  keys: async (args) => (await import('./cli/keys.js')).runKeys(args),
  replay: async (args) => (await import('./cli/replay.js')).runReplay(args),
  test: async (args) => (await import('./cli/test.js')).runTest(args),
  health: async (args) => (await import('./cli/health.js')).runHealth(args),
  tools: async (args) => (await import('./cli/tools.js')).runTools(args),
};

async function main(argv: string[]): Promise<number> {
  const debug = argv.includes('--debug');
  const args = argv.filter((a) => a !== '--debug');
  const [command, ...rest] = args;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    (command === undefined ? process.stderr : process.stdout).write(GLOBAL_USAGE);
    return command === undefined ? 1 : 0;
  }
  if (command === '--version' || command === '-V') {
    process.stdout.write(`${(JSON.parse(readFileSync(join(kPackageRoot, 'package.json'), 'utf8')) as { version: string }).version}\n`);
    return 0;
  }
  const run = commands[command];
  if (run === undefined) {
    process.stderr.write(`mandate: unknown command "${command}"\n${GLOBAL_USAGE}`);
    return 1;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(commandUsage(command));
    return 0;
  }
  try {
    return await run(rest);
  } catch (err) {
    if (isParseArgsError(err) || err instanceof UsageError) {
      process.stderr.write(`mandate ${command}: ${(err as Error).message}\n${commandUsage(command)}`);
      return 1;
    }
    const e = err as NodeJS.ErrnoException;
    process.stderr.write(`mandate ${command}: ${describe(e)}\n`);
    if (debug) process.stderr.write(`${e?.stack ?? String(err)}\n`);
    return 1;
  }
}

/** One line for an error: a file or address problem says which, anything else its message. */
function describe(e: NodeJS.ErrnoException): string {
  if (e?.code === 'EADDRINUSE' && 'address' in e) return `address ${String((e as { address: unknown }).address)}:${String((e as { port?: unknown }).port ?? '')} is in use`;
  if (e?.code === 'EACCES' && e.path !== undefined) return `permission denied: ${e.path}`;
  if (e?.code === 'ENOENT' && e.path !== undefined) return `no such file or directory: ${e.path}`;
  return e?.message ?? String(e);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`mandate: ${String((err as Error)?.message ?? err)}\n`);
    process.exitCode = 1;
  },
);
