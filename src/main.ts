#!/usr/bin/env node
// mandate: serve | check | validate. Exit codes: 0 ok/allow, 2 deny (check), 1 error.

import { runCheck } from './cli/check.js';
import { runServe } from './cli/serve.js';
import { runValidate } from './cli/validate.js';
import { runTask } from './cli/task.js';
import { runKeys } from './cli/keys.js';
import { runReplay } from './cli/replay.js';

const USAGE = `usage:
  mandate serve    [--config FILE] [--listen HOST:PORT] [--admin-listen HOST:PORT|off]
  mandate check    --request FILE|- [--config FILE] [--explain]
  mandate validate [--config FILE]
  mandate task     start|renew|show|approve|end ...   (mandate task for details)
  mandate keys     rotate|jwks [--config FILE] [--overlap SECONDS]
  mandate replay   --log FILE [--config FILE] [--json]   re-decide logged requests under other policies

With no --config, the embedded example (examples/agent-gateway) is used, or MANDATE_CONFIG.
`;

const [command, ...rest] = process.argv.slice(2);
const commands: Record<string, (args: string[]) => Promise<number>> = {
  serve: runServe,
  check: runCheck,
  validate: runValidate,
  task: runTask,
  keys: runKeys,
  replay: runReplay,
};

const run = command === undefined ? undefined : commands[command];
if (run === undefined) {
  process.stderr.write(command === undefined || command === '--help' || command === 'help' ? USAGE : `mandate: unknown command "${command}"\n${USAGE}`);
  process.exitCode = command === '--help' || command === 'help' ? 0 : 1;
} else {
  run(rest).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`mandate: ${(err as Error)?.stack ?? String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
