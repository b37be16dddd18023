// The pipeline fails closed: every failure inside a stage ends in a deny with a code.

import assert from 'node:assert/strict';
import { writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadRuntime } from '../../src/cli/runtime.js';
import { decide } from '../../src/check/pipeline.js';
import { respond } from '../../src/check/respond.js';
import type { CheckRequestMessage } from '../../src/check/decode.js';
import { SUPPORT_AGENT, checkRequest } from '../helpers/requests.js';
import { copyExample } from '../helpers/server.js';
import { EMBEDDED_CONFIG } from '../../src/config/load.js';

describe('decide fails closed', () => {
  const runtime = loadRuntime(EMBEDDED_CONFIG);

  it('denies with internal_error when reading the request throws', async () => {
    const hostile = {
      get attributes(): never {
        throw new Error('boom');
      },
    } as unknown as CheckRequestMessage;
    const decision = await decide(hostile, runtime.state());
    assert.equal(decision.allowed, false);
    assert.equal(decision.code, 'internal_error');
    assert.equal(decision.message, 'unexpected error: boom');
    const response = respond(decision, runtime.config);
    assert.equal(response.status.code, 13);
    // The detail stays in the log; the caller gets the catalogue's text.
    assert.equal(JSON.parse(response.deniedResponse?.body ?? '').message, 'the decision point failed to decide; the request is denied');
  });

  it('denies with internal_error when Cedar refuses the entities it was given', async () => {
    // A schema whose Workload has no `path` attribute: the per-request principal no longer fits.
    const { dir, config } = copyExample();
    const schema = join(dir, 'schema.cedarschema');
    writeFileSync(schema, readFileSync(schema, 'utf8').replace('  path: String,\n', ''));
    const entities = join(dir, 'entities.json');
    const list = JSON.parse(readFileSync(entities, 'utf8')) as { attrs: Record<string, unknown> }[];
    for (const e of list) delete e.attrs['path'];
    writeFileSync(entities, JSON.stringify(list));
    const broken = loadRuntime(config);
    const decision = await decide(checkRequest('GET', '/tickets/T-1', { principal: SUPPORT_AGENT }) as CheckRequestMessage, broken.state());
    assert.equal(decision.allowed, false);
    assert.equal(decision.code, 'internal_error');
    assert.match(decision.message ?? '', /attribute `path` on `Workload::.*` should not exist according to the schema/);
  });

  it('puts the determining policies into the deny body only when explain is on', async () => {
    const decision = await decide(checkRequest('GET', '/tickets/internal-0', { principal: SUPPORT_AGENT }) as CheckRequestMessage, runtime.state());
    assert.equal(decision.code, 'policy_denied');
    const withExplain = JSON.parse(respond(decision, { explain: true, principalHeader: null }).deniedResponse?.body ?? '');
    const without = JSON.parse(respond(decision, { explain: false, principalHeader: null }).deniedResponse?.body ?? '');
    assert.deepEqual(withExplain.determiningPolicies, ['no-agent-internal-tickets']);
    assert.equal('determiningPolicies' in without, false);
  });

  it('allows only through an explicit permit', async () => {
    const decision = await decide(checkRequest('GET', '/tickets/T-1', { principal: SUPPORT_AGENT }) as CheckRequestMessage, runtime.state());
    assert.equal(decision.allowed, true);
    assert.deepEqual(decision.determining, ['support-read-tickets']);
  });
});
