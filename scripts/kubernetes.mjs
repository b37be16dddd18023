#!/usr/bin/env node
// Writes deploy/kubernetes/mandate.yaml: Mandate beside Redis in the mandate-system namespace,
// with the embedded example's config, schema, entities and policies in ConfigMaps. Generated so
// the policies in the manifest never drift from examples/agent-gateway (a test compares).
//   node scripts/kubernetes.mjs            writes the file
//   node scripts/kubernetes.mjs --stdout   prints it

import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const example = join(root, 'examples/agent-gateway');
const NS = 'mandate-system';
const labels = { 'app.kubernetes.io/name': 'mandate', 'app.kubernetes.io/part-of': 'mandate' };

// The example's config, for a cluster: files from the ConfigMap mounts, state in Redis shared by
// the replicas, the signing keys from a Secret (the same keys on every replica), admin on the pod IP.
const config = parse(readFileSync(join(example, 'mandate.yaml'), 'utf8'));
config.listen = '0.0.0.0:9191';
config.admin = { listen: '0.0.0.0:9192' };
config.policies = '/etc/mandate/policies';
config.schema = '/etc/mandate/config/schema.cedarschema';
config.entities = '/etc/mandate/config/entities.json';
// Files a route names (OpenAPI documents, pinned MCP tool lists) come from the config ConfigMap.
const routeFiles = [];
for (const route of config.routes) {
  for (const key of ['openapi', 'tools']) {
    if (typeof route[key] !== 'string') continue;
    const file = route[key].replace(/^\.\//, '');
    routeFiles.push(file);
    route[key] = `/etc/mandate/config/${file}`;
  }
}
config.tasks = { ...config.tasks, store: { redis: `redis://redis.${NS}.svc.cluster.local:6379`, keyPrefix: 'mandate:' }, keyFile: '/var/run/mandate/keys/task-keys.json' };

const policyFiles = readdirSync(join(example, 'policies')).filter((f) => f.endsWith('.cedar')).sort();

const docs = [
  { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } },
  {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'mandate-config', namespace: NS, labels },
    data: {
      'mandate.yaml': stringify(config),
      'schema.cedarschema': readFileSync(join(example, 'schema.cedarschema'), 'utf8'),
      'entities.json': readFileSync(join(example, 'entities.json'), 'utf8'),
      ...Object.fromEntries(routeFiles.map((f) => [f, readFileSync(join(example, f), 'utf8')])),
    },
  },
  {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'mandate-policies', namespace: NS, labels },
    data: Object.fromEntries(policyFiles.map((f) => [f, readFileSync(join(example, 'policies', f), 'utf8')])),
  },
  {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'mandate', namespace: NS, labels },
    spec: {
      selector: { 'app.kubernetes.io/name': 'mandate' },
      ports: [
        { name: 'grpc', port: 9191, targetPort: 'grpc', appProtocol: 'grpc' },
        { name: 'admin', port: 9192, targetPort: 'admin', appProtocol: 'http' },
      ],
    },
  },
  {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'mandate', namespace: NS, labels },
    spec: {
      replicas: 2,
      selector: { matchLabels: { 'app.kubernetes.io/name': 'mandate' } },
      template: {
        metadata: {
          labels,
          annotations: { 'prometheus.io/scrape': 'true', 'prometheus.io/port': '9192', 'prometheus.io/path': '/metrics' },
        },
        spec: {
          // Draining takes shutdown.graceMs (default 10 s); give it room.
          terminationGracePeriodSeconds: 20,
          automountServiceAccountToken: false,
          securityContext: { runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000, fsGroup: 1000, seccompProfile: { type: 'RuntimeDefault' } },
          topologySpreadConstraints: [{ maxSkew: 1, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'ScheduleAnyway', labelSelector: { matchLabels: { 'app.kubernetes.io/name': 'mandate' } } }],
          containers: [
            {
              name: 'mandate',
              image: 'mandate:0.1.0',
              args: ['serve', '--config', '/etc/mandate/config/mandate.yaml'],
              ports: [
                { name: 'grpc', containerPort: 9191 },
                { name: 'admin', containerPort: 9192 },
              ],
              // Measured: ~170 MB resident with the example and no worker threads started, ~260 MB
              // with 10,000 policies (docs/performance.md); each pool worker adds ~45 MB when
              // cedar-wasm is needed. One core serves ~5,000-10,000 Checks/s.
              resources: { requests: { cpu: '250m', memory: '256Mi' }, limits: { memory: '512Mi' } },
              securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
              startupProbe: { grpc: { port: 9191 }, periodSeconds: 2, failureThreshold: 30 },
              readinessProbe: { httpGet: { path: '/readyz', port: 'admin' }, periodSeconds: 5 },
              livenessProbe: { grpc: { port: 9191 }, periodSeconds: 10, failureThreshold: 3 },
              volumeMounts: [
                { name: 'config', mountPath: '/etc/mandate/config', readOnly: true },
                { name: 'policies', mountPath: '/etc/mandate/policies', readOnly: true },
                { name: 'task-keys', mountPath: '/var/run/mandate/keys', readOnly: true },
              ],
            },
          ],
          volumes: [
            { name: 'config', configMap: { name: 'mandate-config' } },
            // A ConfigMap volume is the symlinked ..data layout Mandate follows and reloads on change.
            { name: 'policies', configMap: { name: 'mandate-policies' } },
            { name: 'task-keys', secret: { secretName: 'mandate-task-keys', defaultMode: 0o440 } },
          ],
        },
      },
    },
  },
  {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: { name: 'mandate', namespace: NS, labels },
    spec: { minAvailable: 1, selector: { matchLabels: { 'app.kubernetes.io/name': 'mandate' } } },
  },
  {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'redis', namespace: NS, labels: { 'app.kubernetes.io/name': 'redis', 'app.kubernetes.io/part-of': 'mandate' } },
    spec: { selector: { 'app.kubernetes.io/name': 'redis' }, ports: [{ name: 'redis', port: 6379, targetPort: 6379 }] },
  },
  {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'redis', namespace: NS, labels: { 'app.kubernetes.io/name': 'redis', 'app.kubernetes.io/part-of': 'mandate' } },
    spec: {
      replicas: 1,
      selector: { matchLabels: { 'app.kubernetes.io/name': 'redis' } },
      template: {
        metadata: { labels: { 'app.kubernetes.io/name': 'redis', 'app.kubernetes.io/part-of': 'mandate' } },
        spec: {
          automountServiceAccountToken: false,
          securityContext: { runAsNonRoot: true, runAsUser: 999, seccompProfile: { type: 'RuntimeDefault' } },
          containers: [
            {
              name: 'redis',
              image: 'redis:7-alpine',
              // Task state lives for minutes; an AOF keeps it across a restart of this pod.
              args: ['--appendonly', 'yes', '--save', ''],
              ports: [{ containerPort: 6379 }],
              resources: { requests: { cpu: '100m', memory: '64Mi' }, limits: { memory: '256Mi' } },
              securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
              readinessProbe: { exec: { command: ['redis-cli', 'ping'] }, periodSeconds: 5 },
              volumeMounts: [{ name: 'data', mountPath: '/data' }],
            },
          ],
          volumes: [{ name: 'data', emptyDir: {} }],
        },
      },
    },
  },
];

const text = `# Generated by scripts/kubernetes.mjs from examples/agent-gateway: edit the generator, not this file.
# Mandate beside Redis in ${NS}. Before applying, create the task signing keys Secret
# (envoy/README.md, "On Kubernetes"): the keys are generated, never committed.
${docs.map((d) => stringify(d, { lineWidth: 0 })).join('---\n')}`;
if (process.argv.includes('--stdout')) process.stdout.write(text);
else writeFileSync(join(root, 'deploy/kubernetes/mandate.yaml'), text);
