// Loads Mandate's own .proto files (proto/) once. The only place that knows proto-loader's options.

import { loadSync, type Options } from '@grpc/proto-loader';
import type { ServiceDefinition } from '@grpc/grpc-js';
import { resolve } from 'node:path';
import { kPackageRoot } from '../package-root.js';
import { decodeCheckRequestWire, encodeCheckResponseFrame, encodeCheckResponseWire, GRPC_PREFIX_BYTES } from './codec.js';
import { EncodedCheckResponse } from './frames.js';
import type { CheckResponseObject } from '../check/respond.js';

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

/**
 * The Authorization service as Mandate serves it: Check's request read and its response written
 * by our own codec (codec.ts), the rest as proto-loader built it.
 */
export const AUTHORIZATION_SERVICE_SERVED: ServiceDefinition = {
  ...AUTHORIZATION_SERVICE,
  Check: {
    ...(AUTHORIZATION_SERVICE['Check'] as ServiceDefinition[string]),
    requestDeserialize: decodeCheckRequestWire,
    // An answer the server wrote from a template (frames.ts) is sent as it is.
    responseSerialize: (response: unknown) => (response instanceof EncodedCheckResponse ? response.frame.subarray(GRPC_PREFIX_BYTES) : encodeCheckResponseWire(response as CheckResponseObject)),
    // Read by our gRPC server (grpc-server.ts): the answer written behind its message prefix.
    responseFrame: (response: unknown) => (response instanceof EncodedCheckResponse ? response.frame : encodeCheckResponseFrame(response as CheckResponseObject)),
  } as ServiceDefinition[string],
};

/** The served Check's answer (a CheckResponse, or a templated frame: frames.ts) -> its gRPC frame, as our server writes it (grpc-server.ts). */
export function checkResponseFrame(response: unknown): Buffer {
  return (AUTHORIZATION_SERVICE_SERVED['Check'] as unknown as { responseFrame: (r: unknown) => Buffer }).responseFrame(response);
}

/** CheckRequest JSON (proto3 JSON names, as protobufjs fromObject takes them) -> wire bytes. */
export function encodeCheckRequest(json: unknown): Buffer {
  return (AUTHORIZATION_SERVICE['Check'] as ServiceDefinition[string]).requestSerialize(json);
}

/** Wire bytes -> the object the server's handler receives (codec.ts, as served). */
export function decodeCheckRequestBytes(bytes: Buffer): unknown {
  return decodeCheckRequestWire(bytes);
}

/** A CheckResponse object -> wire bytes, as served (codec.ts). */
export function encodeCheckResponse(response: unknown): Buffer {
  return encodeCheckResponseWire(response as CheckResponseObject);
}

/** protobufjs's generic codec for Check, as any grpc-js server built with proto-loader has it (benchmark baselines, codec tests). */
export const PROTOBUFJS_CHECK = {
  decode: (bytes: Buffer): unknown => (AUTHORIZATION_SERVICE['Check'] as ServiceDefinition[string]).requestDeserialize(bytes),
  encode: (response: unknown): Buffer => (AUTHORIZATION_SERVICE['Check'] as ServiceDefinition[string]).responseSerialize(response),
};
