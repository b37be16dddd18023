// Sends hand-made bytes as a CheckRequest: how the tests put invalid UTF-8 on the wire, which
// no protobuf encoder will produce for a string field.

import { Client, credentials, Metadata } from '@grpc/grpc-js';
import { loadUpstreamRoot } from './upstream.js';
import type { CheckResponseObject } from './upstream.js';

const root = loadUpstreamRoot();
const CheckRequest = root.lookupType('envoy.service.auth.v3.CheckRequest');
const CheckResponse = root.lookupType('envoy.service.auth.v3.CheckResponse');

export function encodeUpstream(request: object): Buffer {
  return Buffer.from(CheckRequest.encode(CheckRequest.fromObject(request)).finish());
}

/** Replaces every occurrence of `marker` (ASCII) in the bytes with `replacement` of equal length. */
export function patchBytes(bytes: Buffer, marker: string, replacement: Buffer): Buffer {
  const needle = Buffer.from(marker);
  if (needle.length !== replacement.length) throw new Error('replacement must keep the length');
  const out = Buffer.from(bytes);
  let at = out.indexOf(needle);
  if (at < 0) throw new Error(`marker ${marker} not found`);
  while (at >= 0) {
    replacement.copy(out, at);
    at = out.indexOf(needle, at + needle.length);
  }
  return out;
}

export function sendRawCheck(address: string, bytes: Buffer): Promise<CheckResponseObject> {
  const client = new Client(address, credentials.createInsecure());
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      '/envoy.service.auth.v3.Authorization/Check',
      (b: Buffer) => b,
      (b: Buffer) => CheckResponse.toObject(CheckResponse.decode(b), { enums: Number, longs: String }) as CheckResponseObject,
      bytes,
      { deadline: new Date(Date.now() + 5000) },
      (err, res) => {
        client.close();
        if (err) reject(err);
        else resolve(res as CheckResponseObject);
      },
    );
  });
}

/** A unary call of `path` with bytes in and bytes out, over a grpc-js client the caller owns. */
export function unaryBytes(client: Client, path: string, body: Buffer, metadata = new Metadata(), deadlineMs = 5000): Promise<Buffer> {
  const identity = (b: Buffer): Buffer => b;
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(path, identity, identity, body, metadata, { deadline: Date.now() + deadlineMs }, (err, res) => (err ? reject(err) : resolve(res as Buffer)));
  });
}
