// Reading the SPIFFE Workload API's messages (issue #15 §1). The bytes are encoded by hand from
// the standard's field numbers (test/helpers/workload-api.ts) and decoded with our own
// proto/spiffe/workload.proto, so a wrong field number or type here fails. Every message is
// checked whole before it is used; anything that does not hold is refused with a reason.

import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { describe, it } from 'node:test';
import type { ServiceDefinition } from '@grpc/grpc-js';
import { materialFromContext, TlsSourceError } from '../../src/identity/tls-source.js';
import { readJwtBundles, readX509Context, trustDomainOfKey, workloadApiService, WorkloadApiError } from '../../src/identity/workload-api.js';
import { KU_CRL_SIGN, KU_KEY_CERT_SIGN, makeCertificate, makeSvid } from '../helpers/certs.js';
import { encodeJwtBundles, encodeX509, type X509State } from '../helpers/workload-api.js';

const ID = 'spiffe://example.org/ns/mandate/sa/mandate';
const decodeX509 = (state: X509State) => (workloadApiService()['FetchX509SVID'] as ServiceDefinition[string]).responseDeserialize(encodeX509(state)) as Record<string, unknown>;
const decodeJwt = (bundles: Record<string, string>) => (workloadApiService()['FetchJWTBundles'] as ServiceDefinition[string]).responseDeserialize(encodeJwtBundles(bundles)) as Record<string, unknown>;

const root = makeCertificate({ subject: 'example.org root', ca: true, keyUsage: [KU_KEY_CERT_SIGN, KU_CRL_SIGN] });
const intermediate = makeCertificate({ subject: 'example.org intermediate', ca: true, keyUsage: [KU_KEY_CERT_SIGN, KU_CRL_SIGN], issuer: { name: 'example.org root', key: root.privateKey } });
const leaf = makeSvid(ID, { issuer: { name: 'example.org intermediate', key: intermediate.privateKey } });
const otherRoot = makeCertificate({ subject: 'other.org root', ca: true, keyUsage: [KU_KEY_CERT_SIGN, KU_CRL_SIGN] });
const fp = (pem: string): string => new X509Certificate(pem).fingerprint256;

describe('reading FetchX509SVID messages', () => {
  it('reads the SVID with its chain and key, its bundle and the federated bundles (skipping the CRL field)', () => {
    const context = readX509Context(decodeX509({ svids: [{ spiffeId: ID, chain: [leaf, intermediate], key: leaf.privateKey, bundle: [root], hint: 'internal' }], federated: { 'spiffe://other.org': [otherRoot] } }));
    assert.equal(context.svids.length, 1);
    const svid = context.svids[0]!;
    assert.equal(svid.spiffeId, ID);
    assert.equal(svid.hint, 'internal');
    assert.equal((svid.certificatePem.match(/BEGIN CERTIFICATE/g) ?? []).length, 2);
    assert.equal(fp(svid.certificatePem), fp(leaf.pem));
    assert.deepEqual([...context.bundles.keys()].sort(), ['example.org', 'other.org']);
    assert.deepEqual(context.bundles.get('other.org')?.map((c) => c.fingerprint256), [fp(otherRoot.pem)]);
  });

  const refused: [string, X509State, RegExp][] = [
    ['no SVID at all', { svids: [] }, /holds no SVID/],
    ['a SPIFFE ID that names a trust domain, not a workload', { svids: [{ spiffeId: 'spiffe://example.org', chain: [leaf], key: leaf.privateKey, bundle: [root] }] }, /is not a workload SPIFFE ID/],
    ['a certificate whose URI SAN is another ID', { svids: [{ spiffeId: 'spiffe://example.org/other', chain: [leaf], key: leaf.privateKey, bundle: [root] }] }, /URI SAN is not spiffe:\/\/example\.org\/other/],
    ['a private key of another certificate', { svids: [{ spiffeId: ID, chain: [leaf], key: root.privateKey, bundle: [root] }] }, /private key does not belong/],
    ['a bundle that is not DER', { svids: [{ spiffeId: ID, chain: [leaf], key: leaf.privateKey, bundle: ['-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'] }] }, /bundle: not DER certificates/],
    ['an empty bundle', { svids: [{ spiffeId: ID, chain: [leaf], key: leaf.privateKey, bundle: [] }] }, /bundle: not DER certificates/],
    ['a federated bundle keyed by a workload ID', { svids: [{ spiffeId: ID, chain: [leaf], key: leaf.privateKey, bundle: [root] }], federated: { 'spiffe://other.org/ns/x': [otherRoot] } }, /"spiffe:\/\/other\.org\/ns\/x" is not a trust domain/],
  ];
  for (const [name, state, message] of refused) {
    it(`refuses ${name}`, () => {
      assert.throws(() => readX509Context(decodeX509(state)), (err: unknown) => err instanceof WorkloadApiError && message.test(err.message));
    });
  }

  it('never lets a federated entry replace the workload\'s own trust domain bundle', () => {
    const context = readX509Context(decodeX509({ svids: [{ spiffeId: ID, chain: [leaf], key: leaf.privateKey, bundle: [root] }], federated: { 'spiffe://example.org': [otherRoot] } }));
    assert.deepEqual(context.bundles.get('example.org')?.map((c) => c.fingerprint256), [fp(root.pem)]);
  });
});

describe('the material Mandate serves with', () => {
  const second = makeSvid('spiffe://example.org/ns/mandate/sa/admin', { issuer: { name: 'example.org root', key: root.privateKey } });
  const context = readX509Context(
    decodeX509({
      svids: [
        { spiffeId: ID, chain: [leaf, intermediate], key: leaf.privateKey, bundle: [root] },
        { spiffeId: 'spiffe://example.org/ns/mandate/sa/admin', chain: [second], key: second.privateKey, bundle: [root] },
      ],
      federated: { 'spiffe://other.org': [otherRoot], 'spiffe://stranger.org': [otherRoot] },
    }),
  );

  it('is the first SVID unless one is named, with the authorities of the accepted trust domains only', () => {
    const first = materialFromContext(context, null, ['example.org', 'other.org']);
    assert.equal(first.spiffeId, ID);
    assert.deepEqual([...(first.authorities?.keys() ?? [])].sort(), ['example.org', 'other.org']);
    assert.equal((first.clientCaPem?.match(/BEGIN CERTIFICATE/g) ?? []).length, 2);
    assert.equal(materialFromContext(context, 'spiffe://example.org/ns/mandate/sa/admin', ['example.org']).spiffeId, 'spiffe://example.org/ns/mandate/sa/admin');
  });

  it('is refused when the named SVID is missing or no accepted domain has a bundle', () => {
    assert.throws(() => materialFromContext(context, 'spiffe://example.org/ns/nobody', ['example.org']), (e: unknown) => e instanceof TlsSourceError && /no X\.509-SVID for spiffe:\/\/example\.org\/ns\/nobody/.test(e.message));
    assert.throws(() => materialFromContext(context, null, ['third.org']), (e: unknown) => e instanceof TlsSourceError && /no bundle for third\.org/.test(e.message));
  });
});

describe('reading FetchJWTBundles messages', () => {
  it('keys bundles by trust domain, with or without the spiffe:// prefix', () => {
    const bundles = readJwtBundles(decodeJwt({ 'spiffe://example.org': '{"keys":[]}', 'other.org': '{"keys":[1]}' }));
    assert.deepEqual([...bundles.entries()], [['example.org', '{"keys":[]}'], ['other.org', '{"keys":[1]}']]);
  });

  it('refuses a key that is not a trust domain', () => {
    assert.throws(() => readJwtBundles(decodeJwt({ 'spiffe://example.org/ns/x': '{}' })), WorkloadApiError);
    assert.equal(trustDomainOfKey('Example.org'), null);
    assert.equal(trustDomainOfKey(''), null);
  });
});
