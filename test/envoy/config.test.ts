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

  it('buffers the body only on the routes whose decision reads it: whole, as bytes, within the limit Mandate enforces', () => {
    assert.equal(extAuthzFilter()['with_request_body'], undefined, 'not filter-wide');
    const routes = envoy['static_resources'].listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes as Obj[];
    const settings = (r: Obj): Obj => r['typed_per_filter_config']['envoy.filters.http.ext_authz'].check_settings;
    const buffered = routes.filter((r) => settings(r).with_request_body !== undefined);
    for (const r of buffered) assert.deepEqual(settings(r).with_request_body, { max_request_bytes: example.limits.maxBodyBytes, allow_partial_message: false, pack_as_bytes: true });
    // Exactly Mandate's routes that read a body (body: true, MCP), matched by exact path.
    const bodyPaths = example.routes.filter((r) => r.body || r.mcp !== null).map((r) => r.path).sort();
    assert.deepEqual(buffered.map((r) => r['match'].path).sort(), bodyPaths);
    assert.ok(bodyPaths.length > 0 && bodyPaths.every((p) => !p.includes('{')), 'the example\'s body routes have fixed paths Envoy can match exactly');
    const fallback = routes.at(-1) as Obj;
    assert.equal(fallback['match'].prefix, '/');
    assert.equal(settings(fallback).with_request_body, undefined, 'every other request streams unbuffered');
  });

  it('calls Mandate over mTLS with SDS from the SPIRE agent, and checks Mandate\'s SPIFFE ID', () => {
    const clusters = envoy['static_resources'].clusters as Obj[];
    const mandate = clusters.find((c) => c['name'] === 'mandate') as Obj;
    const tls = mandate['transport_socket'].typed_config;
    assert.equal(tls['@type'], 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext');
    const common = tls['common_tls_context'];
    assert.equal(common.tls_certificate_sds_secret_configs[0].sds_config.api_config_source.grpc_services[0].envoy_grpc.cluster_name, 'spire_agent');
    assert.deepEqual(common.combined_validation_context.default_validation_context.match_typed_subject_alt_names, [{ san_type: 'URI', matcher: { exact: 'spiffe://example.org/ns/mandate/sa/mandate' } }]);
    assert.equal(common.combined_validation_context.validation_context_sds_secret_config.name, `spiffe://${example.trustDomains[0]}`);
    assert.deepEqual(common.alpn_protocols, ['h2']);
    const spire = clusters.find((c) => c['name'] === 'spire_agent') as Obj;
    assert.ok(spire['load_assignment'].endpoints[0].lb_endpoints[0].endpoint.address.pipe.path.endsWith('.sock'));
    const listenerTls = envoy['static_resources'].listeners[0].filter_chains[0].transport_socket.typed_config.common_tls_context;
    assert.equal(listenerTls.validation_context_sds_secret_config.name, `spiffe://${example.trustDomains[0]}`);
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

  it('normalizes paths and refuses header names with underscores before ext_authz (one reading for Mandate and the upstream)', () => {
    const hcm = envoy['static_resources'].listeners[0].filter_chains[0].filters[0].typed_config;
    assert.equal(hcm.normalize_path, true);
    assert.equal(hcm.path_with_escaped_slashes_action, 'REJECT_REQUEST');
    assert.equal(hcm.common_http_protocol_options?.headers_with_underscores_action, 'REJECT_REQUEST');
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
