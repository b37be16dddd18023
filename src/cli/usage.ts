// What each command takes, printed for --help/-h (exit 0) and after a usage error (exit 1).

/** The client commands' TLS flags (cli/client-tls.ts). */
export const CLIENT_TLS_USAGE = '[--tls-ca FILE [--tls-cert FILE --tls-key FILE] | --workload-api unix:///PATH] [--server-id SPIFFE_ID]';

export const COMMAND_USAGE: Readonly<Record<string, string>> = Object.freeze({
  serve: 'mandate serve    [--config FILE] [--listen HOST:PORT] [--admin-listen HOST:PORT|off] [--log-level debug|info|warn|error|silent]',
  check: 'mandate check    --request FILE|FOLDER|- ... [FILE|FOLDER ...] [--config FILE | --server HOST:PORT [TLS]] [--explain]\n                   exit 0 all allowed, 2 any denied, 1 error; several requests: one JSON line each',
  test: 'mandate test     PATH... [--config FILE] [--verbose]   Cedar test cases and allow-*/deny-* request tests;\n                   one line per failure, then "N passed, M failed"; exit 0 none failed, 1 otherwise',
  validate: 'mandate validate [--config FILE]',
  task: `mandate task start   --purpose TEXT --tenant NAME [--tool NAME ...] [--ttl SECONDS] [--max-calls N]
                    [--subject-token JWT [--subject USER]] [--parent TASK_ID [--parent-token TOKEN]]
  mandate task renew   TASK_ID
  mandate task show    TASK_ID
  mandate task approve TASK_ID --scope TOOL_OR_ACTION [--ttl SECONDS] [--arguments-digest HEX] [--uses N]
  mandate task end     TASK_ID
  common: [--server HOST:PORT (default 127.0.0.1:9191)] [TLS]
          [--svid-file FILE (else MANDATE_JWT_SVID, else from --workload-api for --audience AUD, default mandate)]`,
  keys: 'mandate keys     rotate|jwks [--config FILE] [--overlap SECONDS]',
  replay: 'mandate replay   --log FILE [--config FILE] [--json]   re-decide logged requests under other policies',
  health: 'mandate health   [--server HOST:PORT (default 127.0.0.1:9191)] [TLS] [--service NAME]   gRPC health: exit 0 SERVING, 1 otherwise',
  tools: `mandate tools pin  --url MCP_ENDPOINT [--header "Name: value" ...] [--protocol-version V] [--out FILE]
                   the server's tools/list, checked, for an MCP route's tools: FILE
  mandate tools diff --url MCP_ENDPOINT --pinned FILE [--header ...] [--protocol-version V]
                   exit 0 the server lists the pinned tools, 2 it changed them (one line each), 1 error`,
});

export const GLOBAL_USAGE = `usage:
${Object.values(COMMAND_USAGE)
  .map((u) => `  ${u}`)
  .join('\n')}
  mandate --version

TLS (client commands): ${CLIENT_TLS_USAGE}

With no --config, the embedded example (examples/agent-gateway) is used, or MANDATE_CONFIG.
Every command takes --help (-h); --debug shows the stack trace of an unexpected error.
`;

export function commandUsage(command: string): string {
  const tls = ['check', 'task', 'health'].includes(command) ? `  TLS: ${CLIENT_TLS_USAGE}\n` : '';
  return `usage:\n  ${COMMAND_USAGE[command] ?? ''}\n${tls}`;
}

/** A mistake in how a command was called: one line, then the command's usage, exit 1. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** node:util parseArgs' own errors (unknown option, missing value, unexpected positional). */
export function isParseArgsError(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_');
}
