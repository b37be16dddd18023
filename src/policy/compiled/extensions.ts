// Cedar's extension types for the compiled evaluator: decimal, ipaddr, datetime, duration.
// Parsing and operations follow Cedar's definitions (cedar-policy-core src/extensions/*.rs and
// the Lean specification cedar-spec Ext/*.lean); test/policy/extensions.test.ts holds each
// constructor to cedar-wasm on generated strings, valid and invalid. Every 64-bit quantity is a
// bigint here, every overflow an error.

export class CedarExtError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CedarError';
  }
}

const MIN = -(2n ** 63n);
const MAX = 2n ** 63n - 1n;
const i64 = (v: bigint, what: string): bigint => {
  if (v < MIN || v > MAX) throw new CedarExtError(`overflow in ${what}`);
  return v;
};

export abstract class Ext {
  abstract readonly kind: 'decimal' | 'ipaddr' | 'datetime' | 'duration';
  abstract equals(other: Ext): boolean;
}

/** An extension value that is one 64-bit quantity; equal to another of its kind with the same quantity. */
abstract class Quantity extends Ext {
  constructor(readonly v: bigint) {
    super();
  }
  equals(o: Ext): boolean {
    return o.kind === this.kind && (o as Quantity).v === this.v;
  }
}

/** `v`: the value times 10^4. */
export class Decimal extends Quantity {
  readonly kind = 'decimal';
}

export class IpAddr extends Ext {
  readonly kind = 'ipaddr';
  constructor(
    readonly v6: boolean,
    readonly addr: bigint,
    readonly prefix: number,
  ) {
    super();
  }
  equals(o: Ext): boolean {
    return o instanceof IpAddr && o.v6 === this.v6 && o.addr === this.addr && o.prefix === this.prefix;
  }
  /** The first and last address of the range. */
  range(): [bigint, bigint] {
    const width = BigInt((this.v6 ? 128 : 32) - this.prefix);
    const lo = (this.addr >> width) << width;
    return [lo, lo + (1n << width) - 1n];
  }
  inRange(o: IpAddr): boolean {
    if (this.v6 !== o.v6) return false;
    const [lo1, hi1] = this.range();
    const [lo2, hi2] = o.range();
    return hi2 >= hi1 && lo1 >= lo2;
  }
}

/** `v`: milliseconds since the Unix epoch. */
export class Datetime extends Quantity {
  readonly kind = 'datetime';
}

/** `v`: milliseconds. */
export class Duration extends Quantity {
  readonly kind = 'duration';
}

const DECIMAL = /^(-?[0-9]+)\.([0-9]+)$/;

export function parseDecimal(s: string): Decimal {
  const m = DECIMAL.exec(s);
  if (m === null) throw new CedarExtError(`\`${s}\` is not a well-formed decimal value`);
  const left = m[1] as string;
  const right = m[2] as string;
  if (right.length > 4) throw new CedarExtError(`too many digits after the decimal in \`${s}\``);
  const l = i64(BigInt(left), 'decimal') * 10000n;
  const r = BigInt(right) * 10n ** BigInt(4 - right.length);
  return new Decimal(i64(left.startsWith('-') ? l - r : l + r, 'decimal'));
}

const DIGITS = /^[0-9]+$/;
const HEX = /^[0-9a-fA-F]{1,4}$/;

/** A decimal number of at most `max` digits, no leading zero (except "0"), at most `limit`. */
function smallNumber(s: string, max: number, limit: number): number | null {
  if (s.length === 0 || s.length > max || !DIGITS.test(s) || (s.startsWith('0') && s !== '0')) return null;
  const n = Number(s);
  return n <= limit ? n : null;
}

function parseV4(s: string): bigint | null {
  const parts = s.split('.');
  if (parts.length !== 4) return null;
  let out = 0n;
  for (const p of parts) {
    const n = smallNumber(p, 3, 255);
    if (n === null) return null;
    out = (out << 8n) | BigInt(n);
  }
  return out;
}

function v6Groups(s: string): number[] | null {
  if (s === '') return [];
  const out: number[] = [];
  for (const g of s.split(':')) {
    if (!HEX.test(g)) return null;
    out.push(parseInt(g, 16));
  }
  return out;
}

function parseV6(s: string): bigint | null {
  const halves = s.split('::');
  let groups: number[] | null;
  if (halves.length === 1) {
    groups = v6Groups(s);
  } else if (halves.length === 2) {
    const a = v6Groups(halves[0] as string);
    const b = v6Groups(halves[1] as string);
    if (a === null || b === null || a.length + b.length >= 8) return null;
    groups = [...a, ...new Array<number>(8 - a.length - b.length).fill(0), ...b];
  } else {
    return null;
  }
  if (groups === null || groups.length !== 8) return null;
  let out = 0n;
  for (const g of groups) out = (out << 16n) | BigInt(g);
  return out;
}

export function parseIp(s: string): IpAddr {
  const fail = (): never => {
    throw new CedarExtError(`invalid IP address: \`${s}\``);
  };
  const parts = s.split('/');
  if (parts.length > 2) fail();
  const addr = parts[0] as string;
  const v4 = parseV4(addr);
  if (v4 !== null) {
    const prefix = parts.length === 2 ? smallNumber(parts[1] as string, 2, 32) : 32;
    if (prefix !== null) return new IpAddr(false, v4, prefix);
  }
  const v6 = parseV6(addr);
  if (v6 === null) return fail();
  const prefix = parts.length === 2 ? smallNumber(parts[1] as string, 3, 128) : 128;
  if (prefix === null) return fail();
  return new IpAddr(true, v6, prefix);
}

const LOOPBACK_V4 = new IpAddr(false, 127n << 24n, 8);
const LOOPBACK_V6 = new IpAddr(true, 1n, 128);
const MULTICAST_V4 = new IpAddr(false, 224n << 24n, 4);
const MULTICAST_V6 = new IpAddr(true, 0xff00n << 112n, 8);

export const isLoopback = (ip: IpAddr): boolean => ip.inRange(ip.v6 ? LOOPBACK_V6 : LOOPBACK_V4);
export const isMulticast = (ip: IpAddr): boolean => ip.inRange(ip.v6 ? MULTICAST_V6 : MULTICAST_V4);

const DURATION = /^-?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?$/;
const U64_MAX = 2n ** 64n - 1n;

export function parseDuration(s: string): Duration {
  const m = s === '' || s === '-' ? null : DURATION.exec(s);
  if (m === null) throw new CedarExtError(`invalid duration pattern: \`${s}\``);
  const num = (i: number): bigint => {
    const g = m[i];
    if (g === undefined) return 0n;
    const v = BigInt(g);
    if (v > U64_MAX) throw new CedarExtError('duration overflows');
    return v;
  };
  const total = num(2) * 86_400_000n + num(4) * 3_600_000n + num(6) * 60_000n + num(8) * 1000n + num(10);
  return new Duration(i64(s.startsWith('-') ? -total : total, 'duration'));
}

const DATE = /^([0-9]{4})-([0-9]{2})-([0-9]{2})/;
const HMS = /^T([0-9]{2}):([0-9]{2}):([0-9]{2})/;
const MS_OFFSET = /^(\.([0-9]{3}))?(Z|((\+|-)([0-9]{2})([0-9]{2})))$/;

/** Days from 1970-01-01 to a proleptic Gregorian date (year 0 included). */
function daysFromCivil(y: number, m: number, d: number): number {
  const yy = m <= 2 ? y - 1 : y;
  const era = Math.floor(yy / 400);
  const yoe = yy - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

function validDate(y: number, m: number, d: number): boolean {
  if (m < 1 || m > 12 || d < 1) return false;
  const leap = (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
  const days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m - 1] as number;
  return d <= days;
}

export function parseDatetime(s: string): Datetime {
  const fail = (): never => {
    throw new CedarExtError(`invalid datetime: \`${s}\``);
  };
  const date = DATE.exec(s);
  if (date === null) return fail();
  const [y, mo, d] = [Number(date[1]), Number(date[2]), Number(date[3])];
  const day = BigInt(daysFromCivil(y, mo, d)) * 86_400_000n;
  if (date[0].length === s.length) {
    if (!validDate(y, mo, d)) fail();
    return new Datetime(day);
  }
  const rest = s.slice(date[0].length);
  const hms = HMS.exec(rest);
  if (hms === null) return fail();
  const tail = MS_OFFSET.exec(rest.slice(hms[0].length));
  if (tail === null) return fail();
  if (!validDate(y, mo, d)) fail();
  const [h, mi, sec] = [Number(hms[1]), Number(hms[2]), Number(hms[3])];
  if (h > 23 || mi > 59 || sec > 59) fail();
  const ms = tail[2] === undefined ? 0 : Number(tail[2]);
  let offset = 0;
  if (tail[4] !== undefined) {
    const [oh, om] = [Number(tail[6]), Number(tail[7])];
    if (oh >= 24 || om >= 60) fail();
    offset = (tail[5] === '+' ? 1 : -1) * (oh * 3600 + om * 60) * 1000;
  }
  return new Datetime(day + BigInt(((h * 60 + mi) * 60 + sec) * 1000 + ms - offset));
}

const DAY = 86_400_000n;

function ext<T extends Ext>(v: unknown, type: new (...args: never[]) => T, name: string): T {
  if (!(v instanceof type)) throw new CedarExtError(`type error: expected ${name}`);
  return v;
}

function str(v: unknown): string {
  if (typeof v !== 'string') throw new CedarExtError('type error: expected string');
  return v;
}

/** A long result as the values of values.ts hold it (number when safe). */
function long(v: bigint): number | bigint {
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : v;
}

type Fn = (args: readonly unknown[]) => unknown;

/** Every extension function and method by name, with its arity. */
export const EXTENSION_FUNCTIONS: ReadonlyMap<string, { readonly arity: number; readonly fn: Fn }> = new Map<string, { arity: number; fn: Fn }>([
  ['decimal', { arity: 1, fn: ([a]) => parseDecimal(str(a)) }],
  ['lessThan', { arity: 2, fn: ([a, b]) => ext(a, Decimal, 'decimal').v < ext(b, Decimal, 'decimal').v }],
  ['lessThanOrEqual', { arity: 2, fn: ([a, b]) => ext(a, Decimal, 'decimal').v <= ext(b, Decimal, 'decimal').v }],
  ['greaterThan', { arity: 2, fn: ([a, b]) => ext(a, Decimal, 'decimal').v > ext(b, Decimal, 'decimal').v }],
  ['greaterThanOrEqual', { arity: 2, fn: ([a, b]) => ext(a, Decimal, 'decimal').v >= ext(b, Decimal, 'decimal').v }],
  ['ip', { arity: 1, fn: ([a]) => parseIp(str(a)) }],
  ['isIpv4', { arity: 1, fn: ([a]) => !ext(a, IpAddr, 'ipaddr').v6 }],
  ['isIpv6', { arity: 1, fn: ([a]) => ext(a, IpAddr, 'ipaddr').v6 }],
  ['isLoopback', { arity: 1, fn: ([a]) => isLoopback(ext(a, IpAddr, 'ipaddr')) }],
  ['isMulticast', { arity: 1, fn: ([a]) => isMulticast(ext(a, IpAddr, 'ipaddr')) }],
  ['isInRange', { arity: 2, fn: ([a, b]) => ext(a, IpAddr, 'ipaddr').inRange(ext(b, IpAddr, 'ipaddr')) }],
  ['datetime', { arity: 1, fn: ([a]) => parseDatetime(str(a)) }],
  ['duration', { arity: 1, fn: ([a]) => parseDuration(str(a)) }],
  ['offset', { arity: 2, fn: ([a, b]) => new Datetime(i64(ext(a, Datetime, 'datetime').v + ext(b, Duration, 'duration').v, 'offset')) }],
  ['durationSince', { arity: 2, fn: ([a, b]) => new Duration(i64(ext(a, Datetime, 'datetime').v - ext(b, Datetime, 'datetime').v, 'durationSince')) }],
  [
    'toDate',
    {
      arity: 1,
      fn: ([a]) => {
        const ms = ext(a, Datetime, 'datetime').v;
        return new Datetime(i64(ms - (((ms % DAY) + DAY) % DAY), 'toDate'));
      },
    },
  ],
  [
    'toTime',
    {
      arity: 1,
      fn: ([a]) => {
        const ms = ext(a, Datetime, 'datetime').v;
        const rem = ms % DAY;
        return new Duration(ms < 0n && rem !== 0n ? rem + DAY : rem);
      },
    },
  ],
  ['toMilliseconds', { arity: 1, fn: ([a]) => long(ext(a, Duration, 'duration').v) }],
  ['toSeconds', { arity: 1, fn: ([a]) => long(ext(a, Duration, 'duration').v / 1000n) }],
  ['toMinutes', { arity: 1, fn: ([a]) => long(ext(a, Duration, 'duration').v / 60_000n) }],
  ['toHours', { arity: 1, fn: ([a]) => long(ext(a, Duration, 'duration').v / 3_600_000n) }],
  ['toDays', { arity: 1, fn: ([a]) => long(ext(a, Duration, 'duration').v / DAY) }],
]);

/** Calls an extension function by name (a policy's call, or an `__extn` in data). */
export function callExtension(name: string, args: readonly unknown[]): unknown {
  const f = EXTENSION_FUNCTIONS.get(name);
  if (f === undefined || f.arity !== args.length) throw new CedarExtError(`unknown extension function ${name}/${args.length}`);
  return f.fn(args);
}
