// Only Envoy should reach the Check port (issue #12 §4): with TLS, a client CA and
// tls.checkClients, a Check from any other workload is refused with PERMISSION_DENIED (a gRPC
// error, which Envoy's failure_mode_allow: false turns into a deny), and the server keeps
// deciding for the allowed client. A client without a certificate cannot connect at all.

import assert from 'node:assert/strict';
import { credentials, type ServiceError } from '@grpc/grpc-js';
import { after, before, describe, it } from 'node:test';
import { KU_CRL_SIGN, KU_DIGITAL_SIGNATURE, KU_KEY_CERT_SIGN, makeCertificate, makeSvid, type Cert } from '../helpers/certs.js';
import { SUPPORT_AGENT, checkRequest } from '../helpers/requests.js';
import { exampleWith, startExampleServer, type RunningServer } from '../helpers/server.js';
import { createCheckClient } from '../helpers/upstream.js';

const ENVOY = 'spiffe://example.org/ns/gateway/sa/envoy';
const pem = (c: Cert) => c.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;

describe('Check over mTLS with tls.checkClients', () => {
  const issuer = { name: 'example.org SPIFFE CA' } as const;
  const ca = makeCertificate({ subject: issuer.name, ca: true, keyUsage: [KU_KEY_CERT_SIGN, KU_CRL_SIGN] });
  const serverCert = makeCertificate({ subject: 'mandate', ips: ['127.0.0.1'], uris: ['spiffe://example.org/ns/mandate/sa/mandate'], keyUsage: [KU_DIGITAL_SIGNATURE], issuer: { ...issuer, key: ca.privateKey } });
  const envoy = makeSvid(ENVOY, { issuer: { ...issuer, key: ca.privateKey } });
  const agent = makeSvid(SUPPORT_AGENT, { issuer: { ...issuer, key: ca.privateKey } });
  const asClient = (c: Cert) => credentials.createSsl(Buffer.from(ca.pem), Buffer.from(pem(c)), Buffer.from(c.pem));
  let running: RunningServer;

  before(async () => {
    const { config } = exampleWith(
      { tls: `tls:\n  cert: ./server.pem\n  key: ./server-key.pem\n  clientCa: ./bundle.pem\n  checkClients: ["${ENVOY}"]\n` },
      { 'server.pem': serverCert.pem, 'server-key.pem': pem(serverCert), 'bundle.pem': ca.pem },
    );
    running = await startExampleServer(config);
  });
  after(async () => running.close());

  it('decides for the allowed ext_authz client', async () => {
    const client = createCheckClient(running.address, asClient(envoy));
    try {
      const res = await client.check(checkRequest('GET', '/tickets/T-1', { principal: SUPPORT_AGENT }));
      assert.equal(res.status?.code ?? 0, 0);
    } finally {
      client.close();
    }
  });

  it('refuses any other workload with PERMISSION_DENIED, and keeps deciding for Envoy', async () => {
    const stranger = createCheckClient(running.address, asClient(agent));
    try {
      await assert.rejects(stranger.check(checkRequest('GET', '/tickets/T-1', { principal: SUPPORT_AGENT })), (e: ServiceError) => {
        assert.equal(e.code, 7);
        assert.match(e.details, /spiffe:\/\/example\.org\/ns\/support\/sa\/support-agent is not in tls\.checkClients/);
        return true;
      });
    } finally {
      stranger.close();
    }
    const client = createCheckClient(running.address, asClient(envoy));
    try {
      assert.equal((await client.check(checkRequest('GET', '/tickets/T-1', { principal: SUPPORT_AGENT }))).status?.code ?? 0, 0);
    } finally {
      client.close();
    }
  });

  it('refuses a client without a certificate at the handshake', async () => {
    const anonymous = createCheckClient(running.address, credentials.createSsl(Buffer.from(ca.pem)));
    try {
      await assert.rejects(anonymous.check(checkRequest('GET', '/tickets/T-1', { principal: SUPPORT_AGENT }), 3000), (e: ServiceError) => e.code === 14);
    } finally {
      anonymous.close();
    }
  });
});
