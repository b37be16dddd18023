// Builds real X.509 v3 certificates (DER, signed with ECDSA P-256 via node:crypto) so tests can
// present SVIDs with exactly the properties they need. Keys are generated per test run.

import { sign, type KeyObject } from 'node:crypto';
import { newKeyPair } from '../../src/core/keygen.js';

function len(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}
function tlv(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content);
  return Buffer.concat([Buffer.from([tag]), len(body.length), body]);
}
const seq = (...c: Buffer[]): Buffer => tlv(0x30, ...c);
const set = (...c: Buffer[]): Buffer => tlv(0x31, ...c);
const explicit = (n: number, ...c: Buffer[]): Buffer => tlv(0xa0 + n, ...c);
const octet = (b: Buffer): Buffer => tlv(0x04, b);
const bool = (v: boolean): Buffer => tlv(0x01, Buffer.from([v ? 0xff : 0]));
const utf8 = (s: string): Buffer => tlv(0x0c, Buffer.from(s, 'utf8'));
function oid(dotted: string): Buffer {
  const parts = dotted.split('.').map(Number);
  const out = [(parts[0] as number) * 40 + (parts[1] as number)];
  for (const p of parts.slice(2)) {
    const chunk: number[] = [p & 0x7f];
    for (let v = p >> 7; v > 0; v >>= 7) chunk.unshift(0x80 | (v & 0x7f));
    out.push(...chunk);
  }
  return tlv(0x06, Buffer.from(out));
}
function int(n: number): Buffer {
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  if (bytes.length === 0 || (bytes[0] as number) & 0x80) bytes.unshift(0);
  return tlv(0x02, Buffer.from(bytes));
}
function time(d: Date): Buffer {
  const s = `${d.toISOString().replace(/[-:T]/g, '').slice(2, 14)}Z`;
  return tlv(0x17, Buffer.from(s));
}
function name(cn: string): Buffer {
  return seq(set(seq(oid('2.5.4.3'), utf8(cn))));
}
function keyUsageBits(bits: number[]): Buffer {
  if (bits.length === 0) return tlv(0x03, Buffer.from([0]));
  const max = Math.max(...bits);
  const bytes = Buffer.alloc((max >> 3) + 1);
  for (const b of bits) bytes[b >> 3] = (bytes[b >> 3] as number) | (0x80 >> (b & 7));
  return tlv(0x03, Buffer.from([7 - (max & 7)]), bytes);
}

export const KU_DIGITAL_SIGNATURE = 0;
export const KU_KEY_CERT_SIGN = 5;
export const KU_CRL_SIGN = 6;

export interface CertOptions {
  subject?: string;
  uris?: string[];
  dns?: string[];
  /** IPv4 addresses, as iPAddress SANs. */
  ips?: string[];
  ca?: boolean;
  /** undefined: no KeyUsage extension at all. */
  keyUsage?: number[];
  issuer?: { name: string; key: KeyObject };
  key?: KeyObject;
}

export interface Cert {
  readonly pem: string;
  /** As Envoy sends it in attributes.source.certificate. */
  readonly urlEncoded: string;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
}

let serial = 1000;

export function makeCertificate(options: CertOptions = {}): Cert {
  const { privateKey, publicKey } = options.key
    ? { privateKey: options.key, publicKey: undefined }
    : newKeyPair({ type: 'ec', namedCurve: 'P-256' });
  const pub = publicKey ?? (privateKey as KeyObject);
  const subject = options.subject ?? 'svid';
  const extensions: Buffer[] = [seq(oid('2.5.29.19'), bool(true), octet(seq(...(options.ca ? [bool(true)] : []))))];
  if (options.keyUsage !== undefined) extensions.push(seq(oid('2.5.29.15'), bool(true), octet(keyUsageBits(options.keyUsage))));
  const sans = [
    ...(options.uris ?? []).map((u) => tlv(0x86, Buffer.from(u))),
    ...(options.dns ?? []).map((d) => tlv(0x82, Buffer.from(d))),
    ...(options.ips ?? []).map((ip) => tlv(0x87, Buffer.from(ip.split('.').map(Number)))),
  ];
  if (sans.length > 0) extensions.push(seq(oid('2.5.29.17'), octet(seq(...sans))));
  const alg = seq(oid('1.2.840.10045.4.3.2'));
  const now = Date.now();
  const tbs = seq(
    explicit(0, int(2)),
    int(serial++),
    alg,
    name(options.issuer?.name ?? subject),
    seq(time(new Date(now - 60_000)), time(new Date(now + 3_600_000))),
    name(subject),
    pub.export({ type: 'spki', format: 'der' }),
    explicit(3, seq(...extensions)),
  );
  const signature = sign('sha256', tbs, options.issuer?.key ?? privateKey);
  const der = seq(tbs, alg, tlv(0x03, Buffer.from([0]), signature));
  const pem = `-----BEGIN CERTIFICATE-----\n${der.toString('base64').replace(/.{64}/g, '$&\n')}\n-----END CERTIFICATE-----\n`.replace('\n\n', '\n');
  return { pem, urlEncoded: encodeURIComponent(pem), privateKey, publicKey: pub };
}

/** A leaf X.509-SVID as SPIRE issues one: one URI SAN, not a CA, digitalSignature only. */
export function makeSvid(spiffeId: string, extra: Partial<CertOptions> = {}): Cert {
  return makeCertificate({ uris: [spiffeId], keyUsage: [KU_DIGITAL_SIGNATURE], ...extra });
}
