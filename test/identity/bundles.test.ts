// Trust bundles from files (reloaded on change) and HTTPS endpoints (bounded fetch, refresh,
// last good set kept on failure). The HTTPS server is real, with a CA and certificate made here.

import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BundleSet, parseBundle } from '../../src/identity/bundles.js';
import { KU_CRL_SIGN, KU_DIGITAL_SIGNATURE, KU_KEY_CERT_SIGN, makeCertificate } from '../helpers/certs.js';
import { makeKey, makeTrustDomain } from '../helpers/jwt.js';
import { waitFor } from '../helpers/wait.js';

describe('parseBundle', () => {
  const key = makeKey('k1');
  const jwk = { ...key.publicKey.export({ format: 'jwk' }), kid: 'k1', use: 'jwt-svid' };
  const cases: [string, unknown, boolean, RegExp | number][] = [
    ['takes jwt-svid keys and skips x509-svid ones', { keys: [jwk, { ...jwk, kid: 'x', use: 'x509-svid' }] }, false, 1],
    ['skips "sig" keys in a SPIFFE bundle (jose would take them; the standard says jwt-svid)', { keys: [{ ...jwk, use: 'sig' }] }, false, 0],
    ['takes "sig" keys from an OIDC JWKS endpoint', { keys: [{ ...jwk, use: 'sig' }] }, true, 1],
    ['refuses a key without kid', { keys: [{ ...jwk, kid: undefined }] }, false, /keys\[0\] has no kid/],
    ['refuses private key material', { keys: [{ ...key.privateKey.export({ format: 'jwk' }), kid: 'p', use: 'jwt-svid' }] }, false, /private or symmetric key material/],
    ['refuses a symmetric key', { keys: [{ kty: 'oct', k: 'c2VjcmV0', kid: 's', use: 'jwt-svid' }] }, false, /private or symmetric key material/],
    ['refuses a duplicate kid', { keys: [jwk, jwk] }, false, /kid "k1" appears twice/],
    ['refuses a document without keys', { spiffe_sequence: 1 }, false, /not a JWKS/],
  ];
  for (const [name, doc, acceptSig, expected] of cases) {
    it(name, () => {
      if (typeof expected === 'number') assert.equal(parseBundle(JSON.stringify(doc), 'b.json', acceptSig).size, expected);
      else assert.throws(() => parseBundle(JSON.stringify(doc), 'b.json', acceptSig), expected);
    });
  }
});

describe('file bundles', () => {
  it('reload when the file is replaced, and keep the old keys when the new file is bad', async () => {
    const td = makeTrustDomain('example.org');
    const path = td.writeBundle();
    const errors: string[] = [];
    const set = BundleSet.open([{ trustDomain: 'example.org', kind: 'file', path }], { onError: (_td, m) => errors.push(m) });
    await set.start();
    try {
      assert.deepEqual([...(set.keysFor('example.org')?.keys() ?? [])], [td.keys[0]!.kid]);
      const rotated = makeTrustDomain('example.org');
      writeFileSync(path, rotated.bundle());
      await waitFor('the rotated key is loaded', () => set.keysFor('example.org')?.has(rotated.keys[0]!.kid) === true);
      writeFileSync(path, '{ not json');
      await waitFor('the bad bundle is reported', () => errors.length > 0);
      assert.match(errors[0] ?? '', /not valid JSON/);
      assert.equal(set.keysFor('example.org')?.has(rotated.keys[0]!.kid), true);
    } finally {
      set.stop();
    }
  });
});

describe('HTTPS bundle endpoints', () => {
  const ca = makeCertificate({ subject: 'Test CA', ca: true, keyUsage: [KU_KEY_CERT_SIGN, KU_CRL_SIGN] });
  const leaf = makeCertificate({ subject: '127.0.0.1', ips: ['127.0.0.1'], keyUsage: [KU_DIGITAL_SIGNATURE], issuer: { name: 'Test CA', key: ca.privateKey } });
  const dir = mkdtempSync(join(tmpdir(), 'mandate-https-'));
  const caFile = join(dir, 'ca.pem');
  writeFileSync(caFile, ca.pem);
  let mode: 'serve' | 'fail' | 'hang' = 'serve';
  let doc = makeTrustDomain('partner.org');
  let server: Server;
  let url: string;
  const hung: import('node:http').ServerResponse[] = [];

  before(async () => {
    server = createServer({ cert: leaf.pem, key: leaf.privateKey.export({ format: 'pem', type: 'pkcs8' }) }, (_req, res) => {
      if (mode === 'hang') return void hung.push(res);
      if (mode === 'fail') return void res.writeHead(503).end();
      res.writeHead(200, { 'content-type': 'application/json' }).end(doc.bundle().replace(/"jwt-svid"/g, '"sig"'));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/keys`;
  });
  after(() => {
    for (const res of hung) res.destroy();
    server.close();
  });

  const source = (overrides: Partial<{ timeoutMs: number; caFile: string | null }> = {}) => ({
    trustDomain: 'partner.org',
    kind: 'url' as const,
    url,
    refreshSeconds: 5,
    timeoutMs: overrides.timeoutMs ?? 2000,
    caFile: overrides.caFile === undefined ? caFile : overrides.caFile,
  });

  it('fetches the keys of an OIDC discovery JWKS over HTTPS, trusting the configured CA', async () => {
    mode = 'serve';
    const set = BundleSet.open([source()]);
    await set.start();
    set.stop();
    assert.deepEqual([...(set.keysFor('partner.org')?.keys() ?? [])], [doc.keys[0]!.kid]);
  });

  it('refuses an endpoint whose certificate it cannot verify', async () => {
    mode = 'serve';
    const errors: string[] = [];
    const set = BundleSet.open([source({ caFile: null })], { onError: (_td, m) => errors.push(m) });
    await set.start();
    set.stop();
    assert.equal(set.keysFor('partner.org'), undefined);
    assert.match(errors[0] ?? '', /certificate/);
  });

  it('gives up on an endpoint that does not answer within the timeout', async () => {
    mode = 'hang';
    const errors: string[] = [];
    const set = BundleSet.open([source({ timeoutMs: 300 })], { onError: (_td, m) => errors.push(m) });
    const started = Date.now();
    await set.start();
    set.stop();
    assert.ok(Date.now() - started < 2000, 'start() returned soon after the timeout');
    assert.match(errors[0] ?? '', /no answer within 300 ms/);
    assert.equal(set.keysFor('partner.org'), undefined);
  });

  it('keeps the last good keys while the endpoint fails, and takes new keys when it recovers', async () => {
    mode = 'serve';
    const errors: string[] = [];
    const set = BundleSet.open([source()], { onError: (_td, m) => errors.push(m) });
    await set.start();
    set.stop(); // drive refreshes by hand below instead of waiting for the interval
    const first = doc.keys[0]!.kid;
    mode = 'fail';
    await (set as unknown as { refresh(s: unknown): Promise<void> }).refresh(source());
    assert.match(errors[0] ?? '', /HTTP 503/);
    assert.equal(set.keysFor('partner.org')?.has(first), true);
    mode = 'serve';
    doc = makeTrustDomain('partner.org');
    const generation = set.generation;
    await (set as unknown as { refresh(s: unknown): Promise<void> }).refresh(source());
    assert.equal(set.keysFor('partner.org')?.has(doc.keys[0]!.kid), true);
    assert.equal(set.generation, generation + 1);
  });
});
