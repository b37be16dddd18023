// A running example server with the task API enabled: JWT-SVID identities for the support
// agent, the billing agent and a supervisor, and the embedded example's task policies.

import { decodeJwt, decodeProtectedHeader } from 'jose';
import { makeTrustDomain, mint } from './jwt.js';
import { BILLING_AGENT, SUPPORT_AGENT, checkRequest } from './requests.js';
import { exampleWith, startExampleServer, type RunningServer } from './server.js';
import { createTasksClient, type TasksApi } from './tasks.js';
import { createCheckClient, type CheckClient, type CheckResponseObject } from './upstream.js';

export const SUPERVISOR = 'spiffe://example.org/ns/support/sa/supervisor';
export { decodeJwt, decodeProtectedHeader };

export interface TaskFixture {
  readonly server: RunningServer;
  readonly tasks: TasksApi;
  readonly check: CheckClient;
  svid(spiffeId: string): Promise<string>;
  startTask(request?: Record<string, unknown>, as?: string): Promise<{ token: string; taskId: string; grantedTools: string[]; deniedTools: string[]; expiresAt: string; taskExpiresAt: string }>;
  /** Checks a request as `principal` (the mTLS peer) carrying `token`. */
  call(method: string, path: string, token: string | null, options?: { principal?: string; tenant?: string | null }): Promise<CheckResponseObject>;
  close(): Promise<void>;
}

export function codeOf(res: CheckResponseObject): string | null {
  if ((res.status?.code ?? 0) === 0) return null;
  return (JSON.parse(res.deniedResponse?.body ?? '{}') as { code: string }).code;
}

export async function startTaskFixture(tasksYaml = 'tasks:\n  store: memory\n  tenantFrom: { header: x-tenant-id }\n', files: Record<string, string> = {}, edit: (dir: string) => void = () => undefined): Promise<TaskFixture> {
  const td = makeTrustDomain('example.org');
  const { dir, config } = exampleWith(
    {
      identity: 'identity:\n  jwtSvid:\n    audiences: [mandate]\n  bundles:\n    - { trustDomain: example.org, file: ./example.org.json }\n',
      tasks: tasksYaml,
    },
    { 'example.org.json': td.bundle(), ...files },
  );
  edit(dir);
  const server = await startExampleServer(config);
  const tasks = createTasksClient(server.address);
  const check = createCheckClient(server.address);
  const svid = (id: string): Promise<string> => mint({ key: td.keys[0]!, sub: id });
  return {
    server,
    tasks,
    check,
    svid,
    startTask: async (request = {}, as = SUPPORT_AGENT) =>
      tasks.call('StartTask', { purpose: 'refund for ticket T-1042', tenant: 'acme', tools: ['tickets.read', 'cases.refund'], ttlSeconds: 600, maxCalls: 10, ...request }, await svid(as)),
    call: (method, path, token, options = {}) => {
      const headers: Record<string, string> = {};
      if (token !== null) headers['txn-token'] = token;
      const tenant = options.tenant === undefined ? 'acme' : options.tenant;
      if (tenant !== null) headers['x-tenant-id'] = tenant;
      return check.check(checkRequest(method, path, { principal: options.principal ?? SUPPORT_AGENT, headers }));
    },
    close: async () => {
      tasks.close();
      check.close();
      await server.close();
    },
  };
}

export { BILLING_AGENT, SUPPORT_AGENT };
