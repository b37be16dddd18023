// Strict SPIFFE ID parsing, following the SPIFFE-ID standard (spiffe/spiffe standards/SPIFFE-ID.md):
//   spiffe://<trust domain>[/<path>]
// §2.1 trust domain: lowercase letters, digits, '.', '-', '_' only; no port, no userinfo; so an
//      IPv6 literal ('[', ':') can never appear, while a dotted-quad IPv4 address can.
// §2.2 path: segments of letters, digits, '.', '-', '_'; no empty, '.' or '..' segment; no
//      trailing '/'; no percent-encoding, query or fragment ('%', '?', '#' are not in the set).
// §2.3 maximum lengths: implementations must support 2048 bytes per ID and 255 bytes per trust
//      domain; Mandate refuses anything longer, so every ID it accepts fits every other
//      conforming implementation. All allowed characters are ASCII, so length === bytes.

import { deny, ok, type Outcome } from './reasons.js';

export const SPIFFE_SCHEME_PREFIX = 'spiffe://';
export const MAX_SPIFFE_ID_BYTES = 2048;
export const MAX_TRUST_DOMAIN_BYTES = 255;

export interface SpiffeId {
  /** The whole ID, exactly as given (a valid ID has a single spelling). */
  readonly id: string;
  readonly trustDomain: string;
  /** '' for the trust domain's own ID, else '/seg/seg'. */
  readonly path: string;
}

// Lookup tables by char code: faster than a regex and exactly the standard's sets.
const TRUST_DOMAIN_CHAR = new Uint8Array(128);
const PATH_CHAR = new Uint8Array(128);
for (let c = 0; c < 128; c++) {
  const ch = String.fromCharCode(c);
  const lowerOrDigit = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
  const punct = ch === '.' || ch === '-' || ch === '_';
  TRUST_DOMAIN_CHAR[c] = lowerOrDigit || punct ? 1 : 0;
  PATH_CHAR[c] = lowerOrDigit || punct || (ch >= 'A' && ch <= 'Z') ? 1 : 0;
}
const SLASH = 0x2f;
const DOT = 0x2e;

function invalid(reason: string): Outcome<SpiffeId> {
  return deny('invalid_identity', `not a valid SPIFFE ID: ${reason}`);
}

export function parseSpiffeId(input: string): Outcome<SpiffeId> {
  if (input.length === 0) return invalid('empty');
  if (input.length > MAX_SPIFFE_ID_BYTES) return invalid(`longer than ${MAX_SPIFFE_ID_BYTES} bytes`);
  if (!input.startsWith(SPIFFE_SCHEME_PREFIX)) return invalid('scheme must be "spiffe://"');

  const tdStart = SPIFFE_SCHEME_PREFIX.length;
  let i = tdStart;
  for (; i < input.length; i++) {
    const c = input.charCodeAt(i);
    if (c === SLASH) break;
    if (c >= 128 || TRUST_DOMAIN_CHAR[c] !== 1) {
      return invalid('trust domain may only contain lowercase letters, digits, ".", "-" and "_"');
    }
  }
  const tdLength = i - tdStart;
  if (tdLength === 0) return invalid('trust domain is empty');
  if (tdLength > MAX_TRUST_DOMAIN_BYTES) return invalid(`trust domain longer than ${MAX_TRUST_DOMAIN_BYTES} bytes`);

  const pathStart = i;
  while (i < input.length) {
    // input[i] is '/': a segment follows.
    const segStart = ++i;
    for (; i < input.length; i++) {
      const c = input.charCodeAt(i);
      if (c === SLASH) break;
      if (c >= 128 || PATH_CHAR[c] !== 1) {
        return invalid('path segments may only contain letters, digits, ".", "-" and "_"');
      }
    }
    const segLength = i - segStart;
    if (segLength === 0) {
      return invalid(i === input.length ? 'path has a trailing "/"' : 'path has an empty segment');
    }
    if (input.charCodeAt(segStart) === DOT && (segLength === 1 || (segLength === 2 && input.charCodeAt(segStart + 1) === DOT))) {
      return invalid('path segments may not be "." or ".."');
    }
  }
  return ok({ id: input, trustDomain: input.slice(tdStart, pathStart), path: input.slice(pathStart) });
}
