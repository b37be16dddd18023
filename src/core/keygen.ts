// Key pairs that share nothing with the job that generated them.
//
// Node 20's generateKeyPairSync (and WebCrypto generateKey) hand back KeyObjects that share a
// lock with the generation job. Exporting such a key to JWK holds that lock while it allocates
// strings; if the allocation starts a collection that finalizes the (unreachable) job, the job's
// destructor waits on the same lock, on the same thread, and the process hangs for good. Seen in
// CI on Node 20.20.2, native stack: KeyObjectHandle::ExportJWK -> ExportJWKEcKey -> EncodeBignum
// -> Heap::CollectGarbage -> ~KeyGenJob -> uv_mutex_lock. The task key file is written with such
// an export, so this is not a test-only matter. Reproduced outside the tests: a loop of
// generateKeyPairSync('ec') and a JWK export of the public key, beside a 300,000-object heap,
// hung with that stack in 3 of 4 runs (after 12-60 s); the same loop through newKeyPair ran
// 85,000 iterations in 60 s. Generated as DER and read back, the KeyObjects own their keys and
// locks; the private key's DER bytes are zeroed once read.

import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';

export type KeyPairSpec = { readonly type: 'ec'; readonly namedCurve: string } | { readonly type: 'rsa'; readonly modulusLength: number };

export function newKeyPair(spec: KeyPairSpec): { readonly privateKey: KeyObject; readonly publicKey: KeyObject } {
  const der: { publicKey: Buffer; privateKey: Buffer } =
    spec.type === 'ec'
      ? generateKeyPairSync('ec', { namedCurve: spec.namedCurve, publicKeyEncoding: { type: 'spki', format: 'der' }, privateKeyEncoding: { type: 'pkcs8', format: 'der' } })
      : generateKeyPairSync('rsa', { modulusLength: spec.modulusLength, publicKeyEncoding: { type: 'spki', format: 'der' }, privateKeyEncoding: { type: 'pkcs8', format: 'der' } });
  const privateKey = createPrivateKey({ key: der.privateKey, format: 'der', type: 'pkcs8' });
  der.privateKey.fill(0);
  return { privateKey, publicKey: createPublicKey({ key: der.publicKey, format: 'der', type: 'spki' }) };
}
