// newKeyPair (src/core/keygen.ts): key pairs read back from DER, so that no KeyObject shares its
// lock with the generation job. The hang this avoids needs a collection at one exact moment:
// reproduced in 3 of 4 runs of a loop, after 12-60 s, too slow and uncertain for a test (keygen.ts
// says how). What is checked here:
// the keys are what was asked for, they sign and verify as a pair, and they export to JWK.

import assert from 'node:assert/strict';
import { sign, verify } from 'node:crypto';
import { describe, it } from 'node:test';
import { newKeyPair } from '../../src/core/keygen.js';

describe('newKeyPair', () => {
  for (const [spec, alg, details] of [
    [{ type: 'ec', namedCurve: 'P-256' }, 'sha256', { namedCurve: 'prime256v1' }],
    [{ type: 'ec', namedCurve: 'P-384' }, 'sha384', { namedCurve: 'secp384r1' }],
    [{ type: 'rsa', modulusLength: 2048 }, 'sha256', { modulusLength: 2048, publicExponent: 65537n }],
  ] as const) {
    it(`gives a ${JSON.stringify(spec)} pair that signs and verifies, and exports to JWK`, () => {
      const { privateKey, publicKey } = newKeyPair(spec);
      assert.equal(privateKey.type, 'private');
      assert.equal(publicKey.type, 'public');
      assert.equal(privateKey.asymmetricKeyType, spec.type);
      assert.deepEqual(publicKey.asymmetricKeyDetails, details);
      const data = Buffer.from('mandate');
      const signature = sign(alg, data, privateKey);
      assert.equal(verify(alg, data, publicKey, signature), true);
      assert.equal(verify(alg, Buffer.from('mandatE'), publicKey, signature), false);
      const jwk = privateKey.export({ format: 'jwk' });
      assert.equal(jwk.kty, spec.type === 'ec' ? 'EC' : 'RSA');
      assert.equal(typeof jwk.d, 'string');
      assert.equal(publicKey.export({ format: 'jwk' }).d, undefined);
    });
  }

  it('gives a new pair each time', () => {
    const a = newKeyPair({ type: 'ec', namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' });
    const b = newKeyPair({ type: 'ec', namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' });
    assert.notEqual(a.x, b.x);
  });
});
