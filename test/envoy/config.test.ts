// envoy/ holds what a user deploys; no Envoy binary runs here, so these files are checked
// against Envoy's own protos and for the settings Mandate relies on.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { loadConfig } from '../../src/config/load.js';
import { kPackageRoot } from '../../src/package-root.js';
import { checkEnvoyMessage, loadEnvoyRoot } from '../helpers/envoy-schema.js';

// biome-ignore lint/suspicious/noExplicitAny: walks Envoy's YAML, whose shape the assertions themselves check
type Obj = Record<string, any>;

const envoy = parse(readFileSync(resolve(kPackageRoot, 'envoy/envoy.yaml'), 'utf8')) as Obj;
const example = loadConfig({ file: null, env: {} });

function extAuthzFilter(): Obj {
  const hcm = envoy['static_resources'].listeners[0].filter_chains[0].filters[0].typed_config;
  const filter = (hcm.http_filters as Obj[]).find((f) => f['name'] === 'envoy.filters.http.ext_authz');
  assert.ok(filter, 'an ext_authz HTTP filter');
  return filter['typed_config'] as Obj;
}

describe('envoy/envoy.yaml', () => {
  it('is a valid Envoy bootstrap: every field, enum and @type exists in Envoy\'s protos', () => {
    const root = loadEnvoyRoot();
    assert.deepEqual(checkEnvoyMessage(root, 'envoy.config.bootstrap.v3.Bootstrap', envoy), []);
  });

  it('the check catches a misspelt field (it can fail)', () => {
    const root = loadEnvoyRoot();
    const broken = structuredClone(envoy);
    broken['static_resources'].listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.failure_mode_alow = true;
    assert.match(checkEnvoyMessage(root, 'envoy.config.bootstrap.v3.Bootstrap', broken).join('\n'), /failure_mode_alow: not a field of envoy\.extensions\.filters\.http\.ext_authz\.v3\.ExtAuthz/);
  });

  it('calls Mandate over gRPC v3 with a timeout and fails closed', () => {
    const authz = extAuthzFilter();
    assert.equal(authz['transport_api_version'], 'V3');
    assert.equal(authz['failure_mode_allow'], false);
    assert.match(authz['grpc_service'].timeout, /^\d+(\.\d+)?s$/);
    assert.equal(authz['include_peer_certificate'], true);
  });

  it('sends the body whole, as bytes, within the limit Mandate enforces', () => {
    const body = extAuthzFilter()['with_request_body'] as Obj;
    assert.deepEqual(body, { max_request_bytes: example.limits.maxBodyBytes, allow_partial_message: false, pack_as_bytes: true });
  });

  it('points the mandate cluster at the example listen port over HTTP/2', () => {
    const cluster = (envoy['static_resources'].clusters as Obj[]).find((c) => c['name'] === extAuthzFilter()['grpc_service'].envoy_grpc.cluster_name);
    assert.ok(cluster, 'the cluster the filter names exists');
    const socket = cluster['load_assignment'].endpoints[0].lb_endpoints[0].endpoint.address.socket_address;
    assert.equal(`${socket.address}:${socket.port_value}`, example.listen);
    assert.ok(cluster['typed_extension_protocol_options']['envoy.extensions.upstreams.http.v3.HttpProtocolOptions'].explicit_http_config.http2_protocol_options);
    assert.ok(cluster['health_checks'][0].grpc_health_check, 'health checked with grpc.health.v1');
  });

  it('routes to an upstream cluster that exists, and requires client certificates', () => {
    const chain = envoy['static_resources'].listeners[0].filter_chains[0];
    const route = chain.filters[0].typed_config.route_config.virtual_hosts[0].routes[0];
    assert.ok((envoy['static_resources'].clusters as Obj[]).some((c) => c['name'] === route.route.cluster));
    assert.equal(chain.transport_socket.typed_config.require_client_certificate, true);
    assert.equal(chain.filters[0].typed_config.forward_client_cert_details, 'SANITIZE');
  });
});

describe('envoy/istio', () => {
  const mesh = parse(readFileSync(resolve(kPackageRoot, 'envoy/istio/mesh-config.yaml'), 'utf8')) as Obj;
  const policy = parse(readFileSync(resolve(kPackageRoot, 'envoy/istio/authorization-policy.yaml'), 'utf8')) as Obj;
  const provider = (mesh['spec'].meshConfig.extensionProviders as Obj[])[0] as Obj;

  it('registers Mandate as an envoyExtAuthzGrpc provider that fails closed', () => {
    assert.equal(provider['envoyExtAuthzGrpc'].port, 9191);
    assert.equal(provider['envoyExtAuthzGrpc'].failOpen, false);
    assert.deepEqual(provider['envoyExtAuthzGrpc'].includeRequestBodyInCheck, { maxRequestBytes: example.limits.maxBodyBytes, allowPartialMessage: false, packAsBytes: true });
  });

  it('normalizes paths before ext_authz, so Mandate decides on the path the upstream gets', () => {
    assert.equal(mesh['spec'].meshConfig.pathNormalization?.normalization, 'DECODE_AND_MERGE_SLASHES');
  });

  it('has an AuthorizationPolicy with action CUSTOM naming that provider', () => {
    assert.equal(policy['kind'], 'AuthorizationPolicy');
    assert.equal(policy['spec'].action, 'CUSTOM');
    assert.equal(policy['spec'].provider.name, provider['name']);
  });
});
