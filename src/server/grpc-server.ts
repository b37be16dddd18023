// A gRPC server over Mandate's own HTTP/2 (http2.ts) for the methods Mandate serves: unary
// (Check, Health.Check, the Tasks API) and server-streaming (Health.Watch). grpc-js's server
// spent about as much CPU per Check as Mandate's whole decision (interceptor chains, a Metadata
// object, a stream decoder and several closures per call), and node:http2 under it most of the
// rest (http2.ts says why). This file does what a unary call needs and nothing else, with the
// same wire behaviour (gRPC over HTTP/2: github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md)
// and the same call shape as grpc-js handlers, so the service implementations stay as they were.
//
// What a call gets, as grpc-js gives it:
// - content-type other than application/grpc* -> HTTP 415; an unknown path -> UNIMPLEMENTED;
// - grpc-timeout -> the call's deadline, DEADLINE_EXCEEDED when it passes unanswered; a
//   malformed one -> INTERNAL;
// - a message whose length prefix is over maxMessageBytes -> RESOURCE_EXHAUSTED before its body
//   is buffered; a compressed one (gzip, deflate) inflated up to the same limit; another
//   encoding -> UNIMPLEMENTED; no message or a second one on a unary call -> UNIMPLEMENTED;
// - a request that does not decode -> INTERNAL; an answer that does not encode -> INTERNAL;
// - a call whose stream closed before it was answered is dropped (streaming: 'cancelled').

import type { Socket } from 'node:net';
import { TLSSocket, type PeerCertificate } from 'node:tls';
import { inflate, gunzip, type InputType } from 'node:zlib';
import { encodeHeaderBlock } from './hpack.js';
import { H2_ERROR, H2Connection, newH2Stats, type H2Stats, type H2Stream, type RequestHeaders, type StreamHandler } from './http2.js';

/** gRPC status codes (doc/statuscodes.md), as numbers on the wire. */
export const GRPC_STATUS = {
  OK: 0, CANCELLED: 1, UNKNOWN: 2, INVALID_ARGUMENT: 3, DEADLINE_EXCEEDED: 4, NOT_FOUND: 5, ALREADY_EXISTS: 6, PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8, FAILED_PRECONDITION: 9, ABORTED: 10, OUT_OF_RANGE: 11, UNIMPLEMENTED: 12, INTERNAL: 13, UNAVAILABLE: 14,
  DATA_LOSS: 15, UNAUTHENTICATED: 16,
} as const;

export interface GrpcError {
  readonly code: number;
  readonly details: string;
}

/** A method as proto-loader describes it (grpc-js's MethodDefinition). */
export interface MethodDefinition {
  readonly path: string;
  readonly requestStream: boolean;
  readonly responseStream: boolean;
  readonly requestDeserialize: (bytes: Buffer) => unknown;
  readonly responseSerialize: (value: never) => Buffer;
  /** The answer already behind its 5-byte message prefix (saves a copy); else responseSerialize. */
  readonly responseFrame?: (value: never) => Buffer;
}

/** A request's metadata: its headers, read as grpc-js's Metadata.get reads them. */
export interface CallMetadata {
  get(key: string): (string | Buffer)[];
}

export interface ServerCall<Req> {
  readonly request: Req;
  readonly metadata: CallMetadata;
  /** Epoch ms after which the caller has given up (grpc-timeout); Infinity when none was sent. */
  getDeadline(): number;
  /** The TLS client certificate, when the connection is TLS and the client presented one. */
  getAuthContext(): { sslPeerCertificate?: PeerCertificate };
}

export type UnaryCallback<Res> = (error: GrpcError | null, value?: Res) => void;

export interface ServerStreamCall<Req> extends ServerCall<Req> {
  write(message: unknown): void;
  end(): void;
  on(event: 'cancelled', listener: () => void): void;
}

export interface GrpcServerOptions {
  /** Messages over this are refused from their length prefix (RESOURCE_EXHAUSTED). */
  readonly maxMessageBytes: number;
  /** Advertised in every connection's SETTINGS. */
  readonly maxConcurrentStreams: number;
}

type AnyHandler = ((call: never, callback: never) => unknown) | ((call: never) => unknown);
export type ServiceImplementation = Record<string, AnyHandler>;

interface Method {
  readonly definition: MethodDefinition;
  readonly handler: AnyHandler;
}

// Answers carry what gRPC needs and no more: no `grpc-encoding` (absent means identity, and
// answers are never compressed) and no `date` (gRPC does not use it). Encoded once.
const RESPONSE_HEADERS = encodeHeaderBlock([[':status', '200'], ['content-type', 'application/grpc+proto'], ['grpc-accept-encoding', 'identity,deflate,gzip']]);
const OK_TRAILERS = encodeHeaderBlock([['grpc-status', '0'], ['grpc-message', 'OK']]);
const UNSUPPORTED_MEDIA_TYPE = encodeHeaderBlock([[':status', '415']]);
const HEADER_FRAME_BYTES = 5;

/** grpc-timeout: up to 8 digits and a unit (PROTOCOL-HTTP2.md), read as grpc-js reads it. */
const TIMEOUT = /^(\d{1,8})\s*([HMSmun])$/;
const UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000_001 };
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * grpc-message is percent-encoded UTF-8: every byte outside printable ASCII, and `%` itself
 * (PROTOCOL-HTTP2.md). Never throws (encodeURI does on a lone surrogate).
 */
export function encodeGrpcMessage(details: string): string {
  let plain = true;
  for (let i = 0; i < details.length; i++) {
    const c = details.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x25) {
      plain = false;
      break;
    }
  }
  if (plain) return details;
  let out = '';
  for (const byte of Buffer.from(details, 'utf8')) {
    out += byte < 0x20 || byte > 0x7e || byte === 0x25 ? `%${byte < 16 ? '0' : ''}${byte.toString(16).toUpperCase()}` : String.fromCharCode(byte);
  }
  return out;
}

export class GrpcServer {
  private readonly methods = new Map<string, Method>();
  private readonly connections = new Set<H2Connection>();
  private readonly maxMessageBytes: number;
  private readonly maxConcurrentStreams: number;
  private shuttingDown = false;
  private whenClosed: (() => void) | null = null;
  /** HTTP/2 errors sent on this server's connections (metrics). */
  readonly http2Stats: H2Stats = newH2Stats();

  constructor(options: GrpcServerOptions) {
    this.maxMessageBytes = options.maxMessageBytes;
    this.maxConcurrentStreams = options.maxConcurrentStreams;
  }

  /** Serves a service: each method of `definition` by the handler of the same name. */
  addService(definition: Record<string, MethodDefinition>, implementation: ServiceImplementation): void {
    for (const [name, method] of Object.entries(definition)) {
      const handler = implementation[name];
      if (handler === undefined) continue;
      if (method.requestStream) throw new Error(`${method.path}: client-streaming methods are not served`);
      this.methods.set(method.path, { definition: method, handler });
    }
  }

  /** Serves a connection (plaintext, or a TLS socket whose handshake is done and that chose h2). */
  injectConnection(socket: Socket): void {
    const connection: H2Connection = new H2Connection(
      socket,
      { maxConcurrentStreams: this.maxConcurrentStreams, stats: this.http2Stats },
      (stream, headers) => this.onStream(stream, headers),
      () => {
        this.connections.delete(connection);
        if (this.connections.size === 0 && this.whenClosed !== null) {
          const done = this.whenClosed;
          this.whenClosed = null;
          done();
        }
      },
    );
    this.connections.add(connection);
    if (this.shuttingDown) connection.shutdown();
  }

  /** Sends GOAWAY on every connection; `done` once the calls in flight have finished and they closed. */
  tryShutdown(done: () => void): void {
    this.shuttingDown = true;
    if (this.connections.size === 0) {
      process.nextTick(done);
      return;
    }
    this.whenClosed = done;
    for (const connection of this.connections) connection.shutdown();
  }

  /** Closes every connection now; calls in flight are cancelled. */
  forceShutdown(): void {
    this.shuttingDown = true;
    for (const connection of this.connections) connection.destroy();
  }

  private onStream(stream: H2Stream, headers: RequestHeaders): StreamHandler | null {
    const contentType = headers.get('content-type');
    if (contentType === undefined || !contentType.startsWith('application/grpc')) {
      stream.sendHeaders(UNSUPPORTED_MEDIA_TYPE, true);
      return null; // what the client still sends is read and dropped, never held
    }
    const path = headers.get(':path') as string;
    const method = this.methods.get(path);
    if (method === undefined) {
      sendStatus(stream, GRPC_STATUS.UNIMPLEMENTED, `The server does not implement the method ${path}`);
      return null;
    }
    return new Call(stream, headers, method, this.maxMessageBytes);
  }
}

/** One call: reads its one request message, runs the handler, answers once. */
class Call implements ServerStreamCall<unknown>, StreamHandler {
  request: unknown = undefined;
  private readonly deadline: number;
  private timer: NodeJS.Timeout | null = null;
  /** The bytes received so far are bytes[0, received): the first DATA chunk itself (not ours to
   *  write into) until a second one comes, then a buffer of our own grown by doubling. */
  private bytes: Buffer | null = null;
  private owned = false;
  private received = 0;
  /** The declared length of the message being read, -1 before its prefix is in. */
  private declared = -1;
  private done = false;
  private headersSent = false;
  private cancelListeners: (() => void)[] | null = null;
  private metadataView: CallMetadata | null = null;

  constructor(
    private readonly stream: H2Stream,
    private readonly headers: RequestHeaders,
    private readonly method: Method,
    private readonly maxMessageBytes: number,
  ) {
    const timeout = headers.get('grpc-timeout');
    let deadline = Infinity;
    if (timeout !== undefined) {
      const m = TIMEOUT.exec(timeout);
      if (m === null) {
        this.deadline = Infinity;
        this.fail(GRPC_STATUS.INTERNAL, `Invalid grpc-timeout value "${String(timeout)}"`);
        return;
      }
      const ms = Number(m[1]) * (UNIT_MS[m[2] as string] as number);
      deadline = Date.now() + ms;
      // Up to 8 digits of hours is ~11,000 years: beyond what a timer holds (2^31-1 ms, which
      // Node would turn into 1 ms), the deadline is still the call's but no timer is set.
      if (ms <= MAX_TIMER_MS) this.timer = setTimeout(() => this.fail(GRPC_STATUS.DEADLINE_EXCEEDED, 'Deadline exceeded'), ms);
    }
    this.deadline = deadline;
  }

  get metadata(): CallMetadata {
    if (this.metadataView === null) {
      const headers = this.headers;
      this.metadataView = {
        get: (key: string): (string | Buffer)[] => {
          const name = key.toLowerCase();
          if (name.startsWith(':')) return [];
          const v = headers.get(name);
          if (v === undefined) return [];
          return name.endsWith('-bin') ? v.split(',').map((x) => Buffer.from(x.trim(), 'base64')) : [v];
        },
      };
    }
    return this.metadataView;
  }

  getDeadline(): number {
    return this.deadline;
  }

  getAuthContext(): { sslPeerCertificate?: PeerCertificate } {
    const socket = this.stream.socket;
    if (!(socket instanceof TLSSocket) || !socket.authorized) return {};
    const peer = socket.getPeerCertificate();
    return peer.raw === undefined ? {} : { sslPeerCertificate: peer };
  }

  on(_event: 'cancelled', listener: () => void): void {
    (this.cancelListeners ??= []).push(listener);
  }

  write(message: unknown): void {
    const stream = this.stream;
    if (this.done || !stream.writable) return;
    const frame = this.frame(message);
    if (frame === null) return;
    if (!this.headersSent) {
      this.headersSent = true;
      stream.sendHeaders(RESPONSE_HEADERS, false);
    }
    stream.sendData(frame);
  }

  end(): void {
    if (this.done) return;
    this.finish();
    if (!this.headersSent) sendStatus(this.stream, GRPC_STATUS.OK, 'OK');
    else this.stream.sendTrailers(OK_TRAILERS);
  }

  onData(chunk: Buffer): void {
    if (this.done) return;
    this.append(chunk);
    if (this.declared < 0 && this.received >= HEADER_FRAME_BYTES) {
      this.declared = (this.bytes as Buffer).readUInt32BE(1);
      if (this.declared > this.maxMessageBytes) {
        this.fail(GRPC_STATUS.RESOURCE_EXHAUSTED, `Received message larger than max (${this.declared} vs ${this.maxMessageBytes})`);
        return;
      }
    }
    if (this.declared >= 0 && this.received > HEADER_FRAME_BYTES + this.declared) {
      this.fail(GRPC_STATUS.UNIMPLEMENTED, `Received a second request message for unary method ${this.method.definition.path}`);
    }
  }

  /**
   * Keeps a chunk. Most messages come in one DATA chunk, kept as it is. Otherwise the bytes go
   * into one buffer that doubles as it fills: a client sending a message a byte per frame costs
   * at most twice what it sent, in one allocation (a list of chunks would hold an object per
   * byte), and copying stays linear. Never more than the declared message.
   */
  private append(chunk: Buffer): void {
    const need = this.received + chunk.length;
    if (this.bytes === null) {
      this.bytes = chunk;
      this.received = need;
      return;
    }
    if (!this.owned || this.bytes.length < need) {
      const limit = this.declared < 0 ? need : Math.max(need, HEADER_FRAME_BYTES + this.declared);
      const grown = Buffer.allocUnsafe(Math.min(Math.max(need * 2, 256), limit));
      this.bytes.copy(grown, 0, 0, this.received);
      this.bytes = grown;
      this.owned = true;
    }
    chunk.copy(this.bytes, this.received);
    this.received = need;
  }

  onEnd(): void {
    if (this.done) return;
    if (this.declared < 0 || this.received < HEADER_FRAME_BYTES + this.declared) {
      this.fail(GRPC_STATUS.UNIMPLEMENTED, `Received no request message for method ${this.method.definition.path}`);
      return;
    }
    const frame = this.bytes as Buffer;
    this.bytes = null;
    const body = frame.subarray(HEADER_FRAME_BYTES, this.received);
    if (frame[0] === 0) {
      this.start(body);
      return;
    }
    const encoding = this.headers.get('grpc-encoding');
    if (encoding !== 'gzip' && encoding !== 'deflate') {
      this.fail(GRPC_STATUS.UNIMPLEMENTED, `Received message compressed with unsupported encoding "${String(encoding ?? 'identity')}"`);
      return;
    }
    const inflated = (err: Error | null, bytes: Buffer): void => {
      if (this.done) return;
      if (err === null) this.start(bytes);
      else if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') this.fail(GRPC_STATUS.RESOURCE_EXHAUSTED, `Received message that decompresses to a size larger than ${this.maxMessageBytes}`);
      else this.fail(GRPC_STATUS.INTERNAL, 'Failed to decompress message');
    };
    const limits = { maxOutputLength: Math.max(1, this.maxMessageBytes) };
    if (encoding === 'gzip') gunzip(body as InputType, limits, inflated);
    else inflate(body as InputType, limits, inflated);
  }

  private start(body: Buffer): void {
    const definition = this.method.definition;
    try {
      this.request = definition.requestDeserialize(body);
    } catch {
      this.fail(GRPC_STATUS.INTERNAL, 'Error deserializing request');
      return;
    }
    try {
      const result = definition.responseStream
        ? (this.method.handler as (call: ServerStreamCall<unknown>) => unknown)(this)
        : (this.method.handler as (call: ServerCall<unknown>, callback: UnaryCallback<unknown>) => unknown)(this, (error, value) => this.answer(error, value));
      if (result instanceof Promise) result.catch(() => this.fail(GRPC_STATUS.INTERNAL, 'Internal error'));
    } catch {
      this.fail(GRPC_STATUS.INTERNAL, 'Internal error');
    }
  }

  /** A unary handler's callback: the answer and OK, or an error status. Only the first counts. */
  private answer(error: GrpcError | null, value: unknown): void {
    if (this.done) return;
    if (error !== null) {
      this.fail(error.code, error.details);
      return;
    }
    const frame = this.frame(value);
    if (frame === null) return;
    this.finish();
    this.headersSent = true;
    try {
      this.stream.sendAnswer(RESPONSE_HEADERS, frame, OK_TRAILERS);
    } catch {
      // Never an exception out of the handler's callback (from a promise's callback it would be
      // an unhandled rejection): the stream is reset, an error for the client, a deny for Envoy.
      this.stream.reset(H2_ERROR.INTERNAL_ERROR);
    }
  }

  /** The message as a length-prefixed frame, or null (INTERNAL sent) when it does not encode. */
  private frame(value: unknown): Buffer | null {
    const definition = this.method.definition;
    let bytes: Buffer;
    try {
      if (definition.responseFrame !== undefined) return definition.responseFrame(value as never);
      bytes = definition.responseSerialize(value as never);
    } catch {
      this.fail(GRPC_STATUS.INTERNAL, 'Error serializing response');
      return null;
    }
    const frame = Buffer.allocUnsafe(HEADER_FRAME_BYTES + bytes.length);
    frame[0] = 0;
    frame.writeUInt32BE(bytes.length, 1);
    bytes.copy(frame, HEADER_FRAME_BYTES);
    return frame;
  }

  private fail(code: number, details: string): void {
    if (this.done) return;
    this.finish();
    // A streaming call that has sent messages: the status goes in the trailers. Whatever the
    // client still sends of this call is read and dropped (onData, done).
    try {
      if (this.headersSent) this.stream.sendTrailers(statusBlock(code, details, false));
      else sendStatus(this.stream, code, details);
    } catch {
      this.stream.reset(H2_ERROR.INTERNAL_ERROR);
    }
  }

  private finish(): void {
    this.done = true;
    this.bytes = null;
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }

  /** The stream is gone: a call not answered by then was cancelled (its listeners are told). */
  onClose(): void {
    if (this.done) return;
    this.finish();
    const listeners = this.cancelListeners;
    this.cancelListeners = null;
    if (listeners !== null) for (const listener of listeners) listener();
  }
}

/** grpc-status and grpc-message, after the answer's headers when it is trailers-only. */
function statusBlock(code: number, details: string, trailersOnly: boolean): Buffer {
  const fields: [string, string][] = trailersOnly ? [[':status', '200'], ['content-type', 'application/grpc+proto']] : [];
  fields.push(['grpc-status', String(code)], ['grpc-message', encodeGrpcMessage(details)]);
  return encodeHeaderBlock(fields);
}

/** A trailers-only answer (PROTOCOL-HTTP2.md): the status in the one HEADERS frame. */
function sendStatus(stream: H2Stream, code: number, details: string): void {
  stream.sendHeaders(statusBlock(code, details, true), true);
}
