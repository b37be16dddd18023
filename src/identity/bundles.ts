// Trust bundles: the JWT-SVID signing keys of each trust domain (SPIFFE Trust Domain and Bundle
// standard §4: a JWKS whose JWT authorities carry use "jwt-svid" and a kid). Sources are files
// (reloaded when they change) or HTTPS endpoints such as SPIRE's bundle endpoint or OIDC
// discovery provider (refreshed on an interval, with a bounded fetch; the last good set is kept
// while a fetch fails). jose's local key sets skip keys whose use is not "sig", so keys are
// selected here and handed to jose one at a time. A third source is the SPIFFE Workload API's
// FetchJWTBundles stream (workload-api.ts): every message replaces the keys of the trust domains
// that take their bundle from it; a domain missing from a message has no keys until it returns.

import { createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { get as httpsGet } from 'node:https';
import { basename, dirname } from 'node:path';
import type { BundleSource } from '../config/identity.js';
import type { JwtBundles, WorkloadApiClient } from './workload-api.js';

const MAX_BUNDLE_BYTES = 1 << 20;

export class BundleError extends Error {
  override name = 'BundleError';
}

export interface BundleEvents {
  onReload?(trustDomain: string, keys: number): void;
  onError?(trustDomain: string, message: string): void;
}

/** Parses a bundle (or OIDC JWKS) document into kid -> public key. Throws BundleError. */
export function parseBundle(text: string, where: string, acceptSigUse: boolean): Map<string, KeyObject> {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new BundleError(`${where}: not valid JSON (${(err as Error).message})`);
  }
  const keys = (doc as { keys?: unknown })?.keys;
  if (!Array.isArray(keys)) throw new BundleError(`${where}: not a JWKS (no "keys" list)`);
  const out = new Map<string, KeyObject>();
  for (const [i, jwk] of keys.entries()) {
    if (typeof jwk !== 'object' || jwk === null) throw new BundleError(`${where}: keys[${i}] is not an object`);
    const k = jwk as Record<string, unknown>;
    const use = k['use'];
    const forJwt = use === 'jwt-svid' || (acceptSigUse && (use === 'sig' || use === undefined));
    if (!forJwt) continue; // x509-svid authorities and keys for other uses
    if ('d' in k || 'p' in k || 'k' in k) throw new BundleError(`${where}: keys[${i}] holds private or symmetric key material`);
    const kid = k['kid'];
    if (typeof kid !== 'string' || kid === '') throw new BundleError(`${where}: keys[${i}] has no kid`);
    if (out.has(kid)) throw new BundleError(`${where}: kid "${kid}" appears twice`);
    try {
      out.set(kid, createPublicKey({ key: k as never, format: 'jwk' }));
    } catch (err) {
      throw new BundleError(`${where}: keys[${i}] is not a usable public key (${(err as Error).message})`);
    }
  }
  return out;
}

export class BundleSet {
  private readonly keys = new Map<string, Map<string, KeyObject>>();
  private readonly watchers: FSWatcher[] = [];
  private readonly timers: NodeJS.Timeout[] = [];
  private unsubscribe: () => void = () => undefined;
  /** Bumped on every change: cached verifications from an older generation are not trusted. */
  generation = 0;

  private constructor(
    private readonly sources: readonly BundleSource[],
    /** Set by the server to log reloads and failures. */
    readonly events: BundleEvents,
    private readonly workloadApi: { readonly client: WorkloadApiClient; readonly timeoutMs: number } | null,
  ) {}

  /** Loads file bundles now (throwing BundleError on a bad one); URL bundles load in start(). */
  static open(sources: readonly BundleSource[], events: BundleEvents = {}, workloadApi: { readonly client: WorkloadApiClient; readonly timeoutMs: number } | null = null): BundleSet {
    const set = new BundleSet(sources, events, workloadApi);
    for (const s of sources) if (s.kind === 'file') set.keys.set(s.trustDomain, parseBundle(readBundleFile(s.path), s.path, false));
    return set;
  }

  keysFor(trustDomain: string): ReadonlyMap<string, KeyObject> | undefined {
    return this.keys.get(trustDomain);
  }

  /**
   * Fetches URL bundles once and waits (bounded) for the Workload API's first JWT bundles;
   * failures are reported, not thrown: that domain's JWT-SVIDs are refused until its keys
   * arrive. Then starts watching and refreshing.
   */
  async start(): Promise<void> {
    await Promise.all([...this.sources.map((s) => (s.kind === 'url' ? this.refresh(s) : undefined)), this.subscribe()]);
    for (const s of this.sources) {
      if (s.kind === 'file') this.watchFile(s.trustDomain, s.path);
      else if (s.kind === 'url') {
        const timer = setInterval(() => void this.refresh(s), s.refreshSeconds * 1000);
        timer.unref();
        this.timers.push(timer);
      }
    }
  }

  stop(): void {
    this.unsubscribe();
    for (const w of this.watchers) w.close();
    for (const t of this.timers) clearInterval(t);
  }

  /** Re-reads every file bundle (SIGHUP); a bad file keeps its previous keys. */
  reloadFiles(): void {
    for (const s of this.sources) if (s.kind === 'file') this.reloadFile(s.trustDomain, s.path);
  }

  private subscribe(): Promise<void> {
    const fromApi = this.sources.filter((s) => s.kind === 'workloadApi').map((s) => s.trustDomain);
    const api = this.workloadApi;
    if (fromApi.length === 0) return Promise.resolve();
    if (api === null) {
      for (const td of fromApi) this.events.onError?.(td, 'its bundle comes from the Workload API, which this command does not reach');
      return Promise.resolve();
    }
    return new Promise((resolveFirst) => {
      const timer = setTimeout(() => {
        for (const td of fromApi) if (!this.keys.has(td)) this.events.onError?.(td, `no JWT bundle from the Workload API within ${api.timeoutMs} ms; its JWT-SVIDs are refused until one arrives`);
        resolveFirst();
      }, api.timeoutMs);
      timer.unref();
      this.unsubscribe = api.client.subscribeJwtBundles((bundles) => {
        this.takeFromWorkloadApi(fromApi, bundles);
        clearTimeout(timer);
        resolveFirst();
      });
    });
  }

  private takeFromWorkloadApi(trustDomains: readonly string[], bundles: JwtBundles): void {
    for (const td of trustDomains) {
      const text = bundles.get(td);
      if (text === undefined) {
        // The authority set no longer names this domain: nothing of it verifies any more.
        if (this.keys.has(td)) this.set(td, new Map());
        this.events.onError?.(td, 'the Workload API sent no JWT bundle for this trust domain');
        continue;
      }
      try {
        // SPIRE sends these as standard JWKS, without SPIFFE's `use` member.
        this.set(td, parseBundle(text, `Workload API JWT bundle of ${td}`, true));
      } catch (err) {
        this.events.onError?.(td, (err as Error).message);
      }
    }
  }

  private set(trustDomain: string, keys: Map<string, KeyObject>): void {
    this.keys.set(trustDomain, keys);
    this.generation++;
    this.events.onReload?.(trustDomain, keys.size);
  }

  private reloadFile(trustDomain: string, path: string): void {
    try {
      this.set(trustDomain, parseBundle(readBundleFile(path), path, false));
    } catch (err) {
      this.events.onError?.(trustDomain, (err as Error).message);
    }
  }

  private watchFile(trustDomain: string, path: string): void {
    let timer: NodeJS.Timeout | undefined;
    try {
      // The directory, not the file: SPIRE helpers and editors replace files by rename.
      const w = watch(dirname(path), { persistent: false }, (_event, name) => {
        if (name !== null && name !== basename(path)) return;
        clearTimeout(timer);
        timer = setTimeout(() => this.reloadFile(trustDomain, path), 100);
        timer.unref();
      });
      this.watchers.push(w);
    } catch (err) {
      this.events.onError?.(trustDomain, `cannot watch ${path}: ${(err as Error).message}`);
    }
  }

  private async refresh(source: Extract<BundleSource, { kind: 'url' }>): Promise<void> {
    try {
      const text = await fetchBundle(source.url, source.timeoutMs, source.caFile === null ? undefined : readFileSync(source.caFile));
      this.set(source.trustDomain, parseBundle(text, source.url, true));
    } catch (err) {
      this.events.onError?.(source.trustDomain, (err as Error).message);
    }
  }
}

function readBundleFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new BundleError(`${path}: cannot read the bundle (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
}

function fetchBundle(url: string, timeoutMs: number, ca: Buffer | undefined): Promise<string> {
  return new Promise((resolveFetch, reject) => {
    const req = httpsGet(url, { timeout: timeoutMs, ...(ca === undefined ? {} : { ca }), headers: { accept: 'application/json' } }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        reject(new BundleError(`${url}: HTTP ${res.statusCode}`));
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_BUNDLE_BYTES) {
          req.destroy(new BundleError(`${url}: bundle larger than ${MAX_BUNDLE_BYTES} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      res.on('end', () => resolveFetch(Buffer.concat(chunks).toString('utf8')));
      res.on('error', reject);
    });
    // The timeout covers the whole fetch, not only idle time between bytes.
    const deadline = setTimeout(() => req.destroy(new BundleError(`${url}: no answer within ${timeoutMs} ms`)), timeoutMs);
    req.on('timeout', () => req.destroy(new BundleError(`${url}: no answer within ${timeoutMs} ms`)));
    req.on('error', (err) => reject(err instanceof BundleError ? err : new BundleError(`${url}: ${err.message}`)));
    req.on('close', () => clearTimeout(deadline));
  });
}
