// The Kubernetes deployment (deploy/kubernetes/mandate.yaml, the Dockerfile, envoy/istio/) as far
// as this machine allows: no container engine or cluster runs here, so the manifests are parsed
// and checked against each other, against the config they carry (which must validate, with its
// paths where the volumes mount) and against the Istio provider.

import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { parse, parseAllDocuments } from 'yaml';
import { loadRuntime } from '../../src/cli/runtime.js';
import { EMBEDDED_CONFIG } from '../../src/config/load.js';
import { kPackageRoot } from '../../src/package-root.js';

// biome-ignore lint/suspicious/noExplicitAny: Kubernetes objects, whose shape the assertions check
type Obj = Record<string, any>;

const MANIFEST = resolve(kPackageRoot, 'deploy/kubernetes/mandate.yaml');
const docs = parseAllDocuments(readFileSync(MANIFEST, 'utf8')).map((d) => d.toJS() as Obj);
const find = (kind: string, name: string): Obj => {
  const d = docs.find((x) => x['kind'] === kind && x['metadata']?.name === name);
  assert.ok(d, `${kind} ${name} is in the manifest`);
  return d as Obj;
};
const deployment = find('Deployment', 'mandate');
const pod = deployment['spec'].template;
const container = pod.spec.containers[0] as Obj;
const configMap = find('ConfigMap', 'mandate-config');
const policiesMap = find('ConfigMap', 'mandate-policies');
const config = parse(configMap['data']['mandate.yaml']) as Obj;
const mountOf = (volume: string): string => (container['volumeMounts'] as Obj[]).find((m) => m['name'] === volume)?.['mountPath'];
const volume = (name: string): Obj => (pod.spec.volumes as Obj[]).find((v) => v['name'] === name) as Obj;
const portOf = (name: string): number => (container['ports'] as Obj[]).find((p) => p['name'] === name)?.['containerPort'];

describe('deploy/kubernetes/mandate.yaml', () => {
  it('is what scripts/kubernetes.mjs generates from the example (no drift)', () => {
    const generated = execFileSync(process.execPath, [resolve(kPackageRoot, 'scripts/kubernetes.mjs'), '--stdout'], { encoding: 'utf8' });
    assert.equal(readFileSync(MANIFEST, 'utf8'), generated);
    const example = resolve(kPackageRoot, 'examples/agent-gateway/policies');
    for (const [file, text] of Object.entries(policiesMap['data'] as Record<string, string>)) assert.equal(text, readFileSync(join(example, file), 'utf8'), file);
  });

  it('carries a config that validates, with its files where the volumes mount them', () => {
    // The ConfigMaps laid out under a temporary root, the config's absolute paths moved there.
    const root = mkdtempSync(join(tmpdir(), 'mandate-k8s-'));
    const place = (mount: string, data: Record<string, string>): void => {
      for (const [file, text] of Object.entries(data)) {
        const at = join(root, mount, file);
        mkdirSync(dirname(at), { recursive: true });
        writeFileSync(at, text.replaceAll('/etc/mandate/', `${root}/etc/mandate/`).replaceAll('/var/run/mandate/', `${root}/var/run/mandate/`));
      }
    };
    assert.equal(volume('config').configMap.name, 'mandate-config');
    assert.equal(volume('policies').configMap.name, 'mandate-policies');
    place(mountOf('config'), configMap['data']);
    place(mountOf('policies'), policiesMap['data']);
    const args = container['args'] as string[];
    const configFile = args[args.indexOf('--config') + 1] as string;
    assert.ok(configFile.startsWith(`${mountOf('config')}/`), 'the config file is in the config volume');
    const runtime = loadRuntime(join(root, configFile), { mode: 'validate' });
    const example = loadRuntime(EMBEDDED_CONFIG, { mode: 'validate' }).store.current.version;
    assert.deepEqual(runtime.store.current.version.policies.map((p) => p.id), example.policies.map((p) => p.id), 'the example\'s policies, all of them');
    assert.equal(runtime.routes.routes.length, loadRuntime(EMBEDDED_CONFIG, { mode: 'validate' }).routes.routes.length, 'its routes, the OpenAPI file included');
    // Every path the config names lies in a mounted volume.
    for (const path of [config['policies'], config['schema'], config['entities']]) assert.ok([mountOf('config'), mountOf('policies')].some((m) => path === m || path.startsWith(`${m}/`)), path);
    assert.ok(config['tasks'].keyFile.startsWith(`${mountOf('task-keys')}/`), 'the signing keys come from the Secret');
    assert.equal(volume('task-keys').secret.secretName, 'mandate-task-keys');
  });

  it('listens where the ports, the Service, the probes and Prometheus look', () => {
    assert.equal(config['listen'], `0.0.0.0:${portOf('grpc')}`);
    assert.equal(config['admin'].listen, `0.0.0.0:${portOf('admin')}`, 'admin on the pod IP, not loopback');
    const service = find('Service', 'mandate');
    assert.deepEqual(
      (service['spec'].ports as Obj[]).map((p) => [p['name'], p['port'], p['targetPort']]),
      [
        ['grpc', 9191, 'grpc'],
        ['admin', 9192, 'admin'],
      ],
    );
    for (const [k, v] of Object.entries(service['spec'].selector as Record<string, string>)) assert.equal(pod.metadata.labels[k], v);
    assert.equal(container['startupProbe'].grpc.port, portOf('grpc'));
    assert.equal(container['livenessProbe'].grpc.port, portOf('grpc'));
    assert.deepEqual(container['readinessProbe'].httpGet, { path: '/readyz', port: 'admin' });
    assert.equal(pod.metadata.annotations['prometheus.io/port'], String(portOf('admin')));
    assert.equal(pod.metadata.annotations['prometheus.io/path'], '/metrics');
  });

  it('shares task state through the Redis it deploys, and keeps a replica up through disruptions', () => {
    const redis = find('Service', 'redis');
    assert.equal(config['tasks'].store.redis, `redis://redis.${redis['metadata'].namespace}.svc.cluster.local:${redis['spec'].ports[0].port}`);
    assert.ok(find('Deployment', 'redis'));
    assert.ok(deployment['spec'].replicas >= 2);
    const pdb = find('PodDisruptionBudget', 'mandate');
    assert.equal(pdb['spec'].minAvailable, 1);
    for (const [k, v] of Object.entries(pdb['spec'].selector.matchLabels as Record<string, string>)) assert.equal(pod.metadata.labels[k], v);
  });

  it('runs as non-root with a read-only root filesystem, no capabilities and resource requests', () => {
    for (const d of docs.filter((x) => x['kind'] === 'Deployment')) {
      const spec = d['spec'].template.spec;
      assert.equal(spec.securityContext.runAsNonRoot, true, d['metadata'].name);
      assert.equal(spec.automountServiceAccountToken, false);
      for (const c of spec.containers as Obj[]) {
        assert.equal(c['securityContext'].readOnlyRootFilesystem, true);
        assert.equal(c['securityContext'].allowPrivilegeEscalation, false);
        assert.deepEqual(c['securityContext'].capabilities.drop, ['ALL']);
        assert.ok(c['resources'].requests.memory && c['resources'].limits.memory);
      }
    }
  });

  it('is what the Istio provider and the Dockerfile expect', () => {
    const mesh = parse(readFileSync(resolve(kPackageRoot, 'envoy/istio/mesh-config.yaml'), 'utf8')) as Obj;
    const provider = mesh['spec'].meshConfig.extensionProviders[0].envoyExtAuthzGrpc;
    const service = find('Service', 'mandate');
    assert.equal(provider.service, `${service['metadata'].name}.${service['metadata'].namespace}.svc.cluster.local`);
    assert.equal(provider.port, 9191);
    assert.ok((config['trustDomains'] as string[]).includes(mesh['spec'].meshConfig.trustDomain), 'the mesh trust domain is one Mandate accepts');
    const dockerfile = readFileSync(resolve(kPackageRoot, 'Dockerfile'), 'utf8');
    const version = (JSON.parse(readFileSync(resolve(kPackageRoot, 'package.json'), 'utf8')) as { version: string }).version;
    assert.equal(container['image'], `mandate:${version}`);
    assert.match(dockerfile, /^USER node$/m, 'a non-root user');
    assert.match(dockerfile, /^FROM .* AS build$/m, 'multi-stage');
    assert.match(dockerfile, /--omit=dev/, 'production dependencies only');
    assert.match(dockerfile, /^HEALTHCHECK .*\n\s+CMD \[.*"health", "--server", "127\.0\.0\.1:9191"\]$/m, 'the gRPC health check');
    const entrypoint = /^ENTRYPOINT \["node", ((?:"--[^"]+", )*)"([^"]+)"\]$/m.exec(dockerfile);
    assert.equal(entrypoint?.[2], '/opt/mandate/node_modules/mandate/dist/src/main.js');
    // The memory settings docs/performance.md measured, and nothing Node would refuse to start with.
    const flags = (entrypoint?.[1] ?? '').split(', ').filter(Boolean).map((f) => JSON.parse(f) as string);
    assert.deepEqual(flags, ['--max-semi-space-size=8', '--heap-growing-percent=25']);
    const started = spawnSync(process.execPath, [...flags, '-e', 'process.stdout.write("ok")'], { encoding: 'utf8' });
    assert.equal(started.stdout, 'ok', started.stderr);
    assert.equal(container['args'][0], 'serve');
  });
});
