// The server side of HTTP/2 (RFC 9113) over a connected socket, for gRPC (grpc-server.ts).
//
// Why not node:http2: under h2load at 64 in flight, node:http2 spent ~63 us of main-thread CPU
// per call to answer a constant gRPC response, more than Mandate's whole decision; a loop over
// the socket's bytes that does the same spent ~4 us (docs/performance.md, session of stop 27).
// The cost is Node's per-stream machinery (a Duplex stream, event emitters, header objects and
// crossings into C++ for every frame), not the protocol. This module does what a gRPC server
// needs: frames are parsed where they arrive, each stream is a small object, and everything
// written while a socket read is handled goes out in one write.
//
// What it enforces (each a connection error, GOAWAY then close, unless a stream error is said):
// - the client preface, then SETTINGS first (§3.4); frames larger than our MAX_FRAME_SIZE (§4.2);
// - frame rules of §6: stream 0 where a stream is needed and the reverse, fixed lengths
//   (PRIORITY stream error, RST_STREAM, SETTINGS, PING, WINDOW_UPDATE), padding within the
//   frame, PUSH_PROMISE from a client, CONTINUATION only right after its HEADERS;
// - stream states (§5.1): new streams odd, above the last one (HEADERS at or below it open
//   nothing); DATA, RST_STREAM or WINDOW_UPDATE on an idle stream; DATA after the client's
//   END_STREAM (stream error STREAM_CLOSED); trailers without END_STREAM (stream error). Frames
//   for a stream we closed or refused are dropped (the client may have sent them before it
//   knew, §5.1);
// - flow control (§6.9): window updates of 0 or past 2^31 - 1; our DATA never exceeds the
//   client's windows or frame size (windows we give are reopened as bytes are read: onData);
// - HPACK errors (COMPRESSION_ERROR), header lists over MAX_HEADER_LIST_SIZE and header blocks
//   over the same size or in too many CONTINUATION frames (the CONTINUATION flood);
// - malformed requests (§8.1.1, §8.2, §8.3): upper-case or empty names, pseudo-headers that are
//   unknown, repeated, after a regular field or missing, connection-specific fields, `te` other
//   than "trailers", values with NUL, CR, LF or surrounding whitespace: stream error
//   PROTOCOL_ERROR, the connection goes on;
// - streams past MAX_CONCURRENT_STREAMS: stream error REFUSED_STREAM (§5.1.2);
// - resets by the client beyond a rate (the "rapid reset" attack): ENHANCE_YOUR_CALM;
// - reading stops while the socket has more than HIGH_WATER bytes unsent (a client that sends
//   PINGs or SETTINGS, or calls, without reading the answers, is not answered into memory).

import type { Socket } from 'node:net';
import { HpackDecoder, HpackError } from './hpack.js';

/** Error codes (§7). */
export const H2_ERROR = {
  NO_ERROR: 0x0, PROTOCOL_ERROR: 0x1, INTERNAL_ERROR: 0x2, FLOW_CONTROL_ERROR: 0x3, SETTINGS_TIMEOUT: 0x4, STREAM_CLOSED: 0x5,
  FRAME_SIZE_ERROR: 0x6, REFUSED_STREAM: 0x7, CANCEL: 0x8, COMPRESSION_ERROR: 0x9, CONNECT_ERROR: 0xa, ENHANCE_YOUR_CALM: 0xb,
  INADEQUATE_SECURITY: 0xc, HTTP_1_1_REQUIRED: 0xd,
} as const;

const DATA = 0x0;
const HEADERS = 0x1;
const PRIORITY = 0x2;
const RST_STREAM = 0x3;
const SETTINGS = 0x4;
const PUSH_PROMISE = 0x5;
const PING = 0x6;
const GOAWAY = 0x7;
const WINDOW_UPDATE = 0x8;
const CONTINUATION = 0x9;

const FLAG_END_STREAM = 0x1;
const FLAG_ACK = 0x1;
const FLAG_END_HEADERS = 0x4;
const FLAG_PADDED = 0x8;
const FLAG_PRIORITY = 0x20;

const SETTINGS_ENABLE_PUSH = 0x2;
const SETTINGS_MAX_CONCURRENT_STREAMS = 0x3;
const SETTINGS_INITIAL_WINDOW_SIZE = 0x4;
const SETTINGS_MAX_FRAME_SIZE = 0x5;
const SETTINGS_MAX_HEADER_LIST_SIZE = 0x6;

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const FRAME_HEADER = 9;
const MAX_WINDOW = 0x7fffffff;
const DEFAULT_WINDOW = 65_535;
const DEFAULT_FRAME_SIZE = 16_384;
/** Our HPACK table: the default (we advertise no other). */
const HEADER_TABLE_SIZE = 4096;
/** What a stream may send before we open its window further: a CheckRequest fits in one go. */
const STREAM_WINDOW = 1 << 20;
/** What a connection may send before we open its window further (every stream together). */
const CONNECTION_WINDOW = 16 << 20;
/** MAX_HEADER_LIST_SIZE, and the most a header block may take compressed. */
export const MAX_HEADER_LIST_BYTES = 64 << 10;
/** CONTINUATION frames one header block may take. */
const MAX_CONTINUATIONS = 64;
/** Client resets of streams still being answered: a burst of this many, then RESET_REFILL_PER_SECOND. */
const RESET_BURST = 1000;
const RESET_REFILL_PER_SECOND = 100;
/**
 * Unsent bytes past which reading pauses until the socket drains: what a client that does not
 * read can make a connection hold (answers are ~100-300 bytes; this is a thousand of them),
 * times limits.maxConnections.
 */
const HIGH_WATER = 256 << 10;
/** How long a closing connection waits for the client to close before its socket is destroyed. */
const CLOSE_GRACE_MS = 1000;

/** Error code names (§7), lower case, as metrics label them. */
export const H2_ERROR_NAMES: readonly string[] = (() => {
  const names: string[] = [];
  for (const [name, code] of Object.entries(H2_ERROR)) names[code] = name.toLowerCase();
  return names;
})();

/**
 * Errors this side sent, by code (H2_ERROR): GOAWAYs that closed a connection for a protocol
 * error, and streams reset (REFUSED_STREAM among them: a client past MAX_CONCURRENT_STREAMS).
 * Shared by a server's connections; read by metrics.
 */
export interface H2Stats {
  readonly connectionErrors: number[];
  readonly streamErrors: number[];
}

export function newH2Stats(): H2Stats {
  return { connectionErrors: H2_ERROR_NAMES.map(() => 0), streamErrors: H2_ERROR_NAMES.map(() => 0) };
}

/** The codes sent so far, each with its count: a metric series per code seen, not fourteen zeros per scope. */
export function h2ErrorCounts(stats: H2Stats): { scope: 'connection' | 'stream'; code: string; count: number }[] {
  const out: { scope: 'connection' | 'stream'; code: string; count: number }[] = [];
  for (const [code, count] of stats.connectionErrors.entries()) if (count > 0) out.push({ scope: 'connection', code: H2_ERROR_NAMES[code] as string, count });
  for (const [code, count] of stats.streamErrors.entries()) if (count > 0) out.push({ scope: 'stream', code: H2_ERROR_NAMES[code] as string, count });
  return out;
}

/** A request's header fields, names lower-case: repeats joined with ", " ("; " for cookie), as Node joins them. */
export type RequestHeaders = Map<string, string>;

/** What a stream's owner hears about it. */
export interface StreamHandler {
  /** Bytes of the request body, in order. */
  onData(chunk: Buffer): void;
  /** The client ended its side (END_STREAM). */
  onEnd(): void;
  /** The stream is gone before we ended it: reset by the client, or the connection closed. */
  onClose(): void;
}

/** Whoever serves requests: a handler per stream, or null to refuse it (already answered on `stream`). */
export type StreamAcceptor = (stream: H2Stream, headers: RequestHeaders) => StreamHandler | null;

export interface H2Options {
  /** Advertised, and enforced: streams past it are refused. */
  readonly maxConcurrentStreams: number;
  /** Where errors this side sends are counted. */
  readonly stats?: H2Stats;
}

function frameHeader(out: Buffer, at: number, length: number, type: number, flags: number, streamId: number): void {
  out[at] = (length >>> 16) & 0xff;
  out[at + 1] = (length >>> 8) & 0xff;
  out[at + 2] = length & 0xff;
  out[at + 3] = type;
  out[at + 4] = flags;
  out.writeUInt32BE(streamId, at + 5);
}

function frame(type: number, flags: number, streamId: number, payload: Buffer | null): Buffer {
  const length = payload === null ? 0 : payload.length;
  const out = Buffer.allocUnsafe(FRAME_HEADER + length);
  frameHeader(out, 0, length, type, flags, streamId);
  if (payload !== null) payload.copy(out, FRAME_HEADER);
  return out;
}

function u32(value: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(value >>> 0, 0);
  return b;
}

class ConnectionError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

/** Names of fields a request must not carry over HTTP/2 (§8.2.2). */
const CONNECTION_SPECIFIC = new Set(['connection', 'proxy-connection', 'keep-alive', 'transfer-encoding', 'upgrade']);
const REQUEST_PSEUDO = new Set([':method', ':scheme', ':authority', ':path']);
/** A field name as §8.2.1 and RFC 9110 §5.1 allow it: token characters, lower case. */
const NAME = /^[a-z0-9!#$%&'*+.^_`|~-]+$/;
/** What a field value must not hold (§8.2.1): NUL, CR, LF; nor start or end with SP or HTAB. */
const BAD_VALUE = /[\0\r\n]|^[ \t]|[ \t]$/;

/** Collects one header block's fields, and whether they form a valid request (§8.3.1). */
class RequestFields {
  headers: RequestHeaders = new Map();
  /** The request is malformed (§8.1.1): a stream error, whatever else the block holds. */
  malformed = false;
  private regularSeen = false;

  reset(): void {
    this.headers = new Map();
    this.malformed = false;
    this.regularSeen = false;
  }

  readonly add = (name: string, value: string): void => {
    if (this.malformed) return;
    if (BAD_VALUE.test(value)) {
      this.malformed = true;
      return;
    }
    const headers = this.headers;
    if (name.charCodeAt(0) === 0x3a) {
      // Pseudo-headers: request ones only, each once, all before the first regular field.
      if (this.regularSeen || !REQUEST_PSEUDO.has(name) || headers.has(name)) this.malformed = true;
      else headers.set(name, value);
      return;
    }
    this.regularSeen = true;
    if (!NAME.test(name) || CONNECTION_SPECIFIC.has(name) || (name === 'te' && value !== 'trailers')) {
      this.malformed = true;
      return;
    }
    const had = headers.get(name);
    headers.set(name, had === undefined ? value : `${had}${name === 'cookie' ? '; ' : ', '}${value}`);
  };

  /** What a request must have (§8.3.1), once the block is read: no CONNECT (not served). */
  finish(): void {
    if (this.malformed) return;
    const h = this.headers;
    this.malformed = h.get(':method') === 'CONNECT' || !h.has(':method') || !h.has(':scheme') || !h.get(':path');
  }
}

/** One stream of a connection. */
export class H2Stream {
  /** We sent END_STREAM or RST_STREAM: nothing more goes out. */
  localClosed = false;
  /** The client sent END_STREAM (or reset). */
  remoteClosed = false;
  handler: StreamHandler | null = null;
  /** What the client still lets us send on this stream. */
  sendWindow: number;
  /** Bytes the client sent that its window has not been reopened for. */
  received = 0;
  /** DATA waiting for window, then the trailers block that ends the stream (null: none yet). */
  private pending: Buffer[] | null = null;
  private pendingTrailers: Buffer | null = null;

  constructor(
    readonly id: number,
    private readonly connection: H2Connection,
    sendWindow: number,
  ) {
    this.sendWindow = sendWindow;
  }

  /** The connection's socket (TLS peer certificate). */
  get socket(): Socket {
    return this.connection.socket;
  }

  /** Whether the stream can still carry our frames. */
  get writable(): boolean {
    return !this.localClosed && !this.connection.closed;
  }

  /** Sends a header block; `end` closes our side (a trailers-only answer). */
  sendHeaders(block: Buffer, end: boolean): void {
    if (!this.writable) return;
    this.connection.writeHeaders(this.id, block, end);
    if (end) this.closeLocal();
  }

  /** Sends body bytes, as DATA frames within the client's windows (queued until it opens them). */
  sendData(bytes: Buffer): void {
    if (!this.writable || bytes.length === 0) return;
    if (this.pending !== null) this.pending.push(bytes);
    else {
      const rest = this.connection.writeData(this, bytes);
      if (rest !== null) this.pending = [rest];
    }
  }

  /** Ends the stream with a trailers block, after any DATA still waiting for window. */
  sendTrailers(block: Buffer): void {
    if (!this.writable) return;
    if (this.pending !== null) {
      this.pendingTrailers = block;
      return;
    }
    this.connection.writeHeaders(this.id, block, true);
    this.closeLocal();
  }

  /**
   * A whole unary answer: headers, one message, trailers. In one write when the client's windows
   * take the message (the usual case); otherwise as sendHeaders, sendData, sendTrailers.
   */
  sendAnswer(headers: Buffer, message: Buffer, trailers: Buffer): void {
    if (!this.writable) return;
    if (this.pending === null && this.connection.writeAnswer(this, headers, message, trailers)) {
      this.closeLocal();
      return;
    }
    this.sendHeaders(headers, false);
    this.sendData(message);
    this.sendTrailers(trailers);
  }

  /** Resets the stream (RST_STREAM): the client sees the call fail, or stops sending on it. */
  reset(code: number): void {
    if (this.localClosed && this.remoteClosed) return;
    this.pending = null;
    this.pendingTrailers = null;
    this.connection.writeReset(this.id, code);
    this.localClosed = true;
    this.remoteClosed = true;
    this.connection.forget(this);
  }

  /** Sends what waited for window, as far as the windows now allow. */
  flushPending(): void {
    while (this.pending !== null && this.writable) {
      const head = this.pending[0] as Buffer;
      const rest = this.connection.writeData(this, head);
      if (rest !== null) {
        this.pending[0] = rest;
        return;
      }
      this.pending.shift();
      if (this.pending.length === 0) {
        this.pending = null;
        const trailers = this.pendingTrailers;
        this.pendingTrailers = null;
        if (trailers !== null) {
          this.connection.writeHeaders(this.id, trailers, true);
          this.closeLocal();
        }
      }
    }
  }

  private closeLocal(): void {
    this.localClosed = true;
    if (this.remoteClosed) this.connection.forget(this);
  }
}

/** One HTTP/2 connection, server side. */
export class H2Connection {
  closed = false;
  private readonly streams = new Map<number, H2Stream>();
  /** Streams that have window on their side but wait for the connection's. */
  private readonly blocked = new Set<H2Stream>();
  private readonly decoder = new HpackDecoder(HEADER_TABLE_SIZE);
  private readonly fields = new RequestFields();
  /** Bytes of a frame not whole yet: the chunks so far, their length, and the length that makes it whole. */
  private partial: Buffer[] = [];
  private partialBytes = 0;
  private partialNeed = 0;
  private prefaceSeen = false;
  private settingsSeen = false;
  private lastStreamId = 0;
  /** A header block being continued: its stream, fragments, flags of its HEADERS frame. */
  private continuing: { streamId: number; fragments: Buffer[]; bytes: number; frames: number; endStream: boolean } | null = null;
  private peerInitialWindow = DEFAULT_WINDOW;
  private peerMaxFrameSize = DEFAULT_FRAME_SIZE;
  private sendWindow = DEFAULT_WINDOW;
  /** Bytes received on the connection that its window has not been reopened for. */
  private received = 0;
  private out: Buffer[] = [];
  private reading = false;
  private flushScheduled = false;
  private resetTokens = RESET_BURST;
  private resetRefilledAt = Date.now();
  /** GOAWAY sent: no new streams; the connection closes once the open ones are done. */
  private goingAway = false;
  private peerGoneAway = false;
  private readonly onClosed: () => void;

  constructor(
    readonly socket: Socket,
    private readonly options: H2Options,
    private readonly accept: StreamAcceptor,
    onClosed: () => void,
  ) {
    this.onClosed = onClosed;
    socket.setNoDelay?.(true);
    socket.on('data', (chunk: Buffer) => this.onSocketData(chunk));
    socket.on('error', () => socket.destroy());
    socket.on('close', () => this.onSocketClose());
    socket.on('drain', () => {
      if (!this.closed) socket.resume();
    });
    // Our SETTINGS first (§3.4), then the connection window opened past its default.
    const settings = Buffer.allocUnsafe(18);
    settings.writeUInt16BE(SETTINGS_MAX_CONCURRENT_STREAMS, 0);
    settings.writeUInt32BE(options.maxConcurrentStreams, 2);
    settings.writeUInt16BE(SETTINGS_INITIAL_WINDOW_SIZE, 6);
    settings.writeUInt32BE(STREAM_WINDOW, 8);
    settings.writeUInt16BE(SETTINGS_MAX_HEADER_LIST_SIZE, 12);
    settings.writeUInt32BE(MAX_HEADER_LIST_BYTES, 14);
    this.queue(frame(SETTINGS, 0, 0, settings));
    this.queue(frame(WINDOW_UPDATE, 0, 0, u32(CONNECTION_WINDOW - DEFAULT_WINDOW)));
    this.flush();
  }

  /**
   * Stops taking new streams (GOAWAY NO_ERROR with the last stream we took), and closes once
   * the open ones are done.
   */
  shutdown(): void {
    if (this.closed || this.goingAway) return;
    this.goingAway = true;
    this.writeGoAway(H2_ERROR.NO_ERROR);
    this.flush();
    this.closeIfIdle();
  }

  /** Closes now: open streams are told (onClose). */
  destroy(): void {
    this.socket.destroy();
  }

  // --- reading -------------------------------------------------------------------------------

  private onSocketData(chunk: Buffer): void {
    if (this.closed) return;
    let buf = chunk;
    if (this.partialBytes > 0) {
      // A frame that spans reads is joined once it is whole, not on every read: a client that
      // sends a byte at a time costs a copy per frame, not a copy per byte.
      this.partial.push(chunk);
      this.partialBytes += chunk.length;
      if (this.partialBytes < this.partialNeed) return;
      buf = Buffer.concat(this.partial, this.partialBytes);
      this.partial = [];
      this.partialBytes = 0;
    }
    this.reading = true;
    try {
      const used = this.readFrames(buf);
      if (used < buf.length && !this.closed) {
        const rest = buf.subarray(used);
        this.partial = [rest];
        this.partialBytes = rest.length;
        this.partialNeed = this.wholeFrameBytes(rest);
      }
    } catch (err) {
      this.fail(err instanceof ConnectionError ? err.code : H2_ERROR.INTERNAL_ERROR);
    } finally {
      this.reading = false;
    }
    this.flush();
  }

  /** How many bytes make the frame (or preface, or frame header) at the start of `rest` whole. */
  private wholeFrameBytes(rest: Buffer): number {
    if (!this.prefaceSeen) return PREFACE.length;
    if (rest.length < FRAME_HEADER) return FRAME_HEADER;
    return FRAME_HEADER + (rest[0] as number) * 65536 + (rest[1] as number) * 256 + (rest[2] as number);
  }

  /** Handles every whole frame in buf; the bytes used. */
  private readFrames(buf: Buffer): number {
    let pos = 0;
    if (!this.prefaceSeen) {
      const n = Math.min(buf.length, PREFACE.length);
      if (buf.compare(PREFACE, 0, n, 0, n) !== 0) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'not the HTTP/2 client preface');
      if (buf.length < PREFACE.length) return 0;
      this.prefaceSeen = true;
      pos = PREFACE.length;
    }
    while (buf.length - pos >= FRAME_HEADER && !this.closed) {
      const length = (buf[pos] as number) * 65536 + (buf[pos + 1] as number) * 256 + (buf[pos + 2] as number);
      // Our MAX_FRAME_SIZE is the default (§4.2).
      if (length > DEFAULT_FRAME_SIZE) throw new ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, `frame of ${length} bytes`);
      if (buf.length - pos < FRAME_HEADER + length) break;
      const type = buf[pos + 3] as number;
      const flags = buf[pos + 4] as number;
      const streamId = buf.readUInt32BE(pos + 5) & MAX_WINDOW;
      const start = pos + FRAME_HEADER;
      pos = start + length;
      this.onFrame(type, flags, streamId, buf, start, pos);
    }
    return pos;
  }

  private onFrame(type: number, flags: number, streamId: number, buf: Buffer, start: number, end: number): void {
    if (!this.settingsSeen) {
      if (type !== SETTINGS || (flags & FLAG_ACK) !== 0) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'the client preface must end with SETTINGS');
      this.settingsSeen = true;
    }
    if (this.continuing !== null && type !== CONTINUATION) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'a header block was not continued');
    switch (type) {
      case DATA:
        this.onData(flags, streamId, buf, start, end);
        return;
      case HEADERS:
        this.onHeaders(flags, streamId, buf, start, end);
        return;
      case PRIORITY:
        if (streamId === 0) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'PRIORITY on stream 0');
        if (end - start !== 5) this.resetStream(streamId, H2_ERROR.FRAME_SIZE_ERROR);
        return;
      case RST_STREAM:
        this.onReset(streamId, start, end);
        return;
      case SETTINGS:
        this.onSettings(flags, streamId, buf, start, end);
        return;
      case PUSH_PROMISE:
        throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'PUSH_PROMISE from a client');
      case PING:
        if (streamId !== 0) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'PING on a stream');
        if (end - start !== 8) throw new ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, 'PING of another length than 8');
        if ((flags & FLAG_ACK) === 0) this.queue(frame(PING, FLAG_ACK, 0, buf.subarray(start, end)));
        return;
      case GOAWAY:
        if (streamId !== 0) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'GOAWAY on a stream');
        if (end - start < 8) throw new ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, 'GOAWAY shorter than 8');
        this.peerGoneAway = true;
        this.closeIfIdle();
        return;
      case WINDOW_UPDATE:
        this.onWindowUpdate(streamId, buf, start, end);
        return;
      case CONTINUATION:
        this.onContinuation(flags, streamId, buf, start, end);
        return;
      default:
        return; // unknown frame types are ignored (§4.1, §5.5)
    }
  }

  /** The payload of a padded frame without its padding: [start, end) (§6.1, §6.2). */
  private unpad(flags: number, buf: Buffer, start: number, end: number): number {
    if ((flags & FLAG_PADDED) === 0) return end;
    if (end - start < 1) throw new ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, 'padded frame without its pad length');
    const pad = buf[start] as number;
    if (pad >= end - start) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'padding longer than the frame');
    return end - pad;
  }

  private onData(flags: number, streamId: number, buf: Buffer, start: number, end: number): void {
    if (streamId === 0) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'DATA on stream 0');
    if (streamId > this.lastStreamId) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'DATA on an idle stream');
    const length = end - start;
    // The whole frame counts against both windows, padding included (§6.9.1). Windows are
    // reopened as bytes are read, at half of what was given: what a stream's bytes may hold in
    // memory is its handler's to bound (a gRPC message is refused from its length prefix), and
    // a refused call's bytes are read and dropped, as node:http2 does.
    this.received += length;
    if (this.received >= CONNECTION_WINDOW / 2) {
      this.queue(frame(WINDOW_UPDATE, 0, 0, u32(this.received)));
      this.received = 0;
    }
    const stream = this.streams.get(streamId);
    const payloadEnd = this.unpad(flags, buf, start, end);
    if (stream === undefined) return; // closed: what was in flight is dropped (its window counted above)
    if (stream.remoteClosed) {
      this.resetStream(streamId, H2_ERROR.STREAM_CLOSED);
      return;
    }
    stream.received += length;
    const payloadStart = (flags & FLAG_PADDED) === 0 ? start : start + 1;
    const endStream = (flags & FLAG_END_STREAM) !== 0;
    if (!endStream && stream.received >= STREAM_WINDOW / 2) {
      this.queue(frame(WINDOW_UPDATE, 0, streamId, u32(stream.received)));
      stream.received = 0;
    }
    if (payloadEnd > payloadStart) stream.handler?.onData(buf.subarray(payloadStart, payloadEnd));
    if (endStream) this.endRemote(stream);
  }

  private onHeaders(flags: number, streamId: number, buf: Buffer, start: number, end: number): void {
    if (streamId === 0) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'HEADERS on stream 0');
    let blockStart = (flags & FLAG_PADDED) === 0 ? start : start + 1;
    const blockEnd = this.unpad(flags, buf, start, end);
    if ((flags & FLAG_PRIORITY) !== 0) blockStart += 5;
    if (blockStart > blockEnd) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'HEADERS too short for its priority and padding');
    const endStream = (flags & FLAG_END_STREAM) !== 0;
    if ((flags & FLAG_END_HEADERS) === 0) {
      this.continuing = { streamId, fragments: [buf.subarray(blockStart, blockEnd)], bytes: blockEnd - blockStart, frames: 0, endStream };
      return;
    }
    this.onHeaderBlock(streamId, buf, blockStart, blockEnd, endStream);
  }

  private onContinuation(flags: number, streamId: number, buf: Buffer, start: number, end: number): void {
    const c = this.continuing;
    if (c === null || c.streamId !== streamId) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'CONTINUATION without its HEADERS');
    c.bytes += end - start;
    if (c.bytes > MAX_HEADER_LIST_BYTES || ++c.frames > MAX_CONTINUATIONS) throw new ConnectionError(H2_ERROR.ENHANCE_YOUR_CALM, 'header block too large');
    // Not copied: a read's buffer is never reused (Node allocates one per read).
    c.fragments.push(buf.subarray(start, end));
    if ((flags & FLAG_END_HEADERS) === 0) return;
    this.continuing = null;
    const block = Buffer.concat(c.fragments);
    this.onHeaderBlock(streamId, block, 0, block.length, c.endStream);
  }

  private onHeaderBlock(streamId: number, block: Buffer, start: number, end: number, endStream: boolean): void {
    // Decoded whatever becomes of the stream: the table must follow the client's (§4.3).
    const fields = this.fields;
    fields.reset();
    try {
      this.decoder.decode(block, start, end, MAX_HEADER_LIST_BYTES, fields.add);
    } catch (err) {
      if (err instanceof HpackError) throw new ConnectionError(H2_ERROR.COMPRESSION_ERROR, err.message);
      throw err;
    }
    if (streamId <= this.lastStreamId) {
      const existing = this.streams.get(streamId);
      // A stream we closed or refused: what the client sent before it knew is dropped.
      if (existing === undefined) return;
      // Trailers (§8.1): they end the request; their fields are not read.
      if (existing.remoteClosed) this.resetStream(streamId, H2_ERROR.STREAM_CLOSED);
      else if (!endStream) this.resetStream(streamId, H2_ERROR.PROTOCOL_ERROR);
      else this.endRemote(existing);
      return;
    }
    if (streamId % 2 === 0) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'a client stream with an even id');
    this.lastStreamId = streamId;
    if (this.goingAway || this.streams.size >= this.options.maxConcurrentStreams) {
      this.writeReset(streamId, H2_ERROR.REFUSED_STREAM);
      return;
    }
    fields.finish();
    if (fields.malformed) {
      this.writeReset(streamId, H2_ERROR.PROTOCOL_ERROR);
      return;
    }
    const stream = new H2Stream(streamId, this, this.peerInitialWindow);
    this.streams.set(streamId, stream);
    if (endStream) stream.remoteClosed = true;
    let handler: StreamHandler | null;
    try {
      handler = this.accept(stream, fields.headers);
    } catch {
      stream.reset(H2_ERROR.INTERNAL_ERROR);
      return;
    }
    if (handler === null || stream.localClosed) {
      // Refused, and answered already: what the client still sends of it is dropped.
      if (stream.localClosed && stream.remoteClosed) this.forget(stream);
      return;
    }
    stream.handler = handler;
    if (endStream) handler.onEnd();
  }

  private endRemote(stream: H2Stream): void {
    stream.remoteClosed = true;
    if (stream.localClosed) this.forget(stream);
    stream.handler?.onEnd();
  }

  private onReset(streamId: number, start: number, end: number): void {
    if (end - start !== 4) throw new ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, 'RST_STREAM of another length than 4');
    if (streamId === 0) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'RST_STREAM on stream 0');
    if (streamId > this.lastStreamId) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'RST_STREAM on an idle stream');
    const stream = this.streams.get(streamId);
    if (stream === undefined) return;
    if (!stream.localClosed) {
      // A stream reset before we answered it: what the rapid reset attack does by the thousand.
      const now = Date.now();
      this.resetTokens = Math.min(RESET_BURST, this.resetTokens + ((now - this.resetRefilledAt) * RESET_REFILL_PER_SECOND) / 1000);
      this.resetRefilledAt = now;
      if (--this.resetTokens < 0) throw new ConnectionError(H2_ERROR.ENHANCE_YOUR_CALM, 'too many streams reset');
    }
    stream.localClosed = true;
    stream.remoteClosed = true;
    this.forget(stream);
    stream.handler?.onClose();
  }

  private onSettings(flags: number, streamId: number, buf: Buffer, start: number, end: number): void {
    if (streamId !== 0) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'SETTINGS on a stream');
    if ((flags & FLAG_ACK) !== 0) {
      if (end !== start) throw new ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, 'SETTINGS ACK with a payload');
      return;
    }
    if ((end - start) % 6 !== 0) throw new ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, 'SETTINGS of a length not a multiple of 6');
    for (let p = start; p < end; p += 6) {
      const id = buf.readUInt16BE(p);
      const value = buf.readUInt32BE(p + 2);
      if (id === SETTINGS_ENABLE_PUSH && value > 1) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'ENABLE_PUSH other than 0 or 1');
      if (id === SETTINGS_INITIAL_WINDOW_SIZE) {
        if (value > MAX_WINDOW) throw new ConnectionError(H2_ERROR.FLOW_CONTROL_ERROR, 'INITIAL_WINDOW_SIZE over 2^31 - 1');
        const delta = value - this.peerInitialWindow;
        this.peerInitialWindow = value;
        // Every open stream's window moves by the difference (§6.9.2).
        for (const stream of this.streams.values()) {
          stream.sendWindow += delta;
          if (stream.sendWindow > MAX_WINDOW) throw new ConnectionError(H2_ERROR.FLOW_CONTROL_ERROR, 'a stream window over 2^31 - 1');
        }
        if (delta > 0) for (const stream of this.streams.values()) stream.flushPending();
      }
      if (id === SETTINGS_MAX_FRAME_SIZE) {
        if (value < DEFAULT_FRAME_SIZE || value > 0xffffff) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'MAX_FRAME_SIZE out of range');
        this.peerMaxFrameSize = value;
      }
      // HEADER_TABLE_SIZE: our blocks never use the client's table; MAX_CONCURRENT_STREAMS:
      // we open none; MAX_HEADER_LIST_SIZE: advisory. Unknown settings are ignored (§6.5.2).
    }
    this.queue(frame(SETTINGS, FLAG_ACK, 0, null));
  }

  private onWindowUpdate(streamId: number, buf: Buffer, start: number, end: number): void {
    if (end - start !== 4) throw new ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, 'WINDOW_UPDATE of another length than 4');
    const increment = buf.readUInt32BE(start) & MAX_WINDOW;
    if (streamId === 0) {
      if (increment === 0) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'WINDOW_UPDATE of 0');
      this.sendWindow += increment;
      if (this.sendWindow > MAX_WINDOW) throw new ConnectionError(H2_ERROR.FLOW_CONTROL_ERROR, 'connection window over 2^31 - 1');
      for (const stream of [...this.blocked]) {
        this.blocked.delete(stream);
        stream.flushPending();
        if (this.sendWindow <= 0) break;
      }
      return;
    }
    if (streamId > this.lastStreamId) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'WINDOW_UPDATE on an idle stream');
    const stream = this.streams.get(streamId);
    if (stream === undefined) return;
    if (increment === 0) {
      this.resetStream(streamId, H2_ERROR.PROTOCOL_ERROR);
      return;
    }
    stream.sendWindow += increment;
    if (stream.sendWindow > MAX_WINDOW) {
      this.resetStream(streamId, H2_ERROR.FLOW_CONTROL_ERROR);
      return;
    }
    stream.flushPending();
  }

  /** A stream error (§5.4.2): RST_STREAM, and its handler told. */
  private resetStream(streamId: number, code: number): void {
    const stream = this.streams.get(streamId);
    if (stream === undefined) {
      this.writeReset(streamId, code);
      return;
    }
    stream.reset(code);
    stream.handler?.onClose();
  }

  // --- writing -------------------------------------------------------------------------------

  /** A header block as HEADERS and, past the client's frame size, CONTINUATION frames. */
  writeHeaders(streamId: number, block: Buffer, end: boolean): void {
    const max = this.peerMaxFrameSize;
    const endFlag = end ? FLAG_END_STREAM : 0;
    if (block.length <= max) {
      const out = Buffer.allocUnsafe(FRAME_HEADER + block.length);
      frameHeader(out, 0, block.length, HEADERS, FLAG_END_HEADERS | endFlag, streamId);
      block.copy(out, FRAME_HEADER);
      this.queue(out);
      return;
    }
    for (let at = 0; at < block.length; at += max) {
      const piece = block.subarray(at, Math.min(block.length, at + max));
      const last = at + max >= block.length ? FLAG_END_HEADERS : 0;
      this.queue(frame(at === 0 ? HEADERS : CONTINUATION, (at === 0 ? endFlag : 0) | last, streamId, piece));
    }
  }

  /** As much of `bytes` as the windows allow, as DATA frames; the rest, or null when all went. */
  writeData(stream: H2Stream, bytes: Buffer): Buffer | null {
    let at = 0;
    while (at < bytes.length) {
      const n = Math.min(bytes.length - at, stream.sendWindow, this.sendWindow, this.peerMaxFrameSize);
      if (n <= 0) {
        if (stream.sendWindow > 0) this.blocked.add(stream);
        return bytes.subarray(at);
      }
      this.queue(frame(DATA, 0, stream.id, bytes.subarray(at, at + n)));
      stream.sendWindow -= n;
      this.sendWindow -= n;
      at += n;
    }
    return null;
  }

  /** Headers, one message and trailers in one buffer, when the windows take the message whole. */
  writeAnswer(stream: H2Stream, headers: Buffer, message: Buffer, trailers: Buffer): boolean {
    const n = message.length;
    const max = this.peerMaxFrameSize;
    if (n > stream.sendWindow || n > this.sendWindow || n > max || headers.length > max || trailers.length > max) return false;
    const out = Buffer.allocUnsafe(3 * FRAME_HEADER + headers.length + n + trailers.length);
    let at = 0;
    frameHeader(out, at, headers.length, HEADERS, FLAG_END_HEADERS, stream.id);
    at += FRAME_HEADER + headers.copy(out, at + FRAME_HEADER);
    frameHeader(out, at, n, DATA, 0, stream.id);
    at += FRAME_HEADER + message.copy(out, at + FRAME_HEADER);
    frameHeader(out, at, trailers.length, HEADERS, FLAG_END_HEADERS | FLAG_END_STREAM, stream.id);
    trailers.copy(out, at + FRAME_HEADER);
    stream.sendWindow -= n;
    this.sendWindow -= n;
    this.queue(out);
    return true;
  }

  writeReset(streamId: number, code: number): void {
    const counted = this.options.stats?.streamErrors;
    if (counted !== undefined && code < counted.length) (counted[code] as number)++;
    this.queue(frame(RST_STREAM, 0, streamId, u32(code)));
  }

  private writeGoAway(code: number): void {
    const payload = Buffer.allocUnsafe(8);
    payload.writeUInt32BE(this.lastStreamId, 0);
    payload.writeUInt32BE(code, 4);
    this.queue(frame(GOAWAY, 0, 0, payload));
  }

  /** A stream both sides have closed: no longer counted. */
  forget(stream: H2Stream): void {
    this.streams.delete(stream.id);
    this.blocked.delete(stream);
    this.closeIfIdle();
  }

  private queue(bytes: Buffer): void {
    if (this.closed) return;
    this.out.push(bytes);
    if (!this.reading && !this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    const out = this.out;
    if (out.length === 0 || this.socket.destroyed) {
      this.out = [];
      return;
    }
    this.out = [];
    const ok = this.socket.write(out.length === 1 ? (out[0] as Buffer) : Buffer.concat(out));
    if (!ok && this.socket.writableLength > HIGH_WATER) this.socket.pause();
  }

  /** A connection error (§5.4.1): GOAWAY with its code, then closed. */
  private fail(code: number): void {
    if (this.closed) return;
    const counted = this.options.stats?.connectionErrors;
    if (counted !== undefined && code < counted.length) (counted[code] as number)++;
    this.out = [];
    this.writeGoAway(code);
    this.flush();
    this.close();
  }

  private closeIfIdle(): void {
    if ((this.goingAway || this.peerGoneAway) && this.streams.size === 0 && !this.closed) {
      this.flush();
      this.close();
    }
  }

  private close(): void {
    this.closed = true;
    const socket = this.socket;
    socket.end();
    setTimeout(() => socket.destroy(), CLOSE_GRACE_MS).unref();
  }

  private onSocketClose(): void {
    this.closed = true;
    const open = [...this.streams.values()];
    this.streams.clear();
    this.blocked.clear();
    for (const stream of open) {
      if (!stream.localClosed) {
        stream.localClosed = true;
        stream.handler?.onClose();
      }
    }
    this.onClosed();
  }
}

