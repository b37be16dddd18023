// Just enough DER (ITU-T X.690) to read two certificate extensions. node:crypto's
// X509Certificate does not expose the basic KeyUsage bits (its keyUsage is the extended key
// usage), and its `ca` is OpenSSL's X509_check_ca, which also looks at key usage: a
// certificate that says cA=true without keyCertSign reads as "not a CA". The X.509-SVID
// standard constrains both extensions as written, so they are read here.

interface Tlv {
  readonly tag: number;
  readonly start: number; // first content byte
  readonly end: number; // one past the last content byte
}

function readTlv(buf: Uint8Array, at: number, limit: number): Tlv | null {
  if (at + 2 > limit) return null;
  const tag = buf[at] as number;
  let len = buf[at + 1] as number;
  let start = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || start + n > limit) return null;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + (buf[start + i] as number);
    start += n;
  }
  const end = start + len;
  return end > limit ? null : { tag, start, end };
}

function children(buf: Uint8Array, parent: Tlv): Tlv[] | null {
  const out: Tlv[] = [];
  for (let at = parent.start; at < parent.end; ) {
    const t = readTlv(buf, at, parent.end);
    if (t === null) return null;
    out.push(t);
    at = t.end;
  }
  return out;
}

const SEQUENCE = 0x30;
const OID = 0x06;
const BOOLEAN = 0x01;
const OCTET_STRING = 0x04;
const BIT_STRING = 0x03;
const EXTENSIONS = 0xa3; // [3] EXPLICIT in TBSCertificate
const KEY_USAGE_OID = '551d0f'; // 2.5.29.15
const BASIC_CONSTRAINTS_OID = '551d13'; // 2.5.29.19

export const KEY_USAGE_DIGITAL_SIGNATURE = 0;
export const KEY_USAGE_KEY_CERT_SIGN = 5;
export const KEY_USAGE_CRL_SIGN = 6;

/** The two extensions the X.509-SVID standard constrains, as the certificate states them. */
export interface SvidExtensions {
  /** basicConstraints cA (RFC 5280 §4.2.1.9); false when the extension is absent. */
  readonly ca: boolean;
  /** Key usage bits (RFC 5280 §4.2.1.3), bit 0 digitalSignature ... 5 keyCertSign, 6 cRLSign. */
  readonly keyUsage: ReadonlySet<number>;
}

/** Reads basicConstraints and KeyUsage from a DER certificate; null when the DER is malformed. */
export function readSvidExtensions(der: Uint8Array): SvidExtensions | null {
  const cert = readTlv(der, 0, der.length);
  if (cert === null || cert.tag !== SEQUENCE) return null;
  const tbs = children(der, cert)?.[0];
  if (tbs === undefined || tbs.tag !== SEQUENCE) return null;
  const fields = children(der, tbs);
  if (fields === null) return null;
  let ca = false;
  const keyUsage = new Set<number>();
  const extsWrapper = fields.find((f) => f.tag === EXTENSIONS);
  if (extsWrapper === undefined) return { ca, keyUsage };
  const exts = children(der, extsWrapper)?.[0];
  if (exts === undefined || exts.tag !== SEQUENCE) return null;
  for (const ext of children(der, exts) ?? []) {
    const parts = children(der, ext);
    if (parts === null || parts[0]?.tag !== OID) return null;
    const oid = Buffer.from(der.subarray(parts[0].start, parts[0].end)).toString('hex');
    const value = parts.find((p) => p.tag === OCTET_STRING);
    if (value === undefined) return null;
    if (oid === BASIC_CONSTRAINTS_OID) {
      const constraints = readTlv(der, value.start, value.end);
      if (constraints === null || constraints.tag !== SEQUENCE) return null;
      const first = children(der, constraints)?.[0];
      ca = first !== undefined && first.tag === BOOLEAN && der[first.start] !== 0;
    } else if (oid === KEY_USAGE_OID) {
      const bits = readTlv(der, value.start, value.end);
      if (bits === null || bits.tag !== BIT_STRING || bits.end - bits.start < 1) return null;
      // The first content byte counts unused bits; named bits run from the top bit down.
      for (let i = bits.start + 1; i < bits.end; i++) {
        for (let b = 0; b < 8; b++) if (((der[i] as number) & (0x80 >> b)) !== 0) keyUsage.add((i - bits.start - 1) * 8 + b);
      }
    }
  }
  return { ca, keyUsage };
}

/**
 * Splits concatenated DER certificates (the Workload API's x509_svid and bundle fields) into
 * one buffer each; null when the bytes are not a whole number of DER SEQUENCEs.
 */
export function splitDerCertificates(der: Uint8Array): Buffer[] | null {
  const out: Buffer[] = [];
  for (let at = 0; at < der.length; ) {
    const t = readTlv(der, at, der.length);
    if (t === null || t.tag !== SEQUENCE) return null;
    out.push(Buffer.from(der.subarray(at, t.end)));
    at = t.end;
  }
  return out;
}
