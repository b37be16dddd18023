// RFC 8785 JSON Canonicalization Scheme: object members sorted by their names' UTF-16 code
// units, no whitespace, strings and numbers serialized as ECMAScript's JSON.stringify does
// (RFC 8785 §3.2.2.2 and §3.2.2.3 adopt exactly that). Used to digest tool-call arguments so an
// approval names one precise set of arguments.

import { hash } from 'node:crypto';

export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    const text = JSON.stringify(value);
    if (text === undefined) throw new TypeError('not representable in JSON');
    return text;
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const keys = Object.keys(value).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`).join(',')}}`;
}

/** SHA-256 of the canonical JSON, hex: the digest an approval can be bound to. */
export function argumentsDigest(args: unknown): string {
  return hash('sha256', canonicalJson(args ?? {}), 'hex');
}
