// Clients and codecs built from Envoy's own protos (shipped by @grpc/grpc-js-xds under deps/),
// so wire compatibility is checked against definitions Mandate did not write.

import { credentials, loadPackageDefinition, type ChannelCredentials, type Client, type ServiceClientConstructor } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import protobuf from 'protobufjs';

const require = createRequire(import.meta.url);
const XDS_ROOT = dirname(require.resolve('@grpc/grpc-js-xds/package.json'));
export const UPSTREAM_INCLUDE_DIRS = ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => join(XDS_ROOT, 'deps', d));

const OPTIONS = { keepCase: false, longs: String, enums: Number, defaults: false, oneofs: true, includeDirs: UPSTREAM_INCLUDE_DIRS };

const definition = loadSync('envoy/service/auth/v3/external_auth.proto', OPTIONS);
const loaded = loadPackageDefinition(definition) as unknown as {
  envoy: { service: { auth: { v3: { Authorization: ServiceClientConstructor } } } };
};

export interface CheckClient {
  check(request: unknown, deadlineMs?: number): Promise<CheckResponseObject>;
  close(): void;
}

export interface CheckResponseObject {
  status?: { code?: number; message?: string };
  httpResponse?: string;
  okResponse?: { headers?: { header?: { key?: string; value?: string }; appendAction?: number }[]; headersToRemove?: string[] };
  deniedResponse?: { status?: { code?: number }; headers?: { header?: { key?: string; value?: string } }[]; body?: string };
  dynamicMetadata?: { fields?: Record<string, { stringValue?: string }> };
}

export function createCheckClient(address: string, channel: ChannelCredentials = credentials.createInsecure()): CheckClient {
  const client = new loaded.envoy.service.auth.v3.Authorization(address, channel) as unknown as Client & {
    Check(req: unknown, opts: { deadline: Date }, cb: (err: Error | null, res: CheckResponseObject) => void): void;
  };
  return {
    check: (request, deadlineMs = 5000) =>
      new Promise((resolve, reject) => {
        client.Check(request, { deadline: new Date(Date.now() + deadlineMs) }, (err, res) => (err ? reject(err) : resolve(res)));
      }),
    close: () => client.close(),
  };
}

/** protobufjs root of Envoy's upstream protos, for encoding and decoding raw messages. */
export function loadUpstreamRoot(): protobuf.Root {
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => {
    for (const dir of UPSTREAM_INCLUDE_DIRS) {
      const candidate = join(dir, target);
      try {
        require('node:fs').accessSync(candidate);
        return candidate;
      } catch {
        // try the next include dir
      }
    }
    return target;
  };
  root.loadSync('envoy/service/auth/v3/external_auth.proto', { keepCase: false });
  root.resolveAll();
  return root;
}

/** A Health client from our own health.proto (grpc.health.v1 is not in Envoy's protos). */
export { credentials };
