// JSON with exact integers, for data files that Cedar reads as 64-bit longs (the Cedar
// integration-test format, where values beyond ±2^53 occur): such an integer is given as a
// bigint, every other value as JSON.parse gives it. Integer lexemes too long for a double are
// swapped for marked strings before JSON.parse (the marker is chosen so it occurs nowhere in
// the text) and turned into bigints after.

const LONG_INTEGER = /"(?:[^"\\]|\\.)*"|-?\b\d{16,}\b(?![.eE])/g;

export function parseExactJson(text: string): unknown {
  let marker = '\u0001int';
  while (text.includes(marker)) marker += '\u0001';
  let swapped = false;
  const prepared = text.replace(LONG_INTEGER, (m) => {
    if (m.startsWith('"')) return m;
    const n = Number(m);
    if (Number.isSafeInteger(n)) return m;
    swapped = true;
    return JSON.stringify(marker + m);
  });
  const value: unknown = JSON.parse(prepared);
  return swapped ? restore(value, marker) : value;
}

function restore(v: unknown, marker: string): unknown {
  if (typeof v === 'string') return v.startsWith(marker) ? BigInt(v.slice(marker.length)) : v;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) v[i] = restore(v[i], marker);
    return v;
  }
  if (typeof v === 'object' && v !== null) {
    const o = v as Record<string, unknown>;
    for (const k of Object.keys(o)) o[k] = restore(o[k], marker);
  }
  return v;
}

/** Whether a parsed value holds a bigint anywhere (cedar-wasm cannot take one). */
export function holdsBigInt(v: unknown): boolean {
  if (typeof v === 'bigint') return true;
  if (Array.isArray(v)) return v.some(holdsBigInt);
  if (typeof v === 'object' && v !== null) return Object.values(v).some(holdsBigInt);
  return false;
}
