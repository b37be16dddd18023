// Allowed answers written from a template (src/server/frames.ts): byte for byte what encoding
// respond()'s answer gives, for every identity kind and configuration, whatever else the
// decision holds; denies and ids the template cannot take are left to the encoder.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { respond, type RespondConfig } from '../../src/check/respond.js';
import type { Decision } from '../../src/core/decision.js';
import { randomId } from '../../src/core/ids.js';
import { encodeCheckResponseFrame } from '../../src/server/codec.js';
import { AllowFrames, EncodedCheckResponse } from '../../src/server/frames.js';
import { checkResponseFrame } from '../../src/server/protos.js';
import { makeDecision } from '../helpers/decisions.js';
import { seeded } from '../helpers/generate.js';

const spiffe = (id: string) => ({ id, trustDomain: 'example.org', path: id.slice('spiffe://example.org'.length) });
const IDENTITIES: Decision['identity'][] = [
  { kind: 'x509', spiffe: spiffe('spiffe://example.org/ns/a'), jwt: null },
  { kind: 'x509', spiffe: spiffe('spiffe://example.org/ns/b'), jwt: null },
  { kind: 'jwt-svid', spiffe: spiffe('spiffe://example.org/ns/a'), jwt: { spiffe: spiffe('spiffe://example.org/ns/a'), aud: ['mandate'], exp: 2e9, iat: null } },
  { kind: 'xfcc', spiffe: spiffe('spiffe://example.org/ns/ü-non-ascii'), jwt: null },
  { kind: 'anonymous' },
  null,
];
const CONFIGS: RespondConfig[] = [
  { explain: false, principalHeader: 'x-mandate-principal' },
  { explain: true, principalHeader: null },
  { explain: false, principalHeader: 'x-workload', dryRun: true },
];
const VERSIONS = ['sha256:0123456789abcdef', 'sha256:fedcba9876543210', ''];

/** Everything respond() must not read of an allowed decision, varied at random. */
function unrelated(random: () => number): Partial<Decision> {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)] as T;
  return {
    message: pick([null, 'a message']),
    action: pick([null, 'GET /tickets/{id}', 'tools/call support/create_case']),
    resource: pick([null, 'Ticket::"1"', 'Tool::"x"']),
    determining: pick([[], ['p1'], ['p1', 'p2']]),
    errors: pick([[], ['p3']]),
    rpc: pick([null, { id: 7, errorCode: null, denyStatus: 200 as const }]),
    taskId: pick([null, 't-1']),
    subject: pick([null, 'user:alice']),
    evaluationUs: Math.floor(random() * 100),
    evaluationPath: pick(['compiled', 'wasm-inline', 'wasm-pool', null] as const),
    policyDecision: pick(['allow', null] as const),
    approval: pick([null, { task: 't-1', tool: 'x', argumentsDigest: null }]),
  };
}

describe('allowed answers from a template', () => {
  it('writes the bytes encoding respond() gives, for every identity, configuration and policy version, whatever else the decision holds', () => {
    const random = seeded(20261130);
    let templated = 0;
    for (const config of CONFIGS) {
      const frames = new AllowFrames(config);
      for (let i = 0; i < 400; i++) {
        const decision = makeDecision({
          ...unrelated(random),
          decisionId: randomId(),
          identity: IDENTITIES[Math.floor(random() * IDENTITIES.length)] as Decision['identity'],
          policyVersion: VERSIONS[Math.floor(random() * VERSIONS.length)] as string,
        });
        const frame = frames.frame(decision);
        assert.ok(frame !== null, 'an allowed decision with a random id is templated');
        assert.deepEqual(frame, encodeCheckResponseFrame(respond(decision, config)), JSON.stringify(decision));
        templated++;
      }
    }
    assert.equal(templated, 1200);
  });

  it('gives every answer its own buffer', () => {
    const frames = new AllowFrames(CONFIGS[0] as RespondConfig);
    const a = frames.frame(makeDecision({ decisionId: randomId() })) as Buffer;
    const copy = Buffer.from(a);
    const b = frames.frame(makeDecision({ decisionId: randomId() })) as Buffer;
    assert.notDeepEqual(a, b);
    assert.deepEqual(a, copy, 'the second answer did not write into the first');
  });

  it('leaves denies and ids it cannot write to the encoder', () => {
    const frames = new AllowFrames(CONFIGS[0] as RespondConfig);
    assert.equal(frames.frame(makeDecision({ allowed: false, code: 'policy_denied', decisionId: randomId() })), null);
    assert.equal(frames.frame(makeDecision({ decisionId: 'short' })), null);
    assert.equal(frames.frame(makeDecision({ decisionId: `${randomId().slice(0, 35)}é` })), null, 'not one byte a character');
    // The same key with a usable id afterwards is templated.
    assert.ok(frames.frame(makeDecision({ decisionId: randomId() })) !== null);
  });

  it("answers as the Check handler sends it: the template's frame when there is one, else respond()'s message, both written by the served serializer to the same bytes", () => {
    const config = CONFIGS[1] as RespondConfig;
    const frames = new AllowFrames(config);
    const cases = [
      makeDecision({ decisionId: randomId() }),
      makeDecision({ allowed: false, code: 'policy_denied', decisionId: randomId() }),
      makeDecision({ decisionId: 'short' }),
    ];
    const kinds = cases.map((decision) => {
      const answer = frames.answer(decision);
      assert.deepEqual(checkResponseFrame(answer), encodeCheckResponseFrame(respond(decision, config)), JSON.stringify(decision));
      if (!(answer instanceof EncodedCheckResponse)) assert.deepEqual(answer, respond(decision, config));
      return answer instanceof EncodedCheckResponse ? 'template' : 'message';
    });
    assert.deepEqual(kinds, ['template', 'message', 'message']);
  });
});
