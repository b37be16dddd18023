// The benchmark scenario of issue #5: the example grown to N policies, a caller identified by a
// JWT-SVID (ES256, key generated per run) and running inside a task (a transaction token from
// StartTask). Used in process (bench/run.ts) and end to end (bench/load.ts).

import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { kPackageRoot } from '../src/package-root.js';
import { newKeyPair } from '../src/core/keygen.js';
import { writeGrownExample } from './policy-set.js';
import { mintJwtSvid } from './identity.js';

export const SCENARIO_CALLER = 'spiffe://example.org/ns/support/sa/support-agent';

export interface Scenario {
  readonly dir: string;
  readonly config: string;
  readonly policies: number;
  /** A JWT-SVID for SCENARIO_CALLER, valid for an hour. */
  readonly jwtSvid: string;
  /** The CheckRequest (examples/requests JSON form) once a task token is known. */
  checkRequest(txnToken: string): unknown;
}

/** How many policies the example has (examples/agent-gateway/policies); a smoke test checks it. */
export const EXAMPLE_POLICIES = 18;

/** `extra` generated policies on top of the example's (0: the example alone). */
export function writeScenario(extra: number): Scenario {
  const { dir, config } = writeGrownExample(extra);
  const { publicKey, privateKey } = newKeyPair({ type: 'ec', namedCurve: 'P-256' });
  writeFileSync(join(dir, 'example.org.json'), JSON.stringify({ keys: [{ ...publicKey.export({ format: 'jwk' }), kid: 'bench', use: 'jwt-svid' }] }));
  const yaml = readFileSync(config, 'utf8')
    .replace(/^identity:\n/m, 'identity:\n  jwtSvid:\n    audiences: [mandate]\n  bundles:\n    - { trustDomain: example.org, file: ./example.org.json }\n')
    .replace(/^tasks:\n/m, 'tasks:\n  keyFile: ./task-keys.json\n  tokenTtlSeconds: 1800\n');
  writeFileSync(config, yaml);
  const template = JSON.parse(readFileSync(resolve(kPackageRoot, 'examples/requests/allow-support-read-ticket.json'), 'utf8')) as {
    attributes: { source: Record<string, unknown>; request: { http: { headers: Record<string, string> } } };
  };
  const jwtSvid = mintJwtSvid('ES256', 'bench', privateKey, SCENARIO_CALLER);
  return {
    dir,
    config,
    policies: EXAMPLE_POLICIES + extra,
    jwtSvid,
    checkRequest: (txnToken) => {
      const request = structuredClone(template);
      // The caller is identified by its JWT-SVID alone: no mTLS peer identity to compare with.
      delete request.attributes.source['principal'];
      delete request.attributes.source['certificate'];
      Object.assign(request.attributes.request.http.headers, { authorization: `Bearer ${jwtSvid}`, 'txn-token': txnToken, 'x-tenant-id': 'acme' });
      return request;
    },
  };
}

/** What StartTask is asked for: a read-only task, with a budget no benchmark exhausts. */
export const SCENARIO_TASK = { purpose: 'benchmark: read tickets', tenant: 'acme', tools: ['tickets.read'], ttlSeconds: 1800, maxCalls: 0 };
