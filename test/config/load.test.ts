import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { DEFAULTS } from '../../src/config/defaults.js';
import { ConfigError, EMBEDDED_CONFIG, lineOfField, loadConfig, parseConfig } from '../../src/config/load.js';
import { kPackageRoot } from '../../src/package-root.js';

const MINIMAL = { policies: './p', routes: [{ method: 'GET', path: '/' }] };

describe('parseConfig', () => {
  it('fills every default from the table', () => {
    const config = parseConfig(MINIMAL, '/etc/mandate', null);
    assert.equal(config.listen, DEFAULTS.listen);
    assert.equal(config.policies, '/etc/mandate/p');
    assert.equal(config.application, DEFAULTS.application);
    assert.deepEqual(config.contextHeaders, DEFAULTS.contextHeaders);
    assert.equal(config.forwardedHost, 'refuse');
    assert.equal(config.limits.maxBodyBytes, DEFAULTS.maxBodyBytes);
    assert.equal(config.principalHeader, DEFAULTS.principalHeader);
    assert.ok(Object.isFrozen(config));
  });

  it('turns the principal header off with null', () => {
    assert.equal(parseConfig({ ...MINIMAL, response: { principalHeader: null } }, '/', null).principalHeader, null);
  });

  const errors: [string, unknown, string][] = [
    ['an unknown top-level key', { ...MINIMAL, polices: './p' }, 'config.polices: unknown key'],
    ['an unknown nested key', { ...MINIMAL, limits: { maxBodyBytez: 1 } }, 'config.limits.maxBodyBytez: unknown key'],
    ['a missing policy directory key', { routes: [] }, 'config.policies: is required'],
    ['missing routes', { policies: './p' }, 'config.routes: is required'],
    ['a route with an unknown method', { ...MINIMAL, routes: [{ method: 'BREW', path: '/' }] }, 'config.routes[0].method: must be one of'],
    ['a route with an unknown key', { ...MINIMAL, routes: [{ method: 'GET', path: '/', bodyy: true }] }, 'config.routes[0].bodyy: unknown key'],
    ['a limit out of range', { ...MINIMAL, limits: { maxBodyBytes: -1 } }, 'config.limits.maxBodyBytes: must be an integer'],
    ['a limit of the wrong type', { ...MINIMAL, limits: { maxPathBytes: '8k' } }, 'config.limits.maxPathBytes: must be an integer'],
    ['an unknown evaluation mode', { ...MINIMAL, evaluation: { mode: 'fast' } }, 'config.evaluation.mode: "fast" is not inline, pool or auto'],
    ['no evaluation workers', { ...MINIMAL, evaluation: { workers: 0 } }, 'config.evaluation.workers: must be an integer'],
    ['an unbounded evaluation queue', { ...MINIMAL, evaluation: { maxQueue: 0 } }, 'config.evaluation.maxQueue: must be an integer'],
    ['a bad listen address', { ...MINIMAL, listen: 'localhost' }, 'config.listen: "localhost" is not HOST:PORT'],
    ['a trust domain with upper case', { ...MINIMAL, trustDomains: ['Example.org'] }, 'config.trustDomains[0]: "Example.org" is not a SPIFFE trust domain name'],
    ['a cookie header in the context', { ...MINIMAL, context: { headers: ['Cookie'] } }, 'config.context.headers[0]: "Cookie" carries credentials'],
    ['a token-like header in the context', { ...MINIMAL, context: { headers: ['x-access-token'] } }, 'config.context.headers[0]: "x-access-token" carries credentials'],
    ['an unknown forwardedHost', { ...MINIMAL, context: { forwardedHost: 'trust' } }, 'config.context.forwardedHost: "trust" is neither refuse nor ignore'],
    ['explain that is not a boolean', { ...MINIMAL, explain: 'yes' }, 'config.explain: must be true or false'],
    ['a config that is a list', [], 'config: must be a mapping'],
    ['jwtSvid without audiences', { ...MINIMAL, trustDomains: ['example.org'], identity: { jwtSvid: {}, bundles: [{ trustDomain: 'example.org', file: 'b.json' }] } }, 'config.identity.jwtSvid.audiences: is required'],
    ['jwtSvid without bundles', { ...MINIMAL, trustDomains: ['example.org'], identity: { jwtSvid: { audiences: ['m'] } } }, 'config.identity.bundles: is required when jwtSvid is set'],
    ['a bundle for a trust domain that is not trusted', { ...MINIMAL, trustDomains: ['example.org'], identity: { bundles: [{ trustDomain: 'other.org', file: 'b.json' }] } }, 'config.identity.bundles[0].trustDomain: "other.org" is not in trustDomains'],
    ['a bundle with both file and url', { ...MINIMAL, trustDomains: ['example.org'], identity: { bundles: [{ trustDomain: 'example.org', file: 'b.json', url: 'https://x' }] } }, 'config.identity.bundles[0]: needs exactly one of file, url or workloadApi: true'],
    ['a bundle URL over plain HTTP', { ...MINIMAL, trustDomains: ['example.org'], identity: { bundles: [{ trustDomain: 'example.org', url: 'http://spire/keys' }] } }, 'config.identity.bundles[0].url: must be an https:// URL'],
    ['a trusted XFCC peer that is not a SPIFFE ID', { ...MINIMAL, identity: { xfcc: { trustedPeers: ['front-proxy'] } } }, 'config.identity.xfcc.trustedPeers[0]: "front-proxy" is not a SPIFFE ID'],
    ['a trusted XFCC address that is not an address', { ...MINIMAL, identity: { xfcc: { trustedAddresses: ['10.0.0.0/33'] } } }, 'config.identity.xfcc.trustedAddresses[0]: "10.0.0.0/33" is not an IP address or CIDR block'],
    ['an unknown precedence', { ...MINIMAL, identity: { precedence: 'newest' } }, 'config.identity.precedence: must be none, x509 or jwt-svid'],
    ['a group that is not an entity reference', { ...MINIMAL, identity: { groups: [{ match: 'spiffe://a/*', group: 'support' }] } }, 'config.identity.groups[0].group: "support" is not a Cedar entity reference'],
    ['an unknown identity key', { ...MINIMAL, identity: { mtls: true } }, 'config.identity.mtls: unknown key'],
  ];
  for (const [name, raw, message] of errors) {
    it(`rejects ${name}, naming the field`, () => {
      assert.throws(() => parseConfig(raw, '/', null), (err: unknown) => err instanceof ConfigError && err.message.startsWith(message));
    });
  }
});

describe('loadConfig', () => {
  it('loads the embedded example with no file named', () => {
    const config = loadConfig({ file: null, env: {} });
    assert.equal(config.configFile, EMBEDDED_CONFIG);
    assert.deepEqual(config.trustDomains, ['example.org']);
    assert.equal(config.routes.length, 7);
  });

  it('takes the listen address from --listen, then MANDATE_LISTEN, then the file', () => {
    assert.equal(loadConfig({ file: null, env: {} }).listen, '127.0.0.1:9191');
    assert.equal(loadConfig({ file: null, env: { MANDATE_LISTEN: '127.0.0.1:7000' } }).listen, '127.0.0.1:7000');
    assert.equal(loadConfig({ file: null, listen: '127.0.0.1:7001', env: { MANDATE_LISTEN: '127.0.0.1:7000' } }).listen, '127.0.0.1:7001');
  });

  it('reports an unreadable config file', () => {
    assert.throws(() => loadConfig({ file: '/nonexistent/mandate.yaml', env: {} }), /config: cannot read \/nonexistent\/mandate.yaml: ENOENT/);
  });
});

describe('docs/configuration.md', () => {
  it('states the same defaults as the code', () => {
    const doc = readFileSync(resolve(kPackageRoot, 'docs/configuration.md'), 'utf8');
    const row = (key: string): string => {
      const match = new RegExp(`^\\| \`${key.replace(/\./g, '\\.')}\` \\| ([^|]+) \\|`, 'm').exec(doc);
      assert.ok(match, `docs/configuration.md has a row for ${key}`);
      return (match[1] as string).trim();
    };
    assert.equal(row('listen'), `\`${DEFAULTS.listen}\``);
    assert.equal(row('application'), `\`${DEFAULTS.application}\``);
    assert.equal(row('trustDomains'), '`[]`');
    assert.equal(row('context.headers'), `\`[${DEFAULTS.contextHeaders.join(', ')}]\``);
    assert.equal(row('context.forwardedHost'), `\`${DEFAULTS.forwardedHost}\``);
    assert.equal(row('limits.maxPathBytes'), `\`${DEFAULTS.maxPathBytes}\``);
    assert.equal(row('limits.maxBodyBytes'), `\`${DEFAULTS.maxBodyBytes}\``);
    assert.equal(row('limits.maxBodyDepth'), `\`${DEFAULTS.maxBodyDepth}\``);
    for (const key of ['maxBatchCalls', 'maxHeaders', 'maxHeaderBytes', 'maxMessageBytes', 'maxConcurrentStreams', 'maxConnections'] as const) {
      assert.equal(row(`limits.${key}`), `\`${DEFAULTS[key]}\``);
    }
    assert.equal(row('allowEmptyPolicies'), '`false`');
    assert.equal(row('explain'), `\`${DEFAULTS.explain}\``);
    assert.equal(row('response.principalHeader'), `\`${DEFAULTS.principalHeader}\``);
    assert.equal(row('watch'), `\`${DEFAULTS.watch}\``);
    assert.equal(row('shutdown.graceMs'), `\`${DEFAULTS.shutdownGraceMs}\``);
    assert.equal(row('decisionLog.sink'), `\`${DEFAULTS.decisionLogSink}\``);
    assert.equal(row('admin.listen'), `\`${DEFAULTS.adminListen}\``);
    assert.equal(row('decisionLog.maxBufferBytes'), `\`${DEFAULTS.decisionLogMaxBufferBytes}\``);
    assert.equal(row('evaluation.mode'), `\`${DEFAULTS.evaluationMode}\``);
    assert.equal(row('evaluation.workers'), 'cores − 1 (at least 1)');
    assert.equal(row('evaluation.maxQueue'), `\`${DEFAULTS.evaluationMaxQueue}\``);
    assert.equal(row('evaluation.maxBatch'), `\`${DEFAULTS.evaluationMaxBatch}\``);
  });
});

describe('config errors name the line', () => {
  const write = (text: string): string => {
    const dir = mkdtempSync(join(tmpdir(), 'mandate-config-line-'));
    writeFileSync(join(dir, 'mandate.yaml'), text);
    return join(dir, 'mandate.yaml');
  };
  const lines = [
    'listen: 127.0.0.1:9191', // 1
    'policies: ./policies', // 2
    'routes:', // 3
    '  - { method: GET, path: /status }', // 4
    '  - method: FETCH', // 5
    '    path: /x', // 6
    'evaluation:', // 7
    '  mode: fast', // 8
  ];

  it('reports file:line of the field, then the field and the problem', () => {
    const file = write(`${lines.join('\n')}\n`);
    assert.throws(() => loadConfig({ file, env: {} }), (err: unknown) => err instanceof ConfigError && err.message.startsWith(`${file}:5: config.routes[1]`) && err.at === `${file}:5`);
    const mode = write(`${[...lines.slice(0, 4), ...lines.slice(7 - 1)].join('\n')}\n`);
    assert.throws(() => loadConfig({ file: mode, env: {} }), (err: unknown) => err instanceof ConfigError && err.message.startsWith(`${mode}:6: config.evaluation.mode: "fast" is not inline, pool or auto`));
  });

  it('finds fields by key, item and nesting, and falls back to the nearest enclosing key', () => {
    const text = `${lines.join('\n')}\n`;
    assert.equal(lineOfField(text, 'config.routes[1].method'), 5);
    assert.equal(lineOfField(text, 'config.routes[1].path'), 6);
    assert.equal(lineOfField(text, 'config.evaluation.mode'), 8);
    assert.equal(lineOfField(text, 'config.evaluation.workers'), 7, 'absent: its parent');
    assert.equal(lineOfField(text, 'config.tasks.store'), 1, 'nothing there: the top');
  });
});
