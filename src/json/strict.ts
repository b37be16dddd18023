// One reading of JSON or none (docs/decision-model.md, "What Mandate refuses"). Mandate decides
// on a body that an upstream parses again with its own parser; where common parsers disagree,
// the document is refused instead of read one way:
//   - a member name twice in one object (JSON.parse keeps the last, many parsers the first);
//   - two member names in one object that a case-insensitive parser takes for the same name:
//     Go's encoding/json matches names with Unicode simple case folding, so "method",
//     "Method" and "METHOD" are one field there, "paramſ" (U+017F) is "params" and "K"
//     (U+212A) is "k" (CVE-2026-27896, GHSA-wvj2-96wp-fq3f); the parser the MCP Go SDK moved
//     to next ignored a NUL in a name (GHSA-q382-vc8q-7jhj); Jackson and .NET fold with
//     toUpperCase/toLowerCase. `foldName` folds all of those together, and more (NFKC,
//     invisible characters): a false refusal is a 400, a false pass is a smuggled call;
//   - a member name with a control character in it, and "__proto__" (JavaScript upstreams
//     that copy objects give it a meaning);
//   - a string with an unpaired surrogate (RFC 8259 §8.2: parsers replace it, keep it or fail);
//   - a number a double does not hold exactly: an integer beyond ±(2^53 - 1), 1e400, or more
//     digits than a double keeps (RFC 8259 §6 leaves such numbers to each parser: int64
//     readers, BigInt readers and double readers then see different values).
// Why a scanner of our own: JSON.parse cannot report duplicate names or number lexemes on
// Node 20 (no source-text access in revivers), and no maintained npm parser refuses all of the
// above together (lossless-json keeps numbers exact but accepts duplicate names with equal
// values; json-bigint has no case-folding check). The scanner is small, iterative in nothing
// but nesting (bounded by maxDepth), and costs about as much as JSON.parse on small bodies.

export type JsonValue = null | boolean | number | string | JsonValue[] | JsonObject;
export interface JsonObject {
  [name: string]: JsonValue;
}

/** A refusal is `syntax` when the text is not JSON at all, `ambiguous` when it is JSON that
 *  parsers read differently (or beyond a limit): JSON-RPC answers -32700 and -32600 for them. */
export type JsonRead =
  | { readonly ok: true; readonly value: JsonValue }
  | { readonly ok: false; readonly kind: 'syntax' | 'ambiguous'; readonly message: string; readonly offset: number };

export interface StrictJsonOptions {
  /** A container at this depth is refused (the top-level value is at depth 0, its members at 1). */
  readonly maxDepth: number;
  /** Refuse names that fold to the same key in one object (default true). Config files that
   *  Cedar reads case-sensitively (entities.json) turn it off and keep the exact-duplicate rule. */
  readonly foldedDuplicates?: boolean;
}

class JsonRefusal extends Error {
  constructor(readonly detail: string, readonly offset: number, readonly kind: 'syntax' | 'ambiguous' = 'ambiguous') {
    super(detail);
  }
}

const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
const SMALL_OBJECT = 16;
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;
// Characters other readers drop or ignore inside a name: controls and Unicode's default
// ignorables (zero-width spaces and joiners, BOM, soft hyphen, variation selectors...).
const IGNORED_IN_NAMES = /[\u0000-\u001f\u007f-\u009f\p{Default_Ignorable_Code_Point}]/gu;

/** Reads `text` as exactly one JSON value under the rules above. */
export function readStrictJson(text: string, options: StrictJsonOptions): JsonRead {
  const scanner = new Scanner(text, options.maxDepth, options.foldedDuplicates !== false);
  try {
    scanner.skipSpace();
    const value = scanner.value(0);
    scanner.skipSpace();
    if (scanner.at < text.length) throw new JsonRefusal('unexpected text after the JSON value', scanner.at, 'syntax');
    return { ok: true, value };
  } catch (err) {
    if (err instanceof JsonRefusal) return { ok: false, kind: err.kind, message: err.detail, offset: err.offset };
    throw err;
  }
}

/**
 * The key under which other parsers may take two names for one: NFKC, invisible and control
 * characters dropped, then each code point mapped through upper case and back to lower case
 * (one code point each way), which puts s, S and ſ, or k, K and K, or ß and ẞ on one key.
 */
export function foldName(name: string): string {
  if (PRINTABLE_ASCII.test(name)) return name.toLowerCase();
  let key = '';
  for (const c of name.normalize('NFKC').replace(IGNORED_IN_NAMES, '')) {
    const upper = c.toUpperCase();
    const u = [...upper].length === 1 ? upper : c;
    const lower = u.toLowerCase();
    key += [...lower].length === 1 ? lower : u;
  }
  return key;
}

// "_" and "-" between letters or digits: what naming styles put between words (account_id,
// account-id) and camelCase leaves out (accountId). Leading and trailing ones are no word break.
const WORD_SEPARATORS = /(?<=[\p{L}\p{N}])[-_]+(?=[\p{L}\p{N}])/gu;

/**
 * The key under which a parser or a framework may take two member names for one: foldName's,
 * with the "_" and "-" between words dropped. Frameworks that convert naming styles read
 * `accountId`, `account_id` and `account-id` as one field: Rails apps that convert request keys
 * (`deep_transform_keys(&:underscore)`, the olive_branch middleware) read `accountId` as
 * `account_id`, and a Pydantic model with a camelCase alias generator and populate_by_name takes
 * either spelling. A body spelling a name the policies read in another style is read by such an
 * upstream as that name while Mandate, reading exactly, did not see it.
 */
export function memberKey(name: string): string {
  const folded = foldName(name);
  return folded.includes('_') || folded.includes('-') ? folded.replace(WORD_SEPARATORS, '') : folded;
}

/** Why two member names with one memberKey are one: by case (and Unicode folding) alone, or by naming style. */
export function sameNameReason(name: string, other: string): string {
  return foldName(name) === foldName(other) ? 'case-insensitive parsers' : 'frameworks that convert naming styles (account_id, accountId)';
}

/**
 * The names some reader of a document acts on (the MCP envelope's, the attributes policies
 * read). A member spelled differently from all of them but folding to one of them is a name a
 * case-insensitive upstream would act on while Mandate, reading exactly, did not see it.
 */
export class ReadNames {
  private readonly byKey = new Map<string, Set<string>>();

  constructor(names: Iterable<string>) {
    for (const name of names) {
      const key = memberKey(name);
      let set = this.byKey.get(key);
      if (set === undefined) this.byKey.set(key, (set = new Set()));
      set.add(name);
    }
  }

  /** The name `name` could be read as, or null when it is one of them or folds to none. */
  aliasOf(name: string): string | null {
    const exact = this.byKey.get(memberKey(name));
    if (exact === undefined || exact.has(name)) return null;
    return exact.values().next().value as string;
  }

  /** The first member name anywhere in `value` that aliases a read name, with its path. */
  findAlias(value: JsonValue, where: string): string | null {
    if (this.byKey.size === 0 || value === null || typeof value !== 'object') return null;
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) {
        const found = this.findAlias(value[i] as JsonValue, `${where}[${i}]`);
        if (found !== null) return found;
      }
      return null;
    }
    for (const name of Object.keys(value)) {
      const alias = this.aliasOf(name);
      if (alias !== null) return `${where} has the member "${printable(name)}", which ${sameNameReason(name, alias)} read as "${alias}"`;
      const found = this.findAlias(value[name] as JsonValue, `${where}.${printable(name)}`);
      if (found !== null) return found;
    }
    return null;
  }
}


class Scanner {
  at = 0;

  constructor(private readonly text: string, private readonly maxDepth: number, private readonly folded: boolean) {}

  skipSpace(): void {
    const t = this.text;
    let i = this.at;
    for (;;) {
      const c = t.charCodeAt(i);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) i++;
      else break;
    }
    this.at = i;
  }

  value(depth: number): JsonValue {
    const c = this.text.charCodeAt(this.at);
    switch (c) {
      case 0x7b: // {
        return this.object(depth);
      case 0x5b: // [
        return this.array(depth);
      case 0x22: // "
        return this.string();
      case 0x74: // t
        return this.literal('true', true);
      case 0x66: // f
        return this.literal('false', false);
      case 0x6e: // n
        return this.literal('null', null);
      default:
        if (c === 0x2d || (c >= 0x30 && c <= 0x39)) return this.number();
        throw new JsonRefusal(this.at >= this.text.length ? 'the JSON ends too early' : 'not valid JSON', this.at, 'syntax');
    }
  }

  private literal<T extends JsonValue>(word: string, value: T): T {
    if (!this.text.startsWith(word, this.at)) throw new JsonRefusal('not valid JSON', this.at, 'syntax');
    this.at += word.length;
    return value;
  }

  private object(depth: number): JsonObject {
    if (depth >= this.maxDepth) throw new JsonRefusal(`nested deeper than ${this.maxDepth} levels`, this.at);
    this.at++;
    const out: JsonObject = {};
    this.skipSpace();
    if (this.text.charCodeAt(this.at) === 0x7d) {
      this.at++;
      return out;
    }
    // Names seen so far and their fold keys: a linear scan while the object is small (most
    // are), a map past SMALL_OBJECT members.
    const names: string[] = [];
    const folds: string[] = [];
    let index: Map<string, string> | null = null;
    for (;;) {
      if (this.text.charCodeAt(this.at) !== 0x22) throw new JsonRefusal('expected a member name', this.at, 'syntax');
      const nameAt = this.at;
      const name = this.string();
      if (!this.simple && CONTROL.test(name)) throw new JsonRefusal(`member name "${printable(name)}" has a control character`, nameAt);
      if (name === '__proto__') throw new JsonRefusal('member name "__proto__" is refused', nameAt);
      // Duplicates: exact always; folded when asked.
      const key = !this.folded ? name : this.simple && !name.includes('_') && !name.includes('-') ? name.toLowerCase() : memberKey(name);
      let other: string | undefined;
      if (index !== null) other = index.get(key);
      else {
        const at = folds.indexOf(key);
        if (at >= 0) other = names[at];
      }
      if (other !== undefined) {
        throw new JsonRefusal(
          other === name
            ? `member name "${printable(name)}" appears twice in one object`
            : `member names "${printable(other)}" and "${printable(name)}" are one name to ${sameNameReason(name, other)}`,
          nameAt,
        );
      }
      if (index !== null) index.set(key, name);
      else {
        names.push(name);
        folds.push(key);
        if (names.length > SMALL_OBJECT) index = new Map(folds.map((f, i) => [f, names[i] as string]));
      }
      this.skipSpace();
      if (this.text.charCodeAt(this.at) !== 0x3a) throw new JsonRefusal('expected ":"', this.at, 'syntax');
      this.at++;
      this.skipSpace();
      out[name] = this.value(depth + 1);
      if (this.endsWith(0x7d, '}')) return out;
    }
  }

  private array(depth: number): JsonValue[] {
    if (depth >= this.maxDepth) throw new JsonRefusal(`nested deeper than ${this.maxDepth} levels`, this.at);
    this.at++;
    const out: JsonValue[] = [];
    this.skipSpace();
    if (this.text.charCodeAt(this.at) === 0x5d) {
      this.at++;
      return out;
    }
    for (;;) {
      out.push(this.value(depth + 1));
      if (this.endsWith(0x5d, ']')) return out;
    }
  }

  /** After a member or element: true at the closing bracket (consumed), false after a comma. */
  private endsWith(close: number, closeText: string): boolean {
    this.skipSpace();
    const c = this.text.charCodeAt(this.at);
    this.at++;
    if (c === close) return true;
    if (c !== 0x2c) throw new JsonRefusal(`expected "," or "${closeText}"`, this.at - 1, 'syntax');
    this.skipSpace();
    return false;
  }

  /** `simple`: the string holds printable ASCII only (no escape, nothing to fold), so names skip the fold. */
  simple = true;

  private string(): string {
    const t = this.text;
    const start = this.at;
    let i = start + 1;
    let escaped = false;
    let plain = true; // printable ASCII only
    for (;;) {
      if (i >= t.length) throw new JsonRefusal('unterminated string', start, 'syntax');
      const c = t.charCodeAt(i);
      if (c === 0x22) break;
      if (c === 0x5c) {
        escaped = true;
        i += 2;
        continue;
      }
      if (c < 0x20) throw new JsonRefusal('a control character in a string must be escaped', i, 'syntax');
      if (c > 0x7e) plain = false;
      i++;
    }
    this.at = i + 1;
    this.simple = plain && !escaped;
    if (this.simple) return t.slice(start + 1, i);
    let value: string;
    if (!escaped) value = t.slice(start + 1, i);
    else {
      // The escapes themselves are JSON's; JSON.parse reads exactly this one literal.
      try {
        value = JSON.parse(t.slice(start, i + 1)) as string;
      } catch {
        throw new JsonRefusal('invalid escape in a string', start, 'syntax');
      }
    }
    if (!(value as unknown as { isWellFormed(): boolean }).isWellFormed()) {
      throw new JsonRefusal('a string holds an unpaired surrogate (\\ud800-\\udfff)', start);
    }
    return value;
  }

  private number(): number {
    NUMBER.lastIndex = this.at;
    const m = NUMBER.exec(this.text);
    if (m === null) throw new JsonRefusal('not valid JSON', this.at, 'syntax');
    const lexeme = m[0];
    const start = this.at;
    this.at += lexeme.length;
    const value = Number(lexeme);
    // Up to 15 digits and no fraction or exponent: always exact, nothing to compare.
    if (lexeme.length <= 15 && !/[.eE]/.test(lexeme)) return value === 0 ? 0 : value;
    const problem = inexactNumber(lexeme, value);
    if (problem !== null) throw new JsonRefusal(`the number ${lexeme.length > 40 ? `${lexeme.slice(0, 40)}...` : lexeme} ${problem}`, start);
    return value === 0 ? 0 : value; // -0 reads as 0
  }
}

/** Why a number lexeme does not survive a round trip through an IEEE double, or null. */
export function inexactNumber(lexeme: string, value: number): string | null {
  if (!Number.isFinite(value)) return 'is beyond the range of a double';
  if (Number.isInteger(value) && !Number.isSafeInteger(value)) return 'is an integer beyond ±(2^53 - 1), which parsers read differently';
  if (!sameDecimal(lexeme, String(value))) return 'has more digits than a double keeps';
  return null;
}

/** Whether two JSON number lexemes denote the same decimal value (exactly, not as doubles). */
function sameDecimal(a: string, b: string): boolean {
  const x = normalizeDecimal(a);
  const y = normalizeDecimal(b);
  return x.digits === y.digits && (x.digits === '' || (x.negative === y.negative && x.exponent === y.exponent));
}

/** value = (negative ? -1 : 1) * digits * 10^exponent, digits without leading or trailing zeros. */
function normalizeDecimal(lexeme: string): { negative: boolean; digits: string; exponent: number } {
  let s = lexeme;
  const negative = s.startsWith('-');
  if (negative) s = s.slice(1);
  let exponent = 0;
  const e = s.search(/[eE]/);
  if (e >= 0) {
    exponent = Number(s.slice(e + 1));
    s = s.slice(0, e);
  }
  const dot = s.indexOf('.');
  if (dot >= 0) {
    exponent -= s.length - dot - 1;
    s = s.slice(0, dot) + s.slice(dot + 1);
  }
  s = s.replace(/^0+/, '');
  const trailing = s.length - s.replace(/0+$/, '').length;
  s = s.slice(0, s.length - trailing);
  return { negative, digits: s, exponent: exponent + trailing };
}

/** 1-based line of a character offset, for file:line messages. */
export function lineAt(text: string, offset: number): number {
  let line = 1;
  const end = Math.min(offset, text.length);
  for (let i = 0; i < end; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

function printable(s: string): string {
  const out = s.replace(/[^\x20-\x7e]/gu, (c) => `\\u{${(c.codePointAt(0) as number).toString(16)}}`);
  return out.length > 64 ? `${out.slice(0, 64)}...` : out;
}
