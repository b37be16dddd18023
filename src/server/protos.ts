// Loads Mandate's own .proto files (proto/) once. The only place that knows proto-loader's options.

import { loadSync, type Options } from '@grpc/proto-loader';
import type { ServiceDefinition } from '@grpc/grpc-js';
import { resolve } from 'node:path';
import { kPackageRoot } from '../package-root.js';

export const PROTO_DIR = resolve(kPackageRoot, 'proto');

// camelCase fields, int64 as decimal strings, bytes as Buffer, oneof names set, no defaults:
// an absent field stays undefined, so decode can tell "not sent" from "empty".
export const LOADER_OPTIONS: Options = Object.freeze({
  keepCase: false,
  longs: String,
  enums: Number,
  defaults: false,
  oneofs: true,
  includeDirs: [PROTO_DIR],
});

const definitions = loadSync(['envoy/service/auth/v3/external_auth.proto', 'grpc/health/v1/health.proto', 'mandate/tasks/v1/tasks.proto'], LOADER_OPTIONS);

export const AUTHORIZATION_SERVICE = definitions['envoy.service.auth.v3.Authorization'] as ServiceDefinition;
export const HEALTH_SERVICE = definitions['grpc.health.v1.Health'] as ServiceDefinition;
export const AUTHORIZATION_SERVICE_NAME = 'envoy.service.auth.v3.Authorization';
export const TASKS_SERVICE = definitions['mandate.tasks.v1.Tasks'] as ServiceDefinition;
export const TASKS_SERVICE_NAME = 'mandate.tasks.v1.Tasks';

/** CheckRequest JSON (proto3 JSON names, as protobufjs fromObject takes them) -> wire bytes. */
export function encodeCheckRequest(json: unknown): Buffer {
  return (AUTHORIZATION_SERVICE['Check'] as ServiceDefinition[string]).requestSerialize(json);
}

/** Wire bytes -> the object the server's handler receives. */
export function decodeCheckRequestBytes(bytes: Buffer): unknown {
  return (AUTHORIZATION_SERVICE['Check'] as ServiceDefinition[string]).requestDeserialize(bytes);
}

export function encodeCheckResponse(response: unknown): Buffer {
  return (AUTHORIZATION_SERVICE['Check'] as ServiceDefinition[string]).responseSerialize(response);
}
