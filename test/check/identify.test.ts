// The identify stage's memo of mTLS peers (src/check/identify.ts): a principal is parsed and its
// trust domain checked once, and every later Check with it reads the same answer: the same
// identity, the same refusal, an XFCC from a trusted hop still taking over, and past the memo's
// bound (1,024 peers) the answers are unchanged.

import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { loadRuntime } from '../../src/cli/runtime.js';
import { decodeCheckRequest, type CheckRequestMessage, type DecodedRequest } from '../../src/check/decode.js';
import { exampleWith } from '../helpers/server.js';
import { checkRequest } from '../helpers/requests.js';

const EDGE = 'spiffe://example.org/ns/edge/sa/gateway';
const { config } = exampleWith({});
writeFileSync(config, `${readFileSync(config, 'utf8').replace(/^identity:\n(?: {2}.*\n)+/m, '')}\nidentity:\n  xfcc:\n    trustedPeers: ["${EDGE}"]\n`);
const state = loadRuntime(config).state();
const now = Math.floor(Date.now() / 1000);

function request(principal: string, headers: Record<string, string> = {}): DecodedRequest {
  const decoded = decodeCheckRequest(checkRequest('GET', '/tickets/T-1', { principal, headers }) as CheckRequestMessage, state.config.limits, now, state.decodeRules);
  assert.ok(decoded.ok);
  return decoded.value;
}
const identify = async (principal: string, headers: Record<string, string> = {}) => state.identifier.identify(request(principal, headers), now);

describe('identify: one reading per mTLS peer', () => {
  it('answers every Check of a peer alike: its identity, or its refusal', async () => {
    for (let round = 0; round < 3; round++) {
      const agent = await identify('spiffe://example.org/ns/support/sa/support-agent');
      assert.ok(agent.ok);
      assert.ok(agent.value.kind === 'x509');
      assert.equal(agent.value.spiffe.id, 'spiffe://example.org/ns/support/sa/support-agent');
      assert.equal(agent.value.jwt, null);
      const foreign = await identify('spiffe://other.org/ns/a/sa/b');
      assert.deepEqual(foreign.ok ? 'allowed' : foreign.code, 'untrusted_domain');
      const malformed = await identify('spiffe://example.org/ns/../sa/b');
      assert.deepEqual(malformed.ok ? 'allowed' : malformed.code, 'invalid_identity');
    }
  });

  it('lets an XFCC from a trusted hop name the client, before and after the hop was read as a peer', async () => {
    const xfcc = { 'x-forwarded-client-cert': 'By=spiffe://example.org/ns/edge/sa/gateway;URI=spiffe://example.org/ns/support/sa/support-agent' };
    const alone = await identify(EDGE);
    assert.ok(alone.ok && alone.value.kind === 'x509' && alone.value.spiffe.id === EDGE);
    for (let round = 0; round < 2; round++) {
      const forwarded = await identify(EDGE, xfcc);
      assert.ok(forwarded.ok && forwarded.value.kind === 'xfcc' && forwarded.value.spiffe.id === 'spiffe://example.org/ns/support/sa/support-agent');
    }
    const again = await identify(EDGE);
    assert.ok(again.ok && again.value.kind === 'x509' && again.value.spiffe.id === EDGE);
  });

  it('reads the same answers after more peers than the memo keeps', async () => {
    for (let i = 0; i < 1100; i++) {
      const r = await identify(`spiffe://example.org/ns/n${i}/sa/w`);
      assert.ok(r.ok && r.value.kind === 'x509' && r.value.spiffe.id === `spiffe://example.org/ns/n${i}/sa/w`, `peer ${i}`);
    }
    const first = await identify('spiffe://example.org/ns/n0/sa/w');
    assert.ok(first.ok && first.value.kind === 'x509' && first.value.spiffe.id === 'spiffe://example.org/ns/n0/sa/w');
    const foreign = await identify('spiffe://other.org/ns/a/sa/b');
    assert.equal(foreign.ok ? 'allowed' : foreign.code, 'untrusted_domain');
  });
});
