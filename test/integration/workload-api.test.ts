// Identity material from the SPIFFE Workload API, rotated while the server runs (issue #15 §1).
// A Workload API server of our own (test/helpers/workload-api.ts) on a Unix socket streams
// Mandate's X.509-SVID, the X.509 bundles and the JWT bundles, and changes them mid-test:
// new connections get the new certificate while open ones keep deciding, a client signed by a
// removed authority is refused, one signed by a new authority is accepted, a federated
// domain's authority cannot vouch for our domain, and a JWT-SVID signed by a new authority is
// accepted once its bundle arrives.

import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect, type PeerCertificate } from 'node:tls';
import { credentials, type ChannelCredentials, type ServiceError } from '@grpc/grpc-js';
import { after, before, describe, it } from 'node:test';
import { KU_CRL_SIGN, KU_KEY_CERT_SIGN, makeCertificate, makeSvid, type Cert } from '../helpers/certs.js';
import { makeKey, makeTrustDomain, mint } from '../helpers/jwt.js';
import { SUPPORT_AGENT, checkRequest } from '../helpers/requests.js';
import { copyExample, startExampleServer, type RunningServer } from '../helpers/server.js';
import { createCheckClient } from '../helpers/upstream.js';
import { TestWorkloadApi, type SvidEntry } from '../helpers/workload-api.js';
import { waitFor } from '../helpers/wait.js';

const MANDATE = 'spiffe://example.org/ns/mandate/sa/mandate';
const ENVOY = 'spiffe://example.org/ns/gateway/sa/envoy';
const OTHER_ENVOY = 'spiffe://other.org/ns/gateway/sa/envoy';

const pkcs8 = (c: Cert): string => c.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
const authority = (name: string): Cert & { issuer: { name: string; key: Cert['privateKey'] } } => {
  const ca = makeCertificate({ subject: name, ca: true, keyUsage: [KU_KEY_CERT_SIGN, KU_CRL_SIGN] });
  return { ...ca, issuer: { name, key: ca.privateKey } };
};

/** The client side: trusts every authority of the test, checks the server's SPIFFE ID (an SVID has no host name). */
function clientCredentials(cert: Cert, roots: Cert[]): ChannelCredentials {
  return credentials.createSsl(Buffer.from(roots.map((r) => r.pem).join('')), Buffer.from(pkcs8(cert)), Buffer.from(cert.pem), {
    checkServerIdentity: (_host: string, peer: PeerCertificate) => (peer.subjectaltname === `URI:${MANDATE}` ? undefined : new Error(`server is ${peer.subjectaltname}`)),
  });
}

/** The fingerprint of the certificate a new TLS connection to the server is shown. */
function servedFingerprint(address: string, cert: Cert, roots: Cert[]): Promise<string> {
  const at = address.lastIndexOf(':');
  return new Promise((resolveFp, reject) => {
    const socket = connect({ host: address.slice(0, at), port: Number(address.slice(at + 1)), ca: roots.map((r) => r.pem), cert: cert.pem, key: pkcs8(cert), ALPNProtocols: ['h2'], servername: 'mandate.test', checkServerIdentity: () => undefined }, () => {
      resolveFp(socket.getPeerCertificate().fingerprint256);
      socket.end();
    });
    socket.on('error', reject);
  });
}

/** 'allowed', the deny's reason code, or the gRPC error ('grpc 14' UNAVAILABLE: no connection; 'grpc 7': refused caller). */
async function outcome(address: string, creds: ChannelCredentials, request = checkRequest('GET', '/tickets/T-1', { principal: SUPPORT_AGENT })): Promise<string> {
  const client = createCheckClient(address, creds);
  try {
    const res = await client.check(request, 3000);
    if ((res.status?.code ?? 0) === 0) return 'allowed';
    return (JSON.parse(res.deniedResponse?.body ?? '{}') as { code: string }).code;
  } catch (err) {
    return `grpc ${(err as ServiceError).code}`;
  } finally {
    client.close();
  }
}

describe('the SPIFFE Workload API as the source of TLS and JWT material', () => {
  const caA = authority('example.org authority A');
  const caB = authority('example.org authority B');
  const caOther = authority('other.org authority');
  const roots = [caA, caB, caOther];
  const svid1 = makeSvid(MANDATE, { issuer: caA.issuer });
  const svid2 = makeSvid(MANDATE, { issuer: caA.issuer });
  const envoyA = makeSvid(ENVOY, { issuer: caA.issuer });
  const envoyB = makeSvid(ENVOY, { issuer: caB.issuer });
  const jwt = makeTrustDomain('example.org');
  const newJwtKey = makeKey('example.org-key-new');
  const api = new TestWorkloadApi();
  const mandateSvid = (cert: Cert, bundle: Cert[]): SvidEntry => ({ spiffeId: MANDATE, chain: [cert], key: cert.privateKey, bundle });
  let running: RunningServer;

  before(async () => {
    await api.start();
    api.setX509({ svids: [mandateSvid(svid1, [caA])], federated: { 'spiffe://other.org': [caOther] } });
    api.setJwtBundles({ 'spiffe://example.org': jwt.bundle() });
    const { config } = copyExample();
    const yaml = readFileSync(config, 'utf8')
      .replace('trustDomains: [example.org]', 'trustDomains: [example.org, other.org]')
      .replace(/^identity:\n/m, `identity:\n  jwtSvid: { audiences: [mandate] }\n  bundles:\n    - { trustDomain: example.org, workloadApi: true }\n`);
    writeFileSync(config, `${yaml}\ntls:\n  workloadApi: true\n  checkClients: ["${ENVOY}", "${OTHER_ENVOY}"]\nworkloadApi:\n  socket: ${api.address}\n  timeoutMs: 5000\n`);
    running = await startExampleServer(config);
  });
  after(async () => {
    await running?.close();
    await api.close();
  });

  it('serves with the X.509-SVID from the Workload API and decides for Envoy', async () => {
    assert.equal(await servedFingerprint(running.address, envoyA, roots), new (await import('node:crypto')).X509Certificate(svid1.pem).fingerprint256);
    assert.equal(await outcome(running.address, clientCredentials(envoyA, roots)), 'allowed');
    assert.equal(running.server.tls()?.source, 'workloadApi');
    assert.equal(running.server.tls()?.spiffeId, MANDATE);
    assert.equal(api.refusedWithoutHeader, 0, 'every call carried workload.spiffe.io: true');
  });

  it('serves a rotated SVID to new connections while an open connection keeps deciding', async () => {
    const open = createCheckClient(running.address, clientCredentials(envoyA, roots));
    try {
      assert.equal((await open.check(checkRequest('GET', '/tickets/T-1', { principal: SUPPORT_AGENT }))).status?.code ?? 0, 0);
      const want = new (await import('node:crypto')).X509Certificate(svid2.pem).fingerprint256;
      api.setX509({ svids: [mandateSvid(svid2, [caA])], federated: { 'spiffe://other.org': [caOther] } });
      await waitFor('new connections are shown the new SVID', async () => (await servedFingerprint(running.address, envoyA, roots)) === want);
      // The connection made before the rotation still answers.
      assert.equal((await open.check(checkRequest('GET', '/tickets/T-1', { principal: SUPPORT_AGENT }))).status?.code ?? 0, 0);
    } finally {
      open.close();
    }
  });

  it('refuses a client signed by a removed authority and accepts one signed by the new authority', async () => {
    api.setX509({ svids: [mandateSvid(svid2, [caB])], federated: { 'spiffe://other.org': [caOther] } });
    await waitFor('the removed authority no longer vouches', async () => (await outcome(running.address, clientCredentials(envoyA, roots))) === 'grpc 14');
    assert.equal(await outcome(running.address, clientCredentials(envoyB, roots)), 'allowed');
  });

  it('does not let a federated domain\'s authority vouch for an identity in ours', async () => {
    const forged = makeSvid(ENVOY, { issuer: caOther.issuer });
    const refusedBefore = running.server.tls()?.refusedClients ?? 0;
    assert.equal(await outcome(running.address, clientCredentials(forged, roots)), 'grpc 14');
    assert.ok((running.server.tls()?.refusedClients ?? 0) > refusedBefore);
    // The same authority vouches for its own domain: the handshake passes (and checkClients decides).
    assert.equal(await outcome(running.address, clientCredentials(makeSvid(OTHER_ENVOY, { issuer: caOther.issuer }), roots)), 'allowed');
    assert.equal(await outcome(running.address, clientCredentials(makeSvid('spiffe://other.org/ns/x/sa/stranger', { issuer: caOther.issuer }), roots)), 'grpc 7');
  });

  it('accepts a JWT-SVID signed by a new authority once its bundle arrives, not before', async () => {
    const token = await mint({ key: newJwtKey, sub: SUPPORT_AGENT });
    const request = checkRequest('GET', '/tickets/T-1', { headers: { authorization: `Bearer ${token}` } });
    const creds = clientCredentials(envoyB, roots);
    assert.equal(await outcome(running.address, creds, request), 'invalid_token');
    const withNewKey = JSON.parse(jwt.bundle()) as { keys: unknown[] };
    withNewKey.keys.push({ ...newJwtKey.publicKey.export({ format: 'jwk' }), kid: newJwtKey.kid, use: 'jwt-svid' });
    api.setJwtBundles({ 'spiffe://example.org': JSON.stringify(withNewKey) });
    await waitFor('the new JWT authority is trusted', async () => (await outcome(running.address, creds, request)) === 'allowed');
  });

  it('opens the streams again after the agent drops them, and takes the next update', async () => {
    api.dropStreams();
    await waitFor('both streams are open again', () => api.openStreams === 2);
    const token = await mint({ key: jwt.keys[0]!, sub: SUPPORT_AGENT });
    const request = checkRequest('GET', '/tickets/T-1', { headers: { authorization: `Bearer ${token}` } });
    const creds = clientCredentials(envoyB, roots);
    assert.equal(await outcome(running.address, creds, request), 'allowed');
    // The agent stops listing the old JWT authority: its tokens stop verifying.
    const onlyNew = { keys: [{ ...newJwtKey.publicKey.export({ format: 'jwk' }), kid: newJwtKey.kid, use: 'jwt-svid' }] };
    api.setJwtBundles({ 'spiffe://example.org': JSON.stringify(onlyNew) });
    await waitFor('the dropped JWT authority no longer verifies', async () => (await outcome(running.address, creds, request)) === 'invalid_token');
  });

  it('keeps the current certificate when an update does not read', async () => {
    const before = await servedFingerprint(running.address, envoyB, roots);
    api.setX509({ svids: [], raw: Buffer.from([0x0a, 0x05, 0x0a, 0x03, 0x66]) });
    api.setX509({ svids: [{ spiffeId: MANDATE, chain: [svid1], key: svid2.privateKey, bundle: [caB] }] });
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(await servedFingerprint(running.address, envoyB, roots), before);
    assert.equal(await outcome(running.address, clientCredentials(envoyB, roots)), 'allowed');
  });
});
