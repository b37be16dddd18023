// What happens after the answer (telemetry, decision log, shadow) can fail without taking the
// server down or touching the answer.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadRuntime } from '../../src/cli/runtime.js';
import { startServer } from '../../src/server/server.js';
import { createLogger } from '../../src/telemetry/log.js';
import { SUPPORT_AGENT, checkRequest } from '../helpers/requests.js';
import { createCheckClient } from '../helpers/upstream.js';

describe('a failure while recording a decision', () => {
  it('is logged; the answer stands and the server keeps serving', async () => {
    const runtime = loadRuntime(null, { listen: '127.0.0.1:0', mode: 'serve' });
    const logged: string[] = [];
    const { shadow: _shadow, ...parts } = runtime;
    const server = await startServer({
      ...parts,
      logger: createLogger('error', (line) => logged.push(line)),
      onDecision: () => {
        throw new Error('decision log sink exploded');
      },
    });
    const client = createCheckClient(server.address);
    try {
      for (let i = 0; i < 3; i++) {
        const res = await client.check(checkRequest('GET', '/tickets/T-1', { principal: SUPPORT_AGENT }));
        assert.equal(res.status?.code ?? 0, 0, 'the answer is the decision, not the failure');
      }
      const denied = await client.check(checkRequest('GET', '/tickets/internal-0', { principal: SUPPORT_AGENT }));
      assert.equal(denied.status?.code, 7);
      assert.equal(logged.filter((l) => l.includes('recording a decision failed') && l.includes('decision log sink exploded')).length, 4);
    } finally {
      client.close();
      await server.shutdown(1000);
      await runtime.tasks?.store.close();
    }
  });
});
