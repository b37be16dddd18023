// Two Mandate replicas in child processes sharing one Redis, the example's policies, and a
// trust domain whose JWT-SVIDs both accept: how the tests prove that replicas decide as one.

import { makeTrustDomain, mint, type TrustDomainKeys } from './jwt.js';
import { SUPPORT_AGENT } from './requests.js';
import { exampleWith, spawnServer, type ChildServer } from './server.js';
import { createCheckClient, type CheckClient } from './upstream.js';

export interface Replicas {
  readonly a: ChildServer;
  readonly b: ChildServer;
  readonly checkA: CheckClient;
  readonly checkB: CheckClient;
  readonly td: TrustDomainKeys;
  /** A JWT-SVID of the support agent, for the task API. */
  svid(id?: string): Promise<string>;
  close(): Promise<void>;
}

/** `sections`: further top-level config sections (YAML text), e.g. an evaluation mode. */
export async function startReplicas(redisUrl: string, keyPrefix: string, sections: Record<string, string> = {}): Promise<Replicas> {
  const td = makeTrustDomain('example.org');
  const { config } = exampleWith(
    {
      identity: 'identity:\n  jwtSvid:\n    audiences: [mandate]\n  bundles:\n    - { trustDomain: example.org, file: ./example.org.json }\n',
      tasks: `tasks:\n  store: { redis: "${redisUrl}", keyPrefix: "${keyPrefix}" }\n  tenantFrom: { header: x-tenant-id }\n`,
      decisionLog: 'decisionLog:\n  sink: "off"\n',
      ...sections,
    },
    { 'example.org.json': td.bundle() },
  );
  // A creates the shared signing key file; B starts after it and reads the same file.
  const a = await spawnServer(['--config', config]);
  const b = await spawnServer(['--config', config]);
  const checkA = createCheckClient(a.address);
  const checkB = createCheckClient(b.address);
  return {
    a,
    b,
    checkA,
    checkB,
    td,
    svid: (id = SUPPORT_AGENT) => mint({ key: td.keys[0]!, sub: id }),
    close: async () => {
      checkA.close();
      checkB.close();
      for (const s of [a, b]) if (s.child.exitCode === null) s.child.kill('SIGTERM');
      await Promise.all([a.exited, b.exited]);
    },
  };
}
