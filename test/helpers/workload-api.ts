// A SPIFFE Workload API server for tests, on a Unix socket, as a SPIRE agent would serve it:
// FetchX509SVID and FetchJWTBundles stream the current material and every change pushed with
// setX509/setJwtBundles; FetchJWTSVID signs a JWT-SVID with the current JWT authority. Calls
// without `workload.spiffe.io: true` are refused (Workload Endpoint §5). Messages are encoded
// here by hand from the standard's field numbers, not with proto/spiffe/workload.proto, so the
// client is checked against the wire format rather than against our own file.

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Server, ServerCredentials, status, type ServerWritableStream, type ServiceDefinition, type sendUnaryData, type ServerUnaryCall } from '@grpc/grpc-js';
import type { KeyObject } from 'node:crypto';
import type { Cert } from './certs.js';
import { mint, type SigningKey } from './jwt.js';

// Protobuf wire format: a field is (number << 3 | wire type) then, for type 2, a varint length.
function varint(n: number): Buffer {
  const out: number[] = [];
  let v = n;
  while (v >= 0x80) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return Buffer.from(out);
}
function field(number: number, value: Buffer | string): Buffer {
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  return Buffer.concat([varint((number << 3) | 2), varint(bytes.length), bytes]);
}
function mapEntry(number: number, key: string, value: Buffer): Buffer {
  return field(number, Buffer.concat([field(1, key), field(2, value)]));
}

/** PEM certificates -> concatenated DER, as the Workload API carries them. */
export function der(...certs: (Cert | string)[]): Buffer {
  return Buffer.concat(
    certs.flatMap((c) =>
      [...(typeof c === 'string' ? c : c.pem).matchAll(/-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g)].map((m) => Buffer.from((m[1] as string).replace(/\s+/g, ''), 'base64')),
    ),
  );
}

export interface SvidEntry {
  readonly spiffeId: string;
  /** The leaf, then intermediates. */
  readonly chain: (Cert | string)[];
  readonly key: KeyObject;
  /** The workload's own trust domain's authorities. */
  readonly bundle: (Cert | string)[];
  readonly hint?: string;
}

export interface X509State {
  readonly svids: SvidEntry[];
  /** Trust domain SPIFFE ID ("spiffe://other.org") -> its authorities. */
  readonly federated?: Record<string, (Cert | string)[]>;
  /** Overrides the encoding, to send a malformed message. */
  readonly raw?: Buffer;
}

export function encodeX509(state: X509State): Buffer {
  if (state.raw !== undefined) return state.raw;
  const svids = state.svids.map((s) =>
    field(
      1,
      Buffer.concat([
        field(1, s.spiffeId),
        field(2, der(...s.chain)),
        field(3, s.key.export({ format: 'der', type: 'pkcs8' })),
        field(4, der(...s.bundle)),
        ...(s.hint === undefined ? [] : [field(5, s.hint)]),
      ]),
    ),
  );
  // crl (2) is part of the standard and is sent by some agents: the client must skip it.
  const crl = field(2, Buffer.from([0x30, 0x00]));
  const federated = Object.entries(state.federated ?? {}).map(([td, certs]) => mapEntry(3, td, der(...certs)));
  return Buffer.concat([...svids, crl, ...federated]);
}

/** Trust domain (as the map key) -> JWKS JSON. */
export function encodeJwtBundles(bundles: Record<string, string>): Buffer {
  return Buffer.concat(Object.entries(bundles).map(([td, jwks]) => mapEntry(1, td, Buffer.from(jwks))));
}

const identity = (b: Buffer): Buffer => b;
function method(name: string, responseStream: boolean): ServiceDefinition[string] {
  return { path: `/SpiffeWorkloadAPI/${name}`, requestStream: false, responseStream, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity, originalName: name };
}
const SERVICE: ServiceDefinition = {
  FetchX509SVID: method('FetchX509SVID', true),
  FetchJWTBundles: method('FetchJWTBundles', true),
  FetchJWTSVID: method('FetchJWTSVID', false),
};

/** The audience strings of a JWTSVIDRequest (field 1, repeated string). */
function audiencesOf(request: Buffer): string[] {
  const out: string[] = [];
  for (let at = 0; at < request.length; ) {
    const tag = request[at++] as number;
    let len = 0;
    let shift = 0;
    for (;;) {
      const b = request[at++] as number;
      len += (b & 0x7f) * 2 ** shift;
      shift += 7;
      if (b < 0x80) break;
    }
    if (tag === 0x0a) out.push(request.subarray(at, at + len).toString('utf8'));
    at += len;
  }
  return out;
}

export class TestWorkloadApi {
  readonly socketPath: string;
  /** unix:///path, as SPIFFE_ENDPOINT_SOCKET and config.workloadApi.socket take it. */
  readonly address: string;
  private readonly server = new Server();
  private readonly x509Streams = new Set<ServerWritableStream<Buffer, Buffer>>();
  private readonly jwtStreams = new Set<ServerWritableStream<Buffer, Buffer>>();
  private x509: X509State | null = null;
  private jwtBundles: Record<string, string> | null = null;
  /** Calls refused for lack of the security header. */
  refusedWithoutHeader = 0;
  /** The JWT authority FetchJWTSVID signs with, and the SPIFFE ID it names. */
  jwtSigner: { key: SigningKey; spiffeId: string } | null = null;

  constructor() {
    const dir = mkdtempSync(join(tmpdir(), 'mandate-wlapi-'));
    this.socketPath = join(dir, 'agent.sock');
    this.address = `unix://${this.socketPath}`;
    const checked = <T>(call: { metadata: { get(k: string): unknown[] } }, refuse: (code: number, details: string) => T): T | null => {
      if (call.metadata.get('workload.spiffe.io')[0] === 'true') return null;
      this.refusedWithoutHeader++;
      return refuse(status.INVALID_ARGUMENT, 'security header missing from request');
    };
    const stream = (set: Set<ServerWritableStream<Buffer, Buffer>>, current: () => Buffer | null) => (call: ServerWritableStream<Buffer, Buffer>) => {
      if (checked(call, (code, details) => call.emit('error', { code, details })) !== null) return;
      set.add(call);
      call.on('cancelled', () => set.delete(call));
      call.on('close', () => set.delete(call));
      const now = current();
      if (now !== null) call.write(now);
    };
    this.server.addService(SERVICE, {
      FetchX509SVID: stream(this.x509Streams, () => (this.x509 === null ? null : encodeX509(this.x509))),
      FetchJWTBundles: stream(this.jwtStreams, () => (this.jwtBundles === null ? null : encodeJwtBundles(this.jwtBundles))),
      FetchJWTSVID: (call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => {
        if (checked(call, (code, details) => callback({ code, details })) !== null) return;
        const signer = this.jwtSigner;
        if (signer === null) return callback({ code: status.PERMISSION_DENIED, details: 'no identity issued' });
        void mint({ key: signer.key, sub: signer.spiffeId, aud: audiencesOf(call.request) }).then((token) => callback(null, field(1, Buffer.concat([field(1, signer.spiffeId), field(2, token)]))));
      },
    });
  }

  start(): Promise<void> {
    return new Promise((resolveStart, reject) => this.server.bindAsync(`unix:${this.socketPath}`, ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolveStart())));
  }

  /** Sends the new X.509 material to every open stream (and to streams opened later). */
  setX509(state: X509State): void {
    this.x509 = state;
    const bytes = encodeX509(state);
    for (const s of this.x509Streams) s.write(bytes);
  }

  setJwtBundles(bundles: Record<string, string>): void {
    this.jwtBundles = bundles;
    const bytes = encodeJwtBundles(bundles);
    for (const s of this.jwtStreams) s.write(bytes);
  }

  /** Ends every open stream with UNAVAILABLE, as an agent restart would; clients open them again. */
  dropStreams(): void {
    for (const s of [...this.x509Streams, ...this.jwtStreams]) s.emit('error', { code: status.UNAVAILABLE, details: 'agent restarting' });
    this.x509Streams.clear();
    this.jwtStreams.clear();
  }

  get openStreams(): number {
    return this.x509Streams.size + this.jwtStreams.size;
  }

  close(): Promise<void> {
    this.dropStreams();
    return new Promise((resolveClose) => this.server.tryShutdown(() => resolveClose()));
  }
}
