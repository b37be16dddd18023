// The task API over TLS: a caller is identified by its X.509-SVID client certificate, verified
// against the configured trust bundle; without one (or with one from another CA) it cannot
// even connect.

import assert from 'node:assert/strict';
/** A grpc-js client method, called with the client as `this` (clients built at run time have no typed methods). */
type GrpcMethod = (...args: unknown[]) => unknown;
import { credentials, makeClientConstructor, Metadata, type Client, type ServiceError } from '@grpc/grpc-js';
import { after, before, describe, it } from 'node:test';
import { TASKS_SERVICE } from '../../src/server/protos.js';
import { KU_CRL_SIGN, KU_DIGITAL_SIGNATURE, KU_KEY_CERT_SIGN, makeCertificate, makeSvid, type Cert } from '../helpers/certs.js';
import { SUPPORT_AGENT } from '../helpers/requests.js';
import { exampleWith, startExampleServer, type RunningServer } from '../helpers/server.js';

const Tasks = makeClientConstructor(TASKS_SERVICE, 'mandate.tasks.v1.Tasks');
const pem = (c: Cert) => c.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;

describe('task API over mTLS', () => {
  const ca = makeCertificate({ subject: 'example.org SPIFFE CA', ca: true, keyUsage: [KU_KEY_CERT_SIGN, KU_CRL_SIGN] });
  const serverCert = makeCertificate({ subject: 'mandate', ips: ['127.0.0.1'], uris: ['spiffe://example.org/ns/mandate/sa/mandate'], keyUsage: [KU_DIGITAL_SIGNATURE], issuer: { name: 'example.org SPIFFE CA', key: ca.privateKey } });
  const agent = makeSvid(SUPPORT_AGENT, { issuer: { name: 'example.org SPIFFE CA', key: ca.privateKey } });
  let running: RunningServer;

  before(async () => {
    const { config } = exampleWith(
      { tls: 'tls:\n  cert: ./server.pem\n  key: ./server-key.pem\n  clientCa: ./bundle.pem\n' },
      { 'server.pem': serverCert.pem, 'server-key.pem': pem(serverCert), 'bundle.pem': ca.pem },
    );
    running = await startExampleServer(config);
  });
  after(async () => running.close());

  function startTask(creds: ReturnType<typeof credentials.createSsl>): Promise<Record<string, unknown>> {
    const client = new Tasks(running.address, creds) as Client & Record<string, GrpcMethod>;
    return new Promise((resolve, reject) => {
      (client['StartTask'] as GrpcMethod).call(client, { purpose: 'p', tenant: 'acme', tools: ['tickets.read'] }, new Metadata(), { deadline: new Date(Date.now() + 3000) }, (err: ServiceError | null, res: Record<string, unknown>) => {
        client.close();
        err ? reject(err) : resolve(res);
      });
    });
  }

  it('identifies the caller by its client certificate', async () => {
    const res = await startTask(credentials.createSsl(Buffer.from(ca.pem), Buffer.from(pem(agent)), Buffer.from(agent.pem)));
    assert.deepEqual(res['grantedTools'], ['tickets.read']);
    const claims = JSON.parse(Buffer.from(String(res['token']).split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
    assert.equal(claims['req_wl'], SUPPORT_AGENT);
    assert.deepEqual(claims['rctx'], { authn: 'x509' });
  });

  it('refuses a client without a certificate', async () => {
    await assert.rejects(startTask(credentials.createSsl(Buffer.from(ca.pem))), (e) => (e as ServiceError).code === 14);
  });

  it('refuses a client certificate from another CA', async () => {
    const other = makeCertificate({ subject: 'other CA', ca: true, keyUsage: [KU_KEY_CERT_SIGN] });
    const stranger = makeSvid(SUPPORT_AGENT, { issuer: { name: 'other CA', key: other.privateKey } });
    await assert.rejects(startTask(credentials.createSsl(Buffer.from(ca.pem), Buffer.from(pem(stranger)), Buffer.from(stranger.pem))), (e) => (e as ServiceError).code === 14);
  });

  it('refuses a CA-issued certificate that is not a valid X.509-SVID', async () => {
    const twoUris = makeSvid(SUPPORT_AGENT, { uris: [SUPPORT_AGENT, 'spiffe://example.org/other'], issuer: { name: 'example.org SPIFFE CA', key: ca.privateKey } });
    await assert.rejects(startTask(credentials.createSsl(Buffer.from(ca.pem), Buffer.from(pem(twoUris)), Buffer.from(twoUris.pem))), (e) => String((e as ServiceError).details).startsWith('invalid_identity:'));
  });
});
