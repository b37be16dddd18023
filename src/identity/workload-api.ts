// A SPIFFE Workload API client (standards/SPIFFE_Workload_API.md), over gRPC on the agent's
// socket. It keeps two streams open, FetchX509SVID and FetchJWTBundles, and hands every update
// to its subscribers once it has been read completely and checked; a message that does not read
// is reported and the previous material stays in use. A stream that ends or fails is opened
// again with a growing pause (the agent restarts, or has no identity for us yet: §4.2 says
// clients retry). Every call carries `workload.spiffe.io: true` (Workload Endpoint §5).

import { createPrivateKey, X509Certificate } from 'node:crypto';
import { resolve } from 'node:path';
import { createRequire } from 'node:module';
import type { Client, ClientReadableStream, Metadata, ServiceDefinition, ServiceError } from '@grpc/grpc-js';
import { parseSpiffeId } from '../core/spiffe-id.js';
import { kPackageRoot } from '../package-root.js';
import { splitDerCertificates } from './der.js';
import { uriSans } from './x509.js';

type GrpcJs = typeof import('@grpc/grpc-js');
type ProtoLoader = typeof import('@grpc/proto-loader');
let loaded: { grpc: GrpcJs; service: ServiceDefinition; Client: ReturnType<GrpcJs['makeClientConstructor']> } | null = null;

/**
 * grpc-js and the Workload API's definitions, loaded on first use: `validate`, `check` and a
 * server without the Workload API never pay for them.
 */
function workloadApi(): NonNullable<typeof loaded> {
  if (loaded === null) {
    const require = createRequire(import.meta.url);
    const grpc = require('@grpc/grpc-js') as GrpcJs;
    const protoLoader = require('@grpc/proto-loader') as ProtoLoader;
    const definitions = protoLoader.loadSync('spiffe/workload.proto', { keepCase: false, longs: String, defaults: true, includeDirs: [resolve(kPackageRoot, 'proto')] });
    const service = definitions['SpiffeWorkloadAPI'] as ServiceDefinition;
    loaded = { grpc, service, Client: grpc.makeClientConstructor(service, 'SpiffeWorkloadAPI') };
  }
  return loaded;
}

/** The Workload API's service definition (our proto/spiffe/workload.proto), for tests and tools. */
export function workloadApiService(): ServiceDefinition {
  return workloadApi().service;
}

const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 30_000;

export interface X509Svid {
  readonly spiffeId: string;
  readonly hint: string;
  /** The leaf, then any intermediates, as PEM. */
  readonly certificatePem: string;
  readonly privateKeyPem: string;
  readonly notAfter: Date;
}

/** One FetchX509SVID message, read and checked. */
export interface X509Context {
  readonly svids: readonly X509Svid[];
  /** Trust domain -> its X.509 authorities (the SVIDs' own bundles and the federated ones). */
  readonly bundles: ReadonlyMap<string, readonly X509Certificate[]>;
}

/** Trust domain -> its JWKS document, as sent. */
export type JwtBundles = ReadonlyMap<string, string>;

export class WorkloadApiError extends Error {
  override name = 'WorkloadApiError';
}

/** A stream failed or sent something unreadable; it is retried, the previous material stays. */
export type WorkloadApiErrorListener = (what: 'x509' | 'jwt-bundles', message: string) => void;

type Method = (...args: unknown[]) => unknown;

function metadata(): Metadata {
  const m = new (workloadApi().grpc.Metadata)();
  m.set('workload.spiffe.io', 'true');
  return m;
}

/** A map key of the Workload API ("spiffe://example.org" or "example.org") -> the trust domain. */
export function trustDomainOfKey(key: string): string | null {
  const td = key.startsWith('spiffe://') ? key.slice('spiffe://'.length) : key;
  const id = parseSpiffeId(`spiffe://${td}`);
  return id.ok && id.value.path === '' ? id.value.trustDomain : null;
}

function readCertificates(bytes: unknown, what: string): X509Certificate[] {
  const parts = Buffer.isBuffer(bytes) ? splitDerCertificates(bytes) : null;
  if (parts === null || parts.length === 0) throw new WorkloadApiError(`${what}: not DER certificates`);
  try {
    return parts.map((p) => new X509Certificate(p));
  } catch (err) {
    throw new WorkloadApiError(`${what}: ${(err as Error).message}`);
  }
}

/** Reads one X509SVIDResponse; throws WorkloadApiError when any part of it does not hold. */
export function readX509Context(message: Record<string, unknown>): X509Context {
  const svidsRaw = message['svids'];
  if (!Array.isArray(svidsRaw) || svidsRaw.length === 0) throw new WorkloadApiError('the X.509-SVID response holds no SVID');
  const bundles = new Map<string, X509Certificate[]>();
  const svids = svidsRaw.map((s: Record<string, unknown>, i): X509Svid => {
    const what = `svids[${i}]`;
    const spiffeId = String(s['spiffeId'] ?? '');
    const id = parseSpiffeId(spiffeId);
    if (!id.ok || id.value.path === '') throw new WorkloadApiError(`${what}: "${spiffeId}" is not a workload SPIFFE ID`);
    const chain = readCertificates(s['x509Svid'], `${what}.x509_svid`);
    const leaf = chain[0] as X509Certificate;
    const sans = uriSans(leaf.subjectAltName);
    if (sans.length !== 1 || sans[0] !== spiffeId) throw new WorkloadApiError(`${what}: the certificate's URI SAN is not ${spiffeId}`);
    let key: ReturnType<typeof createPrivateKey>;
    try {
      key = createPrivateKey({ key: s['x509SvidKey'] as Buffer, format: 'der', type: 'pkcs8' });
    } catch (err) {
      throw new WorkloadApiError(`${what}.x509_svid_key: not a PKCS#8 private key (${(err as Error).message})`);
    }
    if (!leaf.checkPrivateKey(key)) throw new WorkloadApiError(`${what}: the private key does not belong to the certificate`);
    const own = readCertificates(s['bundle'], `${what}.bundle`);
    const known = bundles.get(id.value.trustDomain);
    bundles.set(id.value.trustDomain, known === undefined ? own : [...known, ...own.filter((c) => !known.some((k) => k.fingerprint256 === c.fingerprint256))]);
    return Object.freeze({
      spiffeId,
      hint: String(s['hint'] ?? ''),
      certificatePem: chain.map((c) => c.toString()).join(''),
      privateKeyPem: key.export({ format: 'pem', type: 'pkcs8' }) as string,
      notAfter: new Date(leaf.validTo),
    });
  });
  const federated = (message['federatedBundles'] ?? {}) as Record<string, unknown>;
  for (const [key, bytes] of Object.entries(federated)) {
    const td = trustDomainOfKey(key);
    if (td === null) throw new WorkloadApiError(`federated_bundles: "${key}" is not a trust domain`);
    // The workload's own trust domain comes from its SVIDs' bundle, never from a federated entry.
    if (!bundles.has(td)) bundles.set(td, readCertificates(bytes, `federated_bundles["${key}"]`));
  }
  return Object.freeze({ svids: Object.freeze(svids), bundles });
}

/** Reads one JWTBundlesResponse: trust domain -> JWKS text (parsed by bundles.ts). */
export function readJwtBundles(message: Record<string, unknown>): JwtBundles {
  const out = new Map<string, string>();
  for (const [key, bytes] of Object.entries((message['bundles'] ?? {}) as Record<string, unknown>)) {
    const td = trustDomainOfKey(key);
    if (td === null) throw new WorkloadApiError(`bundles: "${key}" is not a trust domain`);
    if (!Buffer.isBuffer(bytes)) throw new WorkloadApiError(`bundles["${key}"]: not bytes`);
    out.set(td, bytes.toString('utf8'));
  }
  return out;
}

/**
 * One stream of the Workload API, opened with its first subscriber and kept open: each good
 * message goes to every subscriber, and the latest one to a subscriber that comes later.
 */
class Feed<T> {
  private readonly listeners = new Set<(value: T) => void>();
  private last: T | null = null;
  private opened = false;

  constructor(private readonly open: (deliver: (value: T) => void) => void) {}

  subscribe(listener: (value: T) => void): () => void {
    if (!this.opened) {
      this.opened = true;
      this.open((value) => {
        this.last = value;
        for (const l of this.listeners) l(value);
      });
    }
    this.listeners.add(listener);
    if (this.last !== null) listener(this.last);
    return () => this.listeners.delete(listener);
  }
}

export class WorkloadApiClient {
  private readonly client: Client & Record<string, Method>;
  private readonly streams = new Set<ClientReadableStream<unknown>>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly x509 = new Feed<X509Context>((deliver) => this.watch('x509', 'FetchX509SVID', (m) => deliver(readX509Context(m))));
  private readonly jwtBundles = new Feed<JwtBundles>((deliver) => this.watch('jwt-bundles', 'FetchJWTBundles', (m) => deliver(readJwtBundles(m))));
  private closed = false;
  /** Set by the server to log stream failures and unreadable messages. */
  onError: WorkloadApiErrorListener = () => undefined;

  constructor(
    /** A grpc-js target: unix:/path or IP:port (config/workload-api.ts). */
    readonly target: string,
  ) {
    const { grpc, Client: WorkloadApi } = workloadApi();
    this.client = new WorkloadApi(target, grpc.credentials.createInsecure()) as Client & Record<string, Method>;
  }

  /** Every good FetchX509SVID message from now on (the latest one at once, if any); stops with close(). */
  subscribeX509(listener: (context: X509Context) => void): () => void {
    return this.x509.subscribe(listener);
  }

  /** Every good FetchJWTBundles message, as subscribeX509. */
  subscribeJwtBundles(listener: (bundles: JwtBundles) => void): () => void {
    return this.jwtBundles.subscribe(listener);
  }

  /** The first X.509 context, for a one-shot client (the CLI); the stream is closed after it. */
  fetchX509Context(timeoutMs: number): Promise<X509Context> {
    return this.first('FetchX509SVID', timeoutMs, readX509Context);
  }

  /** A JWT-SVID for audience (the default identity, or spiffeId). */
  fetchJwtSvid(audience: string, spiffeId: string | null, timeoutMs: number): Promise<string> {
    return new Promise((resolveFetch, reject) => {
      (this.client['FetchJWTSVID'] as Method).call(this.client, { audience: [audience], spiffeId: spiffeId ?? '' }, metadata(), { deadline: Date.now() + timeoutMs }, (err: ServiceError | null, res: { svids?: { spiffeId: string; svid: string }[] }) => {
        if (err) return reject(new WorkloadApiError(`FetchJWTSVID: ${err.details || err.message}`));
        const svid = res.svids?.find((s) => spiffeId === null || s.spiffeId === spiffeId)?.svid;
        if (svid === undefined || svid === '') return reject(new WorkloadApiError('FetchJWTSVID: the Workload API returned no JWT-SVID'));
        resolveFetch(svid);
      });
    });
  }

  close(): void {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    for (const s of this.streams) s.cancel();
    this.client.close();
  }

  private watch(what: 'x509' | 'jwt-bundles', method: string, handle: (m: Record<string, unknown>) => void, pauseMs = RETRY_FIRST_MS): void {
    if (this.closed) return;
    const stream = (this.client[method] as Method).call(this.client, {}, metadata()) as ClientReadableStream<Record<string, unknown>>;
    this.streams.add(stream);
    let nextPause = pauseMs;
    let retried = false;
    const retry = (message: string): void => {
      if (retried || this.closed) return;
      retried = true;
      this.streams.delete(stream);
      stream.cancel();
      this.onError(what, `${method}: ${message}; retrying in ${nextPause} ms`);
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        this.watch(what, method, handle, Math.min(nextPause * 2, RETRY_MAX_MS));
      }, nextPause);
      timer.unref();
      this.timers.add(timer);
    };
    stream.on('data', (m: Record<string, unknown>) => {
      try {
        handle(m);
        nextPause = RETRY_FIRST_MS; // a good message: the next failure starts over
      } catch (err) {
        this.onError(what, `${method}: ${(err as Error).message}; keeping the previous material`);
      }
    });
    stream.on('error', (err: ServiceError) => retry(err.details || err.message));
    stream.on('end', () => retry('the stream ended'));
  }

  private first<T>(method: string, timeoutMs: number, read: (m: Record<string, unknown>) => T): Promise<T> {
    return new Promise((resolveFirst, reject) => {
      const stream = (this.client[method] as Method).call(this.client, {}, metadata(), { deadline: Date.now() + timeoutMs }) as ClientReadableStream<Record<string, unknown>>;
      let done = false;
      stream.on('data', (m: Record<string, unknown>) => {
        if (done) return;
        done = true;
        stream.cancel();
        try {
          resolveFirst(read(m));
        } catch (err) {
          reject(err);
        }
      });
      stream.on('error', (err: ServiceError) => {
        if (!done) reject(new WorkloadApiError(`${method}: ${err.details || err.message}`));
        done = true;
      });
      stream.on('end', () => {
        if (!done) reject(new WorkloadApiError(`${method}: the stream ended without an answer`));
        done = true;
      });
    });
  }
}
