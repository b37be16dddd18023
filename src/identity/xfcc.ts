// Envoy's x-forwarded-client-cert header (Envoy docs, HTTP header manipulation): elements
// separated by ",", each a list of key=value pairs separated by ";". A value containing ",", ";"
// or "=" is double-quoted, with \" and \\ escaped inside. Keys: By, Hash, Cert, Chain, Subject,
// URI, DNS. Each proxy appends one element describing its own client, so the last element is
// the one the closest (trusted) hop added: the identity of that hop's immediate peer.

export interface XfccElement {
  readonly pairs: readonly (readonly [string, string])[];
  values(key: string): string[];
}

const MAX_XFCC_CHARS = 64 * 1024;

/** Parses the whole header; null when it is malformed. */
export function parseXfcc(header: string): XfccElement[] | null {
  if (header.length === 0 || header.length > MAX_XFCC_CHARS) return null;
  const elements: XfccElement[] = [];
  let pairs: [string, string][] = [];
  let i = 0;
  const n = header.length;
  for (;;) {
    // key
    const eq = header.indexOf('=', i);
    if (eq < 0) return null;
    const key = header.slice(i, eq).trim();
    if (key === '' || /[",;]/.test(key)) return null;
    i = eq + 1;
    // value
    let value = '';
    if (header[i] === '"') {
      i++;
      for (;;) {
        if (i >= n) return null; // unterminated quote
        const c = header[i] as string;
        if (c === '\\') {
          if (i + 1 >= n) return null;
          value += header[i + 1];
          i += 2;
        } else if (c === '"') {
          i++;
          break;
        } else {
          value += c;
          i++;
        }
      }
    } else {
      let j = i;
      while (j < n && header[j] !== ';' && header[j] !== ',') {
        if (header[j] === '"' || header[j] === '=') return null;
        j++;
      }
      value = header.slice(i, j).trim();
      i = j;
    }
    pairs.push([key, value]);
    if (i >= n) break;
    const sep = header[i];
    i++;
    if (sep === ',') {
      elements.push(element(pairs));
      pairs = [];
    } else if (sep !== ';') {
      return null;
    }
    while (i < n && header[i] === ' ') i++;
    if (i >= n) return null; // trailing separator
  }
  elements.push(element(pairs));
  return elements;
}

function element(pairs: [string, string][]): XfccElement {
  return {
    pairs,
    values: (key) => pairs.filter(([k]) => k.toLowerCase() === key.toLowerCase()).map(([, v]) => v),
  };
}
