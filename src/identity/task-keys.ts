// Task-token signing keys: generated on first start into a key file (mode 0600), or supplied.
// Rotation adds a key and keeps the previous one verifiable for an overlap window, so tokens
// issued just before a rotation stay valid until they expire (or the window closes).

import { createPrivateKey, createPublicKey, randomUUID, type JsonWebKey, type KeyObject } from 'node:crypto';
import { newKeyPair } from '../core/keygen.js';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

export const TASK_TOKEN_ALG = 'ES256';

interface StoredKey {
  kid: string;
  alg: typeof TASK_TOKEN_ALG;
  createdAt: number;
  /** null for the signing key; otherwise the time after which it no longer verifies. */
  retiresAt: number | null;
  privateKey: JsonWebKey;
}

export interface SigningKey {
  readonly kid: string;
  readonly privateKey: KeyObject;
}

export class KeyFileError extends Error {
  override name = 'KeyFileError';
}

export class KeyRing {
  private constructor(
    private readonly path: string,
    private keys: StoredKey[],
    private objects: Map<string, { privateKey: KeyObject; publicKey: KeyObject }>,
  ) {}

  /** Reads the key file; with create, writes a new one (mode 0600) when there is none. */
  static open(path: string, options: { create: boolean; now?: number }): KeyRing {
    if (!existsSync(path)) {
      if (!options.create) return new KeyRing(path, [], new Map());
      const ring = new KeyRing(path, [newKey(options.now ?? nowSeconds())], new Map());
      ring.save();
      ring.objects = toObjects(ring.keys, path);
      return ring;
    }
    const keys = readKeys(path);
    return new KeyRing(path, keys, toObjects(keys, path));
  }

  /** Writes a first key (mode 0600) when the ring has none: `mandate serve` does so once its ports are bound. */
  ensureSigningKey(now = nowSeconds()): void {
    if (this.keys.length > 0) return;
    this.keys = [newKey(now)];
    this.save();
    this.objects = toObjects(this.keys, this.path);
  }

  /** Re-reads the file (after `mandate keys rotate`); a bad file keeps the current keys. */
  reload(): void {
    const keys = readKeys(this.path);
    this.objects = toObjects(keys, this.path);
    this.keys = keys;
  }

  signingKey(): SigningKey | null {
    const current = [...this.keys].reverse().find((k) => k.retiresAt === null);
    if (current === undefined) return null;
    return { kid: current.kid, privateKey: (this.objects.get(current.kid) as { privateKey: KeyObject }).privateKey };
  }

  /** The public key for kid, if it still verifies at `now`. */
  verificationKey(kid: string, now: number): KeyObject | null {
    const key = this.keys.find((k) => k.kid === kid);
    if (key === undefined || (key.retiresAt !== null && now >= key.retiresAt)) return null;
    return this.objects.get(kid)?.publicKey ?? null;
  }

  /** Public keys that still verify, as a JWKS (RFC 7517) for other services. */
  jwks(now = nowSeconds()): { keys: JsonWebKey[] } {
    return {
      keys: this.keys
        .filter((k) => k.retiresAt === null || now < k.retiresAt)
        .map((k) => ({ ...(this.objects.get(k.kid)?.publicKey.export({ format: 'jwk' }) ?? {}), kid: k.kid, alg: k.alg, use: 'sig' })),
    };
  }

  /** Adds a new signing key; the previous one verifies for overlapSeconds more. Drops retired keys. */
  rotate(overlapSeconds: number, now = nowSeconds()): string {
    for (const k of this.keys) if (k.retiresAt === null) k.retiresAt = now + overlapSeconds;
    this.keys = this.keys.filter((k) => k.retiresAt === null || k.retiresAt > now);
    const fresh = newKey(now);
    this.keys.push(fresh);
    this.save();
    this.objects = toObjects(this.keys, this.path);
    return fresh.kid;
  }

  private save(): void {
    mkdirSync(dirname(this.path), { recursive: true, mode: 0o700 });
    const tmp = `${this.path}.${process.pid}.tmp`;
    writeFileSync(tmp, `${JSON.stringify({ keys: this.keys }, null, 2)}\n`, { mode: 0o600 });
    chmodSync(tmp, 0o600);
    renameSync(tmp, this.path);
  }
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

function newKey(now: number): StoredKey {
  const { privateKey } = newKeyPair({ type: 'ec', namedCurve: 'P-256' });
  return { kid: randomUUID(), alg: TASK_TOKEN_ALG, createdAt: now, retiresAt: null, privateKey: privateKey.export({ format: 'jwk' }) };
}

function readKeys(path: string): StoredKey[] {
  let doc: unknown;
  try {
    if ((statSync(path).mode & 0o077) !== 0) throw new KeyFileError(`${path}: the task key file must not be readable by group or others (chmod 600)`);
    doc = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    if (err instanceof KeyFileError) throw err;
    throw new KeyFileError(`${path}: cannot read the task key file (${(err as Error).message})`);
  }
  const keys = (doc as { keys?: unknown }).keys;
  if (!Array.isArray(keys) || keys.length === 0) throw new KeyFileError(`${path}: no keys`);
  return keys as StoredKey[];
}

function toObjects(keys: readonly StoredKey[], path: string): Map<string, { privateKey: KeyObject; publicKey: KeyObject }> {
  const out = new Map<string, { privateKey: KeyObject; publicKey: KeyObject }>();
  for (const k of keys) {
    try {
      const privateKey = createPrivateKey({ key: k.privateKey as never, format: 'jwk' });
      out.set(k.kid, { privateKey, publicKey: createPublicKey(privateKey) });
    } catch (err) {
      throw new KeyFileError(`${path}: key ${k.kid} is not usable (${(err as Error).message})`);
    }
  }
  return out;
}
