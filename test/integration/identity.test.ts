// Workload identity end to end: a real server with JWT-SVIDs, XFCC from trusted hops and
// peer certificates, called over gRPC with a client built from Envoy's upstream protos.

import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ReasonCode } from '../../src/core/reasons.js';
import { makeSvid, KU_DIGITAL_SIGNATURE, KU_KEY_CERT_SIGN } from '../helpers/certs.js';
import { makeTrustDomain, mint } from '../helpers/jwt.js';
import { BILLING_AGENT, SUPPORT_AGENT, checkRequest } from '../helpers/requests.js';
import { copyExample, startExampleServer, type RunningServer } from '../helpers/server.js';
import { createCheckClient, type CheckClient, type CheckResponseObject } from '../helpers/upstream.js';

const EDGE = 'spiffe://example.org/ns/edge/sa/front-proxy';
const example = makeTrustDomain('example.org', ['ES256', 'RS256']);

function configWith(identityYaml: string): string {
  const { dir, config } = copyExample();
  writeFileSync(join(dir, 'example.org.json'), example.bundle());
  // Replace the example's identity section with the one under test.
  const base = readFileSync(config, 'utf8').replace(/^identity:\n(?: {2}.*\n)+/m, '');
  writeFileSync(config, `${base}\n${identityYaml}`);
  return config;
}

const IDENTITY = `identity:
  jwtSvid:
    audiences: [mandate]
  bundles:
    - { trustDomain: example.org, file: ./example.org.json }
  xfcc:
    trustedPeers: ["${EDGE}"]
    trustedAddresses: [192.0.2.0/24]
  groups:
    - { match: "spiffe://example.org/ns/support/*", group: 'WorkloadGroup::"support"' }
`;

function code(res: CheckResponseObject): ReasonCode | null {
  return res.deniedResponse ? (JSON.parse(res.deniedResponse.body ?? '{}') as { code: ReasonCode }).code : null;
}
function principalHeader(res: CheckResponseObject): string | undefined {
  return res.okResponse?.headers?.find((h) => h.header?.key === 'x-mandate-principal')?.header?.value;
}

describe('identity sources over gRPC', () => {
  let running: RunningServer;
  let client: CheckClient;
  before(async () => {
    running = await startExampleServer(configWith(IDENTITY));
    client = createCheckClient(running.address);
  });
  after(async () => {
    client.close();
    await running.close();
  });

  const bearer = async (sub: string, extra: Parameters<typeof mint>[0] extends infer O ? Partial<O> : never = {}) =>
    `Bearer ${await mint({ key: example.keys[0]!, sub, ...extra })}`;

  it('identifies a caller by its JWT-SVID alone', async () => {
    const res = await client.check(checkRequest('GET', '/tickets/T-1', { headers: { authorization: await bearer(SUPPORT_AGENT) } }));
    assert.equal(code(res), null);
    assert.equal(principalHeader(res), SUPPORT_AGENT);
  });

  it('reads the scheme in any case, followed by any whitespace, and only at the start', async () => {
    const token = await mint({ key: example.keys[0]!, sub: SUPPORT_AGENT });
    for (const authorization of [`bearer ${token}`, `BEARER \t  ${token}`, `BeArEr\t${token} `]) {
      const res = await client.check(checkRequest('GET', '/tickets/T-1', { headers: { authorization } }));
      assert.equal(code(res), null, JSON.stringify(authorization.slice(0, 12)));
      assert.equal(principalHeader(res), SUPPORT_AGENT);
    }
    // No whitespace after the scheme, or another scheme: no JWT-SVID is read (an anonymous caller).
    for (const authorization of [`Bearer${token}`, `Token ${token}`, ` Bearer ${token}`]) {
      const res = await client.check(checkRequest('GET', '/tickets/T-1', { headers: { authorization } }));
      assert.equal(code(res), 'unauthenticated', JSON.stringify(authorization.slice(0, 12)));
    }
  });

  it('accepts an mTLS peer and a JWT-SVID that name the same workload', async () => {
    const res = await client.check(checkRequest('GET', '/tickets/T-1', { principal: SUPPORT_AGENT, headers: { authorization: await bearer(SUPPORT_AGENT) } }));
    assert.equal(code(res), null);
  });

  const refused: [string, () => Promise<Record<string, unknown>>, ReasonCode][] = [
    ['an mTLS peer and a JWT-SVID that disagree', async () => checkRequest('GET', '/tickets/T-1', { principal: BILLING_AGENT, headers: { authorization: await bearer(SUPPORT_AGENT) } }), 'identity_conflict'],
    ['an expired JWT-SVID', async () => checkRequest('GET', '/tickets/T-1', { headers: { authorization: await bearer(SUPPORT_AGENT, { expiresIn: -3600 }) } }), 'token_expired'],
    ['a JWT-SVID for another audience', async () => checkRequest('GET', '/tickets/T-1', { headers: { authorization: await bearer(SUPPORT_AGENT, { aud: 'billing-api' }) } }), 'invalid_token'],
    ['a Bearer value that is not a JWT', async () => checkRequest('GET', '/tickets/T-1', { headers: { authorization: 'Bearer opaque-api-key-123' } }), 'invalid_token'],
    ['two Bearer tokens merged into one header', async () => checkRequest('GET', '/tickets/T-1', { headers: { authorization: `${await bearer(SUPPORT_AGENT)},${await bearer(BILLING_AGENT)}` } }), 'invalid_token'],
    ['an XFCC from a trusted hop that is malformed', async () => checkRequest('GET', '/tickets/T-1', { principal: EDGE, headers: { 'x-forwarded-client-cert': 'URI="spiffe://example.org/x' } }), 'invalid_identity'],
    ['an XFCC from a trusted hop naming two URIs', async () => checkRequest('GET', '/tickets/T-1', { principal: EDGE, headers: { 'x-forwarded-client-cert': `URI=${SUPPORT_AGENT};URI=${BILLING_AGENT}` } }), 'invalid_identity'],
    ['an XFCC from a trusted hop naming an untrusted domain', async () => checkRequest('GET', '/tickets/T-1', { principal: EDGE, headers: { 'x-forwarded-client-cert': 'URI=spiffe://evil.example/agent' } }), 'untrusted_domain'],
    ['a peer certificate with two URI SANs', async () => withCert(makeSvid(SUPPORT_AGENT, { uris: [SUPPORT_AGENT, BILLING_AGENT] }).urlEncoded), 'invalid_identity'],
    ['a CA certificate as peer', async () => withCert(makeSvid(SUPPORT_AGENT, { ca: true, keyUsage: [KU_DIGITAL_SIGNATURE, KU_KEY_CERT_SIGN] }).urlEncoded), 'invalid_identity'],
    ['a certificate whose URI SAN is not the reported principal', async () => withCert(makeSvid(BILLING_AGENT).urlEncoded), 'invalid_identity'],
  ];
  for (const [name, build, expected] of refused) {
    it(`refuses ${name} with ${expected}`, async () => {
      assert.equal(code(await client.check(await build())), expected);
    });
  }

  it('judges a JWT-SVID by its own clock, not by the time a (backdated) CheckRequest claims', async () => {
    const then = Math.floor(Date.now() / 1000) - 7200;
    const stale = `Bearer ${await mint({ key: example.keys[0]!, sub: SUPPORT_AGENT, now: then, expiresIn: 300 })}`;
    const request = checkRequest('GET', '/tickets/T-1', { headers: { authorization: stale } }) as { attributes: { request: { time?: unknown } } };
    request.attributes.request.time = { seconds: String(then + 60) };
    assert.equal(code(await client.check(request)), 'token_expired');
    // A token not yet valid by our clock is refused even when the request claims a later time.
    const early = `Bearer ${await mint({ key: example.keys[0]!, sub: SUPPORT_AGENT, notBeforeIn: 3600, expiresIn: 7200 })}`;
    const future = checkRequest('GET', '/tickets/T-1', { headers: { authorization: early } }) as { attributes: { request: { time?: unknown } } };
    future.attributes.request.time = { seconds: String(Math.floor(Date.now() / 1000) + 5400) };
    assert.equal(code(await client.check(future)), 'invalid_token');
    // The server keeps serving.
    assert.equal(code(await client.check(checkRequest('GET', '/tickets/T-1', { headers: { authorization: await bearer(SUPPORT_AGENT) } }))), null);
  });

  it('refuses a JWT-SVID without exp', async () => {
    assert.equal(code(await client.check(checkRequest('GET', '/tickets/T-1', { headers: { authorization: await bearer(SUPPORT_AGENT, { omit: ['exp'] }) } }))), 'invalid_token');
  });

  it('accepts a peer certificate that is a valid X.509-SVID for the principal', async () => {
    assert.equal(code(await client.check(withCert(makeSvid(SUPPORT_AGENT).urlEncoded))), null);
  });

  it('ignores, and counts, an XFCC header from a peer that is not a trusted hop', async () => {
    const before = running.runtime.identifier.stats.xfccIgnored;
    const forged = `By=${EDGE};URI=${SUPPORT_AGENT}`;
    const res = await client.check(checkRequest('GET', '/tickets/T-1', { principal: BILLING_AGENT, headers: { 'x-forwarded-client-cert': forged } }));
    assert.equal(code(res), 'policy_denied', 'decided as the billing agent, not as the forged support agent');
    const anonymous = await client.check(checkRequest('GET', '/tickets/T-1', { headers: { 'x-forwarded-client-cert': forged } }));
    assert.equal(code(anonymous), 'unauthenticated');
    assert.equal(running.runtime.identifier.stats.xfccIgnored, before + 2);
  });

  it('believes the XFCC of a trusted hop: the last element names the client', async () => {
    const xfcc = `By=spiffe://example.org/ns/outer;URI=spiffe://example.org/ns/other,By=${EDGE};Hash=abc;Subject="CN=agent,O=Example";URI=${SUPPORT_AGENT}`;
    const res = await client.check(checkRequest('GET', '/tickets/T-1', { principal: EDGE, headers: { 'x-forwarded-client-cert': xfcc } }));
    assert.equal(code(res), null);
    assert.equal(principalHeader(res), SUPPORT_AGENT);
  });

  it('believes the XFCC of a hop trusted by address', async () => {
    const request = checkRequest('GET', '/tickets/T-1', { headers: { 'x-forwarded-client-cert': `URI=${SUPPORT_AGENT}` } }) as { attributes: { source: { address: unknown } } };
    request.attributes.source.address = { socketAddress: { address: '192.0.2.10', portValue: 443 } };
    assert.equal(code(await client.check(request)), null);
  });

  it('puts workloads into groups by SPIFFE ID pattern', async () => {
    const bot = 'spiffe://example.org/ns/support/sa/triage-bot';
    assert.equal(code(await client.check(checkRequest('GET', '/tickets', { principal: bot }))), null);
    assert.equal(code(await client.check(checkRequest('GET', '/tickets', { principal: 'spiffe://example.org/ns/billing/sa/bot' }))), 'policy_denied');
  });

  it('verifies a repeated JWT-SVID once', async () => {
    const token = await bearer(SUPPORT_AGENT);
    const stats = running.runtime.identifier.jwt?.stats;
    assert.ok(stats);
    const misses = stats.misses;
    for (let i = 0; i < 10; i++) assert.equal(code(await client.check(checkRequest('GET', '/tickets/T-1', { headers: { authorization: token } }))), null);
    assert.equal(stats.misses, misses + 1);
  });
});

describe('identity precedence', () => {
  for (const [precedence, expected] of [['jwt-svid', SUPPORT_AGENT], ['x509', BILLING_AGENT]] as const) {
    it(`lets ${precedence} win when the peer and the JWT-SVID disagree`, async () => {
      const running = await startExampleServer(configWith(`${IDENTITY}  precedence: ${precedence}\n`));
      const client = createCheckClient(running.address);
      try {
        const token = await mint({ key: example.keys[1]!, sub: SUPPORT_AGENT });
        const res = await client.check(checkRequest('GET', '/tickets', { principal: BILLING_AGENT, headers: { authorization: `Bearer ${token}` } }));
        if (expected === SUPPORT_AGENT) assert.equal(principalHeader(res), SUPPORT_AGENT);
        else assert.equal(code(res), 'policy_denied');
      } finally {
        client.close();
        await running.close();
      }
    });
  }
});

function withCert(urlEncodedPem: string): Record<string, unknown> {
  const request = checkRequest('GET', '/tickets/T-1', { principal: SUPPORT_AGENT }) as { attributes: { source: Record<string, unknown> } };
  request.attributes.source['certificate'] = urlEncodedPem;
  return request;
}
