// The tls and workloadApi sections (issue #15 §1): TLS from files or from the SPIFFE Workload
// API; the Workload API's address from the config or SPIFFE_ENDPOINT_SOCKET, in the SPIFFE
// Workload Endpoint standard's two forms only.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, parseConfig } from '../../src/config/load.js';
import { parseEndpointAddress } from '../../src/config/workload-api.js';

const MINIMAL = { policies: './p', routes: [{ method: 'GET', path: '/' }], trustDomains: ['example.org'] };

describe('Workload Endpoint addresses', () => {
  const good: [string, string][] = [
    ['unix:///run/spire/sockets/agent.sock', 'unix:/run/spire/sockets/agent.sock'],
    ['unix:/run/spire/agent.sock', 'unix:/run/spire/agent.sock'],
    ['tcp://127.0.0.1:8081', '127.0.0.1:8081'],
    ['tcp://[::1]:8081', '[::1]:8081'],
  ];
  for (const [address, target] of good) {
    it(`reads ${address}`, () => assert.deepEqual(parseEndpointAddress(address), { ok: true, target }));
  }
  const bad = ['unix://host/run/agent.sock', 'unix:relative.sock', 'unix:///run/agent.sock?x=1', 'unix:///run/agent.sock#f', 'tcp://spire-agent:8081', 'tcp://127.0.0.1', 'tcp://127.0.0.1:0', 'tcp://127.0.0.1:99999', '/run/agent.sock', 'http://127.0.0.1:8081', ''];
  for (const address of bad) {
    it(`refuses "${address}"`, () => assert.equal(parseEndpointAddress(address).ok, false));
  }
});

describe('the tls and workloadApi sections', () => {
  it('takes TLS from the Workload API at the configured socket', () => {
    const config = parseConfig({ ...MINIMAL, tls: { workloadApi: true, checkClients: ['spiffe://example.org/envoy'] }, workloadApi: { socket: 'unix:///run/agent.sock', spiffeId: 'spiffe://example.org/mandate' } }, '/etc', null);
    assert.deepEqual(config.tls, { source: 'workloadApi', checkClients: ['spiffe://example.org/envoy'] });
    assert.deepEqual(config.workloadApi, { target: 'unix:/run/agent.sock', address: 'unix:///run/agent.sock', spiffeId: 'spiffe://example.org/mandate', timeoutMs: 10_000 });
  });

  it('falls back to SPIFFE_ENDPOINT_SOCKET, and the file wins over it', () => {
    const raw = { ...MINIMAL, identity: { bundles: [{ trustDomain: 'example.org', workloadApi: true }] } };
    assert.equal(parseConfig(raw, '/etc', null, undefined, undefined, 'unix:///env.sock').workloadApi?.target, 'unix:/env.sock');
    assert.equal(parseConfig({ ...raw, workloadApi: { socket: 'unix:///file.sock' } }, '/etc', null, undefined, undefined, 'unix:///env.sock').workloadApi?.target, 'unix:/file.sock');
    assert.deepEqual(parseConfig(raw, '/etc', null, undefined, undefined, 'unix:///env.sock').identity.bundles, [{ trustDomain: 'example.org', kind: 'workloadApi' }]);
  });

  it('keeps TLS files as files, resolved next to the config', () => {
    const config = parseConfig({ ...MINIMAL, tls: { cert: 'svid.pem', key: 'svid-key.pem', clientCa: 'bundle.pem' } }, '/etc/mandate', null);
    assert.deepEqual(config.tls, { source: 'files', cert: '/etc/mandate/svid.pem', key: '/etc/mandate/svid-key.pem', clientCa: '/etc/mandate/bundle.pem', checkClients: [] });
    assert.equal(config.workloadApi, null);
  });

  const errors: [string, Record<string, unknown>, string][] = [
    ['the Workload API with no address anywhere', { tls: { workloadApi: true } }, 'config.workloadApi.socket: is required (or SPIFFE_ENDPOINT_SOCKET)'],
    ['an address in neither standard form', { tls: { workloadApi: true }, workloadApi: { socket: '/run/agent.sock' } }, 'config.workloadApi.socket: "/run/agent.sock" must be unix:///path or tcp://IP:PORT'],
    ['a workloadApi section nothing uses', { workloadApi: { socket: 'unix:///run/agent.sock' } }, 'config.workloadApi: is set but nothing uses it'],
    ['files beside workloadApi', { tls: { workloadApi: true, cert: 'a.pem' }, workloadApi: { socket: 'unix:///a' } }, 'config.tls.cert: cannot be set with workloadApi'],
    ['a served SPIFFE ID that is not one', { tls: { workloadApi: true }, workloadApi: { socket: 'unix:///a', spiffeId: 'mandate' } }, 'config.workloadApi.spiffeId: "mandate" is not a SPIFFE ID'],
    ['TLS with neither files nor the Workload API', { tls: { checkClients: [] } }, 'config.tls: needs cert and key (PEM files), or workloadApi: true'],
    ['a bundle from both a file and the Workload API', { identity: { bundles: [{ trustDomain: 'example.org', file: 'b.json', workloadApi: true }] }, workloadApi: { socket: 'unix:///a' } }, 'config.identity.bundles[0]: needs exactly one of file, url or workloadApi: true'],
    ['an unknown workloadApi key', { tls: { workloadApi: true }, workloadApi: { socket: 'unix:///a', path: '/x' } }, 'config.workloadApi.path: unknown key'],
  ];
  for (const [name, extra, message] of errors) {
    it(`rejects ${name}, naming the field`, () => {
      assert.throws(() => parseConfig({ ...MINIMAL, ...extra }, '/', null), (err: unknown) => err instanceof ConfigError && err.message.startsWith(message));
    });
  }
});
