// The baseline for load benchmarks: a grpc-js ext_authz server that answers OK without looking
// at the request (no protobuf decode, a pre-encoded response). Whatever Mandate costs on top of
// this is the price of deciding. Prints {"address": ...} on stdout once listening.

import { Server, ServerCredentials, type ServiceDefinition } from '@grpc/grpc-js';
import { PROTOBUFJS_CHECK } from '../src/server/protos.js';

const OK = PROTOBUFJS_CHECK.encode({ status: { code: 0 }, okResponse: { headers: [] } });
const definition: ServiceDefinition = {
  Check: {
    path: '/envoy.service.auth.v3.Authorization/Check',
    requestStream: false,
    responseStream: false,
    requestSerialize: (b: Buffer) => b,
    requestDeserialize: (b: Buffer) => b,
    responseSerialize: (b: Buffer) => b,
    responseDeserialize: (b: Buffer) => b,
  },
};
const server = new Server();
server.addService(definition, { Check: (_call: unknown, callback: (e: null, r: Buffer) => void) => callback(null, OK) });
server.bindAsync(process.argv[2] ?? '127.0.0.1:0', ServerCredentials.createInsecure(), (err, port) => {
  if (err) throw err;
  process.stdout.write(`${JSON.stringify({ address: `127.0.0.1:${port}` })}\n`);
});
process.on('SIGTERM', () => server.tryShutdown(() => process.exit(0)));
