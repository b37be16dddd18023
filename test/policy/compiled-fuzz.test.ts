// Differential fuzzer: generated policy sets (every operator the compiler handles, the
// extension functions and methods, longs at the edges of 64 bits, ill-typed operands), entities with hierarchies and tags, and requests,
// decided by the compiled evaluator (src/policy/compiled/) and by cedar-wasm's isAuthorized:
// the same decision, the same determining policies, the same erroring policies.
//
// The seed is printed; MANDATE_FUZZ_SEED=<seed> replays a run, MANDATE_FUZZ_SETS=<n> runs more.
// Mutation check, done by hand when this was written (the break applied to the built
// JavaScript, never committed), seeds 1-4 at 1,000 sets each:
//   - `lt` answering `a <= b` (values.ts): caught with seeds 1, 2 and 4 (sets 391, 98, 966);
//   - `+` without the overflow check: caught with all four (sets 283, 551, 568, 151);
//   - `&&` evaluating both operands (compile.ts): caught with all four (sets 457, 106, 4, 26);
//   - `has` ignoring the attribute name: caught with seeds 1-3 at 500 sets (sets 42, 66, 139);
//   - `toTime` without the correction for datetimes before 1970 (extensions.ts): caught with
//     seed 2 only (set 193) of seeds 1-3: rare paths need many runs, which CI's new seed gives.
// A run compares ~7,700 requests, so each CI run (a new seed) tries new cases.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as cedar from '../../src/policy/cedar.js';
import { compilePolicy } from '../../src/policy/compiled/compile.js';
import { CompiledPolicySet, policyFunction, type CompiledPolicy } from '../../src/policy/compiled/authorize.js';
import { readRequest } from '../../src/policy/compiled/inputs.js';
import { policySet, request, Rng } from '../helpers/cedar-fuzz.js';

const SEED = process.env['MANDATE_FUZZ_SEED'] !== undefined ? Number(process.env['MANDATE_FUZZ_SEED']) : (Date.now() % 1_000_000_007) >>> 0;
const SETS = Number(process.env['MANDATE_FUZZ_SETS'] ?? 1000);
const REQUESTS_PER_SET = 8;

describe('the compiled evaluator against cedar-wasm (differential fuzzer)', () => {
  it(`decides ${SETS * REQUESTS_PER_SET} generated requests as cedar-wasm does (seed ${SEED})`, () => {
    process.stdout.write(`# fuzz seed ${SEED} (replay: MANDATE_FUZZ_SEED=${SEED})\n`);
    const r = new Rng(SEED);
    const stats = { sets: 0, compared: 0, allow: 0, errors: 0, forbidden: 0, unparsed: 0, notCompiled: 0, outside: 0 };
    for (let s = 0; s < SETS; s++) {
      const text = policySet(r);
      const parts = cedar.policySetTextToParts(text);
      const requests = Array.from({ length: REQUESTS_PER_SET }, () => request(r));
      if (parts.type !== 'success') {
        stats.unparsed++;
        continue;
      }
      const texts: Record<string, string> = {};
      const compiled: CompiledPolicy[] = [];
      for (const [i, p] of parts.policies.entries()) {
        const id = `policy${i}`;
        texts[id] = p;
        const json = cedar.policyToJson(p);
        assert.equal(json.type, 'success');
        const out = compilePolicy(json.type === 'success' ? json.json : null, p);
        if (!('shape' in out)) {
          stats.notCompiled++;
          continue;
        }
        compiled.push({ id, effect: out.shape.effect, fn: policyFunction(out.shape, out.constants) });
      }
      if (compiled.length !== parts.policies.length) continue;
      stats.sets++;
      const set = new CompiledPolicySet(compiled);
      for (const q of requests) {
        const input = readRequest(q);
        if (input === null) {
          stats.outside++;
          continue;
        }
        const want = cedar.isAuthorized({ ...q, policies: { staticPolicies: texts } } as cedar.AuthorizationCall);
        assert.equal(want.type, 'success', `cedar-wasm refused a request the compiled reader took (seed ${SEED}, set ${s}): ${JSON.stringify(q)}`);
        if (want.type !== 'success') continue;
        const got = set.authorize(input);
        const expected = { decision: want.response.decision, reason: [...want.response.diagnostics.reason].sort(), errors: want.response.diagnostics.errors.map((e) => e.policyId).sort() };
        const actual = { decision: got.decision, reason: [...got.determining].sort(), errors: got.errors.map((e) => e.policyId).sort() };
        assert.deepEqual(actual, expected, `seed ${SEED}, set ${s}\n${text}\nrequest ${JSON.stringify(q)}\ncompiled errors: ${JSON.stringify(got.errors)}\ncedar errors: ${JSON.stringify(want.response.diagnostics.errors)}`);
        stats.compared++;
        if (expected.decision === 'allow') stats.allow++;
        if (expected.errors.length > 0) stats.errors++;
        if (expected.decision === 'deny' && expected.reason.length > 0) stats.forbidden++;
      }
    }
    process.stdout.write(`# ${JSON.stringify(stats)}\n`);
    // The comparison must cover allows, forbids and errors, or it proves little.
    assert.ok(stats.compared >= SETS * REQUESTS_PER_SET * 0.6, `compared ${stats.compared}`);
    assert.ok(stats.allow > stats.compared * 0.05, `allowed: ${stats.allow}`);
    assert.ok(stats.forbidden > stats.compared * 0.02, `forbidden: ${stats.forbidden}`);
    assert.ok(stats.errors > stats.compared * 0.1, `with errors: ${stats.errors}`);
  });
});
