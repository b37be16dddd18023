// Mandate's own TLS identity and the authorities it verifies clients against, kept current:
// from PEM files (watched and re-read when they change, as spiffe-helper and cert-manager
// rewrite them) or from the SPIFFE Workload API's X.509 stream. Every change is checked whole
// (the key belongs to the certificate, the certificates parse) before it replaces the current
// material; a bad change is reported and the previous material stays in use. Connections
// already open keep the certificate they were made with; new ones get the new one.

import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { dirname } from 'node:path';
import type { WorkloadApiClient, X509Context } from './workload-api.js';
import { soleUriSan } from './x509.js';

export interface TlsMaterial {
  /** The certificate chain (leaf first) and its key, PEM. */
  readonly certificatePem: string;
  readonly privateKeyPem: string;
  /** The authorities client certificates are verified against, PEM; null: clients are not asked for one. */
  readonly clientCaPem: string | null;
  /**
   * From the Workload API: trust domain -> SHA-256 fingerprints of its authorities. A client
   * X.509-SVID must chain to an authority of its own trust domain (SPIFFE X.509-SVID §5.2); a
   * certificate signed by another domain's authority is refused even though that authority is
   * trusted for its own domain. null for files: any authority in clientCa vouches for a client.
   */
  readonly authorities: ReadonlyMap<string, ReadonlySet<string>> | null;
  /** Mandate's own SPIFFE ID (the leaf's URI SAN), or null. */
  readonly spiffeId: string | null;
  readonly notAfter: Date;
}

export class TlsSourceError extends Error {
  override name = 'TlsSourceError';
}

export interface TlsSourceEvents {
  onUpdate?(material: TlsMaterial): void;
  onError?(message: string): void;
}

type Listener = (material: TlsMaterial) => void;

/** Checks a certificate chain and key as a pair; throws TlsSourceError. */
function checkPair(certificatePem: string, privateKeyPem: string, where: string): { leaf: X509Certificate } {
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(certificatePem);
  } catch (err) {
    throw new TlsSourceError(`${where}: the certificate does not parse (${(err as Error).message})`);
  }
  let key: ReturnType<typeof createPrivateKey>;
  try {
    key = createPrivateKey(privateKeyPem);
  } catch (err) {
    throw new TlsSourceError(`${where}: the private key does not parse (${(err as Error).message})`);
  }
  if (!leaf.checkPrivateKey(key)) throw new TlsSourceError(`${where}: the private key does not belong to the certificate`);
  return { leaf };
}

export class TlsSource {
  private material: TlsMaterial | null = null;
  private readonly listeners = new Set<Listener>();
  private readonly watchers: FSWatcher[] = [];
  private readonly waiting = new Set<() => void>();
  private closeHook: () => void = () => undefined;

  private constructor(readonly kind: 'files' | 'workloadApi', private readonly events: TlsSourceEvents) {}

  /** The current material; null until the Workload API has answered. */
  get current(): TlsMaterial | null {
    return this.material;
  }

  /** Called with every accepted change (not with the material current when subscribing). */
  onChange(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Resolves once there is material; rejects after timeoutMs without any. */
  ready(timeoutMs: number, what: string): Promise<TlsMaterial> {
    if (this.material !== null) return Promise.resolve(this.material);
    return new Promise((resolveReady, reject) => {
      const done = (): void => {
        clearTimeout(timer);
        this.waiting.delete(done);
        if (this.material !== null) resolveReady(this.material);
      };
      const timer = setTimeout(() => {
        this.waiting.delete(done);
        reject(new TlsSourceError(`no X.509-SVID from ${what} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.add(done);
    });
  }

  close(): void {
    for (const w of this.watchers) w.close();
    this.closeHook();
  }

  /**
   * PEM files, read now (throws TlsSourceError) and again whenever their directories change
   * (a rename or a ConfigMap/Secret `..data` swap), or on reload().
   */
  static fromFiles(files: { cert: string; key: string; clientCa: string | null }, events: TlsSourceEvents = {}): TlsSource {
    const source = new TlsSource('files', events);
    const read = (): TlsMaterial => {
      const text = (path: string): string => {
        try {
          return readFileSync(path, 'utf8');
        } catch (err) {
          throw new TlsSourceError(`${path}: cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
        }
      };
      const certificatePem = text(files.cert);
      const privateKeyPem = text(files.key);
      const { leaf } = checkPair(certificatePem, privateKeyPem, files.cert);
      let clientCaPem: string | null = null;
      if (files.clientCa !== null) {
        clientCaPem = text(files.clientCa);
        try {
          new X509Certificate(clientCaPem);
        } catch (err) {
          throw new TlsSourceError(`${files.clientCa}: not a PEM certificate (${(err as Error).message})`);
        }
      }
      return Object.freeze({ certificatePem, privateKeyPem, clientCaPem, authorities: null, spiffeId: soleUriSan(leaf.subjectAltName), notAfter: new Date(leaf.validTo) });
    };
    source.material = read();
    source.reloadFiles = () => {
      try {
        const next = read();
        const now = source.material;
        if (now !== null && now.certificatePem === next.certificatePem && now.privateKeyPem === next.privateKeyPem && now.clientCaPem === next.clientCaPem) return;
        source.accept(next);
      } catch (err) {
        // A cert rewritten before its key reads as a mismatch for a moment: the key's own change
        // event reloads again.
        events.onError?.((err as Error).message);
      }
    };
    let timer: NodeJS.Timeout | undefined;
    const dirs = new Set([dirname(files.cert), dirname(files.key), ...(files.clientCa === null ? [] : [dirname(files.clientCa)])]);
    for (const dir of dirs) {
      try {
        source.watchers.push(
          watch(dir, { persistent: false }, () => {
            clearTimeout(timer);
            timer = setTimeout(() => source.reloadFiles(), 100);
            timer.unref();
          }),
        );
      } catch (err) {
        events.onError?.(`cannot watch ${dir}: ${(err as Error).message}; changes are read on SIGHUP only`);
      }
    }
    return source;
  }

  /** Re-reads the files now (SIGHUP); a no-op for the Workload API. */
  reloadFiles: () => void = () => undefined;

  /**
   * The Workload API's X.509 stream: Mandate's SVID (the one named spiffeId, else the first,
   * the default identity), and the bundles of the trust domains it accepts clients from.
   */
  static fromWorkloadApi(api: WorkloadApiClient, options: { spiffeId: string | null; trustDomains: readonly string[] }, events: TlsSourceEvents = {}): TlsSource {
    const source = new TlsSource('workloadApi', events);
    const unsubscribe = api.subscribeX509((context) => {
      try {
        source.accept(materialFromContext(context, options.spiffeId, options.trustDomains));
      } catch (err) {
        events.onError?.((err as Error).message);
      }
    });
    source.closeHook = unsubscribe;
    return source;
  }

  private accept(material: TlsMaterial): void {
    this.material = material;
    this.events.onUpdate?.(material);
    for (const l of this.listeners) l(material);
    for (const w of [...this.waiting]) w();
  }
}

/** One Workload API X.509 context -> the material Mandate serves with; throws TlsSourceError. */
export function materialFromContext(context: X509Context, spiffeId: string | null, trustDomains: readonly string[]): TlsMaterial {
  const svid = spiffeId === null ? context.svids[0] : context.svids.find((s) => s.spiffeId === spiffeId);
  if (svid === undefined) throw new TlsSourceError(`the Workload API holds no X.509-SVID for ${spiffeId}`);
  // readX509Context already held the SVID to its key and its SPIFFE ID.
  const authorities = new Map<string, Set<string>>();
  const pems: string[] = [];
  for (const [td, certs] of context.bundles) {
    if (!trustDomains.includes(td)) continue; // a federated domain Mandate was not told to accept
    authorities.set(td, new Set(certs.map((c) => c.fingerprint256)));
    pems.push(...certs.map((c) => c.toString()));
  }
  if (pems.length === 0) throw new TlsSourceError(`the Workload API sent no bundle for ${trustDomains.join(', ')}`);
  return Object.freeze({ certificatePem: svid.certificatePem, privateKeyPem: svid.privateKeyPem, clientCaPem: pems.join(''), authorities, spiffeId: svid.spiffeId, notAfter: svid.notAfter });
}
