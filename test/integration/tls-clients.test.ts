// TLS files that rotate under a running server, a server that cannot get its SVID, and the
// client commands over TLS and mTLS (issue #15 §1): `mandate health`, `mandate check --server`
// and `mandate task` with --tls-ca/--tls-cert/--tls-key or --workload-api, against real server
// processes.

import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { connect as connectTcp } from 'node:net';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { KU_CRL_SIGN, KU_DIGITAL_SIGNATURE, KU_KEY_CERT_SIGN, makeCertificate, makeSvid, type Cert } from '../helpers/certs.js';
import { makeTrustDomain } from '../helpers/jwt.js';
import { SUPPORT_AGENT } from '../helpers/requests.js';
import { REQUESTS_DIR, exampleWith, runCli, spawnServer, startExampleServer, type ChildServer } from '../helpers/server.js';
import { TestWorkloadApi } from '../helpers/workload-api.js';
import { waitFor } from '../helpers/wait.js';

const MANDATE = 'spiffe://example.org/ns/mandate/sa/mandate';
const CLI = 'spiffe://example.org/ns/ops/sa/cli';
const pkcs8 = (c: Cert): string => c.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
const fingerprint = (c: Cert): string => new X509Certificate(c.pem).fingerprint256;
const ca = makeCertificate({ subject: 'example.org authority', ca: true, keyUsage: [KU_KEY_CERT_SIGN, KU_CRL_SIGN] });
const issuer = { name: 'example.org authority', key: ca.privateKey };
const serverSvid = (): Cert => makeCertificate({ subject: 'mandate', uris: [MANDATE], keyUsage: [KU_DIGITAL_SIGNATURE], issuer });

function served(address: string, client: Cert): Promise<string> {
  const at = address.lastIndexOf(':');
  return new Promise((resolveFp, reject) => {
    const socket = connect({ host: address.slice(0, at), port: Number(address.slice(at + 1)), servername: 'mandate.test', ca: ca.pem, cert: client.pem, key: pkcs8(client), ALPNProtocols: ['h2'], checkServerIdentity: () => undefined }, () => {
      resolveFp(socket.getPeerCertificate().fingerprint256);
      socket.end();
    });
    socket.on('error', reject);
  });
}

describe('TLS from files that rotate, and the client commands over mTLS', () => {
  const first = serverSvid();
  const cli = makeSvid(CLI, { issuer });
  let dir = '';
  let server: ChildServer;

  before(async () => {
    ({ dir } = exampleWith({ tls: 'tls:\n  cert: ./tls/svid.pem\n  key: ./tls/svid-key.pem\n  clientCa: ./tls/bundle.pem\n' }, {}));
    const { mkdirSync } = await import('node:fs');
    mkdirSync(join(dir, 'tls'));
    writeFileSync(join(dir, 'tls/svid.pem'), first.pem);
    writeFileSync(join(dir, 'tls/svid-key.pem'), pkcs8(first));
    writeFileSync(join(dir, 'tls/bundle.pem'), ca.pem);
    server = await spawnServer(['--config', join(dir, 'mandate.yaml')]);
  });
  after(async () => {
    server.child.kill('SIGTERM');
    await server.exited;
  });

  const tlsFlags = ['--tls-ca', 'bundle.pem'];

  it('answers `mandate health` over mTLS, checking the server by its SPIFFE ID', async () => {
    writeFileSync(join(dir, 'cli.pem'), cli.pem);
    writeFileSync(join(dir, 'cli-key.pem'), pkcs8(cli));
    const mtls = ['--tls-ca', join(dir, 'tls/bundle.pem'), '--tls-cert', join(dir, 'cli.pem'), '--tls-key', join(dir, 'cli-key.pem')];
    const ok = await runCli(['health', '--server', server.address, ...mtls, '--server-id', MANDATE]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout, 'SERVING\n');
    assert.equal(ok.stderr, '', 'no warning about IP addresses as TLS server names');
    const wrongId = await runCli(['health', '--server', server.address, ...mtls, '--server-id', 'spiffe://example.org/ns/other/sa/other']);
    assert.equal(wrongId.code, 1);
    assert.match(wrongId.stdout, /^UNREACHABLE: /);
    // Plaintext against a TLS port, and TLS without a client certificate: no answer, exit 1.
    assert.equal((await runCli(['health', '--server', server.address])).code, 1);
    assert.equal((await runCli(['health', '--server', server.address, '--tls-ca', join(dir, 'tls/bundle.pem')])).code, 1);
    // A question a request file asks, over the same connection settings.
    const checked = await runCli(['check', '--server', server.address, ...mtls, '--server-id', MANDATE, join(REQUESTS_DIR, 'allow-support-list-tickets.json')]);
    assert.equal(checked.code, 0, checked.stderr);
    assert.equal(JSON.parse(checked.stdout).decision, 'allow');
  });

  it('reports the served certificate\'s expiry and the refused clients in /metrics and /v1/status', async () => {
    const admin = /"admin":"([^"]+)"/.exec(server.stderr())?.[1] ?? '';
    // A client without a certificate fails the handshake.
    assert.equal((await runCli(['health', '--server', server.address, '--tls-ca', join(dir, 'tls/bundle.pem')])).code, 1);
    const text = await (await fetch(`http://${admin}/metrics`)).text();
    const notAfter = Number(/^mandate_tls_certificate_not_after_seconds\{[^}]*\} (\S+)$/m.exec(text)?.[1]);
    const status = (await (await fetch(`http://${admin}/v1/status`)).json()) as { tls: { source: string; spiffeId: string; notAfter: string } };
    assert.equal(status.tls.source, 'files');
    assert.equal(status.tls.spiffeId, MANDATE);
    assert.equal(notAfter, Date.parse(status.tls.notAfter) / 1000);
    // The certificate being served is still the first one (the rotation test comes later).
    assert.equal(notAfter * 1000, Date.parse(new X509Certificate(first.pem).validTo));
    assert.ok(Number(/^mandate_tls_refused_total\{[^}]*stage="handshake"[^}]*\} (\S+)$/m.exec(text)?.[1]) >= 1);
  });

  it('refuses TLS flags that do not go together, with one line and the usage', async () => {
    const cases: [string[], RegExp][] = [
      [['health', '--tls-cert', 'a.pem'], /--tls-cert and --tls-key go together/],
      [['health', '--server-id', MANDATE], /need --tls-ca \(or --workload-api\)/],
      [['health', '--workload-api', 'unix:///x.sock', ...tlsFlags], /--workload-api supplies the certificates/],
      [['health', '--workload-api', '/x.sock'], /--workload-api "\/x\.sock" must be unix:\/\/\/path or tcp:\/\/IP:PORT/],
      [['health', '--tls-ca', ...tlsFlags.slice(1), '--server-id', 'mandate'], /--server-id "mandate" is not a SPIFFE ID/],
      [['check', '--tls-ca', 'x.pem', 'req.json'], /the TLS options apply to --server only/],
    ];
    for (const [args, message] of cases) {
      const r = await runCli(args);
      assert.equal(r.code, 1, args.join(' '));
      assert.match(r.stderr, message);
      assert.match(r.stderr, /usage:/);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    }
  });

  it('serves a rotated certificate to new connections without a restart, and only a whole pair', async () => {
    assert.equal(await served(server.address, cli), fingerprint(first));
    const next = serverSvid();
    // The certificate lands before its key: a pair that does not match is not taken.
    writeFileSync(join(dir, 'tls/svid.pem.tmp'), next.pem);
    renameSync(join(dir, 'tls/svid.pem.tmp'), join(dir, 'tls/svid.pem'));
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(await served(server.address, cli), fingerprint(first));
    assert.match(server.stderr(), /TLS material not updated; the previous certificate stays in use.*does not belong to the certificate/);
    writeFileSync(join(dir, 'tls/svid-key.pem.tmp'), pkcs8(next));
    renameSync(join(dir, 'tls/svid-key.pem.tmp'), join(dir, 'tls/svid-key.pem'));
    await waitFor('new connections get the new certificate', async () => (await served(server.address, cli)) === fingerprint(next));
    const health = await runCli(['health', '--server', server.address, '--tls-ca', join(dir, 'tls/bundle.pem'), '--tls-cert', join(dir, 'cli.pem'), '--tls-key', join(dir, 'cli-key.pem'), '--server-id', MANDATE]);
    assert.equal(health.code, 0, health.stderr);
  });
});

describe('a TLS handshake that never finishes', () => {
  it('is cut off after limits.handshakeTimeoutMs, counted, and the server keeps serving', async () => {
    const svid = serverSvid();
    const { config } = exampleWith({ tls: 'tls:\n  cert: ./svid.pem\n  key: ./svid-key.pem\n  clientCa: ./bundle.pem\n' }, { 'svid.pem': svid.pem, 'svid-key.pem': pkcs8(svid), 'bundle.pem': ca.pem });
    writeFileSync(config, readFileSync(config, 'utf8').replace(/^limits:\n/m, 'limits:\n  handshakeTimeoutMs: 300\n'));
    const running = await startExampleServer(config);
    try {
      const at = running.address.lastIndexOf(':');
      // A client that connects and says nothing (a slow-handshake attack holds a connection slot).
      const closed = await new Promise<boolean>((resolveClosed) => {
        const socket = connectTcp(Number(running.address.slice(at + 1)), running.address.slice(0, at));
        const guard = setTimeout(() => {
          socket.destroy();
          resolveClosed(false);
        }, 5000);
        socket.on('error', () => undefined);
        socket.on('close', () => {
          clearTimeout(guard);
          resolveClosed(true);
        });
      });
      assert.equal(closed, true, 'the server closed the silent connection');
      assert.ok((running.server.tls()?.failedHandshakes ?? 0) >= 1);
      const client = makeSvid(CLI, { issuer });
      assert.equal(await served(running.address, client), fingerprint(svid), 'a real client still gets through');
    } finally {
      await running.close();
    }
  });
});

describe('a plaintext connection that never sends the HTTP/2 preface', () => {
  it('is cut off after limits.handshakeTimeoutMs, while an HTTP/2 connection stays open', async () => {
    const { config } = exampleWith({});
    writeFileSync(config, readFileSync(config, 'utf8').replace(/^limits:\n/m, 'limits:\n  handshakeTimeoutMs: 300\n'));
    const running = await startExampleServer(config);
    try {
      const at = running.address.lastIndexOf(':');
      const [host, port] = [running.address.slice(0, at), Number(running.address.slice(at + 1))];
      const closedWithin = (socketClose: (done: () => void) => void, ms: number): Promise<boolean> =>
        new Promise((resolveClosed) => {
          const guard = setTimeout(() => resolveClosed(false), ms);
          socketClose(() => {
            clearTimeout(guard);
            resolveClosed(true);
          });
        });
      const silent = connectTcp(port, host);
      silent.on('error', () => undefined);
      assert.equal(await closedWithin((done) => silent.on('close', done), 5000), true, 'the silent connection was closed');
      // A real HTTP/2 client sends its preface at once and is left alone past the limit.
      const { connect: connectH2 } = await import('node:http2');
      const session = connectH2(`http://${running.address}`);
      session.on('error', () => undefined);
      assert.equal(await closedWithin((done) => session.on('close', done), 1000), false, 'the HTTP/2 connection stayed open');
      session.close();
    } finally {
      await running.close();
    }
  });
});

describe('the Workload API for servers that start and for client commands', () => {
  const api = new TestWorkloadApi();
  const jwt = makeTrustDomain('example.org');
  const mandate = serverSvid();
  const agent = makeSvid(SUPPORT_AGENT, { issuer });
  let server: ChildServer;

  before(async () => {
    await api.start();
    // One agent answers both workloads here (a real agent attests each caller): the client
    // command takes the first SVID, the default identity; the server the one its config names.
    api.setX509({
      svids: [
        { spiffeId: SUPPORT_AGENT, chain: [agent], key: agent.privateKey, bundle: [ca] },
        { spiffeId: MANDATE, chain: [mandate], key: mandate.privateKey, bundle: [ca] },
      ],
    });
    api.setJwtBundles({ 'spiffe://example.org': jwt.bundle() });
    api.jwtSigner = { key: jwt.keys[0]!, spiffeId: SUPPORT_AGENT };
    const { config } = exampleWith({
      identity: 'identity:\n  jwtSvid:\n    audiences: [mandate]\n  bundles:\n    - { trustDomain: example.org, workloadApi: true }\n',
      tls: 'tls:\n  workloadApi: true\n',
      workloadApi: `workloadApi:\n  socket: ${api.address}\n  spiffeId: ${MANDATE}\n`,
      decisionLog: 'decisionLog:\n  sink: "off"\n',
    });
    server = await spawnServer(['--config', config]);
  });
  after(async () => {
    server?.child.kill('SIGTERM');
    await server?.exited;
    await api.close();
  });

  it('starts a task with the SVID and the JWT-SVID from the Workload API', async () => {
    const health = await runCli(['health', '--server', server.address, '--workload-api', api.address]);
    assert.equal(health.code, 0, health.stderr);
    const started = await runCli(['task', 'start', '--server', server.address, '--workload-api', api.address, '--purpose', 'read T-1', '--tenant', 'acme', '--tool', 'tickets.read'], undefined, { MANDATE_JWT_SVID: '' });
    assert.equal(started.code, 0, started.stderr);
    assert.deepEqual((JSON.parse(started.stdout) as { grantedTools: string[] }).grantedTools, ['tickets.read']);
    assert.equal(api.refusedWithoutHeader, 0);
  });

  it('stops `mandate serve` with one line when the Workload API does not answer', async () => {
    const { config } = exampleWith({ tls: 'tls:\n  workloadApi: true\n', workloadApi: `workloadApi:\n  socket: unix://${join(api.socketPath, '..', 'nobody.sock')}\n  timeoutMs: 300\n` });
    const r = await runCli(['serve', '--config', config, '--listen', '127.0.0.1:0', '--admin-listen', 'off']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /mandate serve: no X\.509-SVID from the Workload API at unix:\/\/\/.*nobody\.sock within 300 ms\n/);
    assert.doesNotMatch(r.stderr, /"msg":"listening"/);
  });
});
