// Random Cedar policy sets, entities and requests for the differential fuzzer
// (test/policy/compiled-fuzz.test.ts). Policies are generated as Cedar text, so they go through
// cedar-wasm's parser and JSON form exactly as loaded policies do. Expressions cover every
// operator the compiler handles, well- and ill-typed (an ill-typed operand is an error in
// Cedar, and the erroring policies are compared too); longs include the edges of 64 bits.

export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0 || 1;
  }
  /** xorshift32: small, fast, and the same sequence for a seed everywhere. */
  next(): number {
    let x = this.state;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.state = x >>> 0;
    return this.state / 0x100000000;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)] as T;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
}

const TYPES = ['User', 'Group', 'Doc'] as const;
const IDS = ['a', 'b', 'c'];
const ATTRS = ['n', 's', 'b', 'set', 'rec', 'ref', 'x y', 't', 'd', 'ip', 'dec'];
const TAGS = ['t', 'u'];
const ACTIONS = ['read', 'write', 'admin'];
const STRINGS = ['', 'a', 'ab', 'a*b', 'ba', 'xyz', 'a\\*b', '*'];
// Longs where arithmetic overflows or crosses ±2^53: policy text carries them exactly.
const BIG_TEXT = ['9223372036854775807', '9223372036854775806', '4611686018427387904', '9007199254740993', '3037000500'];
const SMALL = [0, 1, -1, 2, 7, 100, 9007199254740991, -9007199254740991, 3037000499];
// Extension arguments, valid and not, near the edges (leap days, offsets, i64 limits).
const DATETIMES = ['1970-01-01', '2024-02-29', '2023-02-29', '2024-10-15T11:38:02Z', '2024-10-15T11:38:02.101+1134', '1969-12-31T23:59:59.999Z', '0000-01-01', '9999-12-31T23:59:59-2359', '2024-01-01T24:00:00Z', 'x'];
const DURATIONS = ['1d', '-1d2h', '23h59m59s999ms', '0ms', '1ms', '-9223372036854775808ms', '9223372036854775807ms', '106751991167d', '1h1d', ''];
const DECIMALS = ['0.0', '1.5', '-1.5', '-0.5', '922337203685477.5807', '-922337203685477.5808', '1.23456', '1', '0.1'];
const IPS = ['10.0.0.1', '10.0.0.0/8', '127.0.0.1', '127.0.0.1/1', '224.1.2.3', '::1', 'ff00::1/8', '::/0', '0.0.0.0/0', '10.0.0.01', '::ffff:1.2.3.4', '1:2:3:4:5:6:7:8/128'];

type Json = unknown;

function attrAccess(name: string): string {
  return /^[a-z]+$/.test(name) ? `.${name}` : `[${JSON.stringify(name)}]`;
}

function uidText(type: string, id: string): string {
  return `${type}::${JSON.stringify(id)}`;
}

/** A JSON value for entity attributes and context (the forms cedar-wasm takes without a schema). */
function jsonValue(r: Rng, depth: number): Json {
  const k = r.int(depth > 1 ? 5 : 8);
  switch (k) {
    case 0:
      return r.pick(SMALL);
    case 1:
      return r.pick(STRINGS.map((s) => s.replace('\\*', '*')));
    case 2:
      return r.chance(0.5);
    case 3:
      return { __entity: { type: r.pick(TYPES), id: r.pick(IDS) } };
    case 4:
      return r.int(20);
    case 5:
      return Array.from({ length: r.int(4) }, () => jsonValue(r, depth + 1));
    default: {
      const out: Record<string, Json> = {};
      for (const a of ATTRS) if (r.chance(0.35)) out[a] = jsonValue(r, depth + 1);
      return out;
    }
  }
}

/** Mostly the type an attribute's name suggests (n: long, s: string...), sometimes anything. */
function attrValue(r: Rng, name: string): Json {
  if (r.chance(0.2)) return jsonValue(r, 1);
  switch (name) {
    case 'n':
      return r.pick([...SMALL, r.int(5), r.int(5)]);
    case 's':
      return r.pick(STRINGS.map((s) => s.replace('\\*', '*')));
    case 'b':
      return r.chance(0.5);
    case 'ref':
      return { __entity: { type: r.pick(TYPES), id: r.pick(IDS) } };
    case 't':
      return { __extn: { fn: 'datetime', arg: r.pick(['1970-01-01', '2024-02-29', '2024-10-15T11:38:02Z', '1969-12-31T23:59:59.999Z', '0000-01-01']) } };
    case 'd':
      return r.chance(0.8) ? { __extn: { fn: 'duration', arg: r.pick(['1d', '-1d2h', '0ms', '1ms', '-9223372036854775808ms']) } } : { __extn: { fn: 'offset', args: [{ __extn: { fn: 'datetime', arg: '1970-01-01' } }, { __extn: { fn: 'duration', arg: '5ms' } }] } };
    case 'ip':
      return { __extn: { fn: 'ip', arg: r.pick(['10.0.0.1', '10.0.0.0/8', '127.0.0.1/1', '::1', 'ff00::1/8']) } };
    case 'dec':
      return { __extn: { fn: 'decimal', arg: r.pick(['0.0', '1.5', '-0.5', '922337203685477.5807']) } };
    case 'set':
      return Array.from({ length: r.int(4) }, () => r.pick([r.int(5), { __entity: { type: r.pick(TYPES), id: r.pick(IDS) } }]));
    default:
      return jsonValue(r, 1);
  }
}

function literal(r: Rng): string {
  switch (r.int(7)) {
    case 0:
      return String(r.pick(SMALL));
    case 1:
      return (r.chance(0.3) ? '-' : '') + r.pick(BIG_TEXT);
    case 2:
      return JSON.stringify(r.pick(STRINGS).replace('\\*', '*'));
    case 3:
      return r.chance(0.5) ? 'true' : 'false';
    case 4:
      return uidText(r.pick(TYPES), r.pick(IDS));
    case 5:
      return '-9223372036854775808';
    default:
      return String(r.int(10));
  }
}

/** A Cedar expression of depth at most `depth`; mostly well-typed operands, sometimes not. */
export function expression(r: Rng, depth: number): string {
  if (depth <= 0 || r.chance(0.15)) {
    return r.chance(0.5) ? literal(r) : r.pick(['principal', 'resource', 'action', 'context', `context${attrAccess(r.pick(ATTRS))}`, `principal${attrAccess(r.pick(ATTRS))}`]);
  }
  const e = (): string => expression(r, depth - 1);
  // Typed operands most of the time, so that evaluations get past the type checks and the
  // operators' own results are compared (an ill-typed operand is just an error).
  const n = (): string => (r.chance(0.75) ? long(r, depth - 1) : e());
  const b = (): string => (r.chance(0.75) ? boolean(r, depth - 1) : e());
  const u = (): string => (r.chance(0.75) ? entity(r) : e());
  switch (r.int(33)) {
    case 28:
    case 29:
    case 30:
    case 31:
    case 32:
      return extensionExpr(r, depth - 1);
    case 0:
      return `(${r.chance(0.5) ? n() : e()} == ${r.chance(0.5) ? n() : e()})`;
    case 1:
      return `(${e()} != ${e()})`;
    case 2:
      return `(${n()} < ${n()})`;
    case 3:
      return `(${n()} <= ${n()})`;
    case 4:
      return `(${n()} > ${n()})`;
    case 5:
      return `(${n()} >= ${n()})`;
    case 6:
      return `(${n()} + ${n()})`;
    case 7:
      return `(${n()} - ${n()})`;
    case 8:
      return `(${n()} * ${n()})`;
    case 9:
      return `(-${n()})`;
    case 10:
      return `(!${b()})`;
    case 11:
      return `(${b()} && ${b()})`;
    case 12:
      return `(${b()} || ${b()})`;
    case 13:
      return `(if ${b()} then ${e()} else ${e()})`;
    case 14:
      return `(${u()} in ${r.chance(0.5) ? u() : `[${uidText('Group', r.pick(IDS))}, ${uidText(r.pick(TYPES), r.pick(IDS))}]`})`;
    case 15:
      return `(${u()} is ${r.pick(TYPES)})`;
    case 16:
      return `(${u()} is ${r.pick(TYPES)} in ${u()})`;
    case 17:
      return `(${r.chance(0.6) ? u() : e()} has ${r.pick(ATTRS.filter((a) => /^[a-z]+$/.test(a)))})`;
    case 18:
      return `(${e()} has ${JSON.stringify(r.pick(ATTRS))})`;
    case 19:
      return `(${r.chance(0.6) ? u() : e()}${attrAccess(r.pick(ATTRS))})`;
    case 20:
      return `(${r.chance(0.6) ? r.pick(['context.s', 'principal.s', 'resource.s', JSON.stringify(r.pick(STRINGS).replace('\\*', '*'))]) : e()} like ${JSON.stringify(r.pick(STRINGS)).replace('\\\\*', '\\*')})`;
    case 21:
      return `${r.chance(0.5) ? e() : `[${n()}, ${e()}]`}.${r.pick(['contains', 'containsAll', 'containsAny'])}(${r.chance(0.5) ? n() : `[${n()}]`})`;
    case 22:
      return `${r.chance(0.6) ? `[${Array.from({ length: r.int(3) }, e).join(', ')}]` : e()}.isEmpty()`;
    case 23:
      return `${r.chance(0.7) ? 'principal' : e()}.hasTag(${r.chance(0.7) ? JSON.stringify(r.pick(TAGS)) : e()})`;
    case 24:
      return `${r.chance(0.7) ? 'resource' : e()}.getTag(${r.chance(0.7) ? JSON.stringify(r.pick(TAGS)) : e()})`;
    case 25:
      return `[${Array.from({ length: r.int(3) }, e).join(', ')}]`;
    case 26:
      return `{${ATTRS.filter(() => r.chance(0.3)).map((a) => `${JSON.stringify(a)}: ${e()}`).join(', ')}}`;
    default:
      return `(context has ${r.pick(['n', 's', 'rec'])}.${r.pick(['n', 's', 'b'])})`;
  }
}

/** An expression that is a long unless an attribute holds something else (or overflows). */
function long(r: Rng, depth: number): string {
  if (depth <= 0 || r.chance(0.4)) return r.pick([String(r.pick(SMALL)), String(r.int(5)), `${r.chance(0.3) ? '-' : ''}${r.pick(BIG_TEXT)}`, 'context.n', 'principal.n', 'resource.n']);
  const n = (): string => long(r, depth - 1);
  return r.pick([() => `(${n()} + ${n()})`, () => `(${n()} - ${n()})`, () => `(${n()} * ${n()})`, () => `(-${n()})`, () => `(if ${boolean(r, depth - 1)} then ${n()} else ${n()})`])();
}

/** An expression that is a boolean unless an attribute holds something else. */
function boolean(r: Rng, depth: number): string {
  if (depth <= 0 || r.chance(0.3)) return r.pick(['true', 'false', 'context.b', 'principal.b', `(principal in ${uidText('Group', r.pick(IDS))})`, `(context has ${r.pick(ATTRS.filter((a) => /^[a-z]+$/.test(a)))})`]);
  const n = (): string => long(r, depth - 1);
  const b = (): string => boolean(r, depth - 1);
  return r.pick([
    () => `(${n()} < ${n()})`,
    () => `(${n()} <= ${n()})`,
    () => `(${n()} > ${n()})`,
    () => `(${n()} >= ${n()})`,
    () => `(${n()} == ${n()})`,
    () => `(${b()} && ${b()})`,
    () => `(${b()} || ${b()})`,
    () => `(!${b()})`,
    () => `(${entity(r)} in ${entity(r)})`,
    () => `(${entity(r)} is ${r.pick(TYPES)} in ${entity(r)})`,
  ])();
}

/** Extension constructors, methods, and datetime/duration comparisons (mostly well typed). */
function extensionExpr(r: Rng, depth: number): string {
  const dt = (): string => (r.chance(0.2) ? 'context.t' : r.chance(0.2) && depth > 0 ? `${dt()}.offset(${dur()})` : `datetime(${JSON.stringify(r.pick(DATETIMES))})`);
  const dur = (): string => (r.chance(0.2) ? 'context.d' : `duration(${JSON.stringify(r.pick(DURATIONS))})`);
  const dec = (): string => (r.chance(0.2) ? 'principal.dec' : `decimal(${JSON.stringify(r.pick(DECIMALS))})`);
  const ip = (): string => (r.chance(0.2) ? 'context.ip' : `ip(${JSON.stringify(r.pick(IPS))})`);
  const cmp = (): string => r.pick(['<', '<=', '>', '>=', '==', '!=']);
  return r.pick([
    () => `(${dt()} ${cmp()} ${r.chance(0.85) ? dt() : dur()})`,
    () => `(${dur()} ${cmp()} ${r.chance(0.85) ? dur() : String(r.int(3))})`,
    () => `${dt()}.offset(${dur()})`,
    () => `(${dt()}.durationSince(${dt()}) ${cmp()} ${dur()})`,
    () => `(${dt()}.toDate() ${cmp()} ${dt()})`,
    () => `(${dt()}.toTime() ${cmp()} ${dur()})`,
    () => `(${dt()}.${r.pick(['toTime()', 'toDate().durationSince(datetime("1970-01-01"))'])}.toMilliseconds() ${cmp()} ${r.pick(['0', '86399999', '-1', '-86400000', 'context.n'])})`,
    () => `(${dur()}.${r.pick(['toDays', 'toHours', 'toMinutes', 'toSeconds', 'toMilliseconds'])}() ${cmp()} ${r.pick(['0', '1', '-1', '86400000', 'context.n'])})`,
    () => `${dec()}.${r.pick(['lessThan', 'lessThanOrEqual', 'greaterThan', 'greaterThanOrEqual'])}(${dec()})`,
    () => `(${dec()} == ${dec()})`,
    () => `${ip()}.${r.pick(['isIpv4', 'isIpv6', 'isLoopback', 'isMulticast'])}()`,
    () => `${ip()}.isInRange(${ip()})`,
    () => `(${ip()} == ${ip()})`,
    () => `[${ip()}, ${dec()}].contains(${r.chance(0.5) ? ip() : dec()})`,
  ])();
}

function entity(r: Rng): string {
  return r.pick(['principal', 'resource', 'principal.ref', 'context.ref', uidText(r.pick(TYPES), r.pick(IDS)), uidText('Group', r.pick(IDS))]);
}

function scope(r: Rng, v: 'principal' | 'resource'): string {
  switch (r.int(6)) {
    case 0:
      return `${v} == ${uidText(r.pick(TYPES), r.pick(IDS))}`;
    case 1:
      return `${v} in ${uidText('Group', r.pick(IDS))}`;
    case 2:
      return `${v} is ${r.pick(TYPES)}`;
    case 3:
      return `${v} is ${r.pick(TYPES)} in ${uidText('Group', r.pick(IDS))}`;
    default:
      return v;
  }
}

function actionScope(r: Rng): string {
  switch (r.int(4)) {
    case 0:
      return `action == Action::${JSON.stringify(r.pick(ACTIONS))}`;
    case 1:
      return `action in [Action::${JSON.stringify(r.pick(ACTIONS))}, Action::"all"]`;
    case 2:
      return 'action in Action::"all"';
    default:
      return 'action';
  }
}

export function policySet(r: Rng): string {
  const out: string[] = [];
  const n = 1 + r.int(4);
  for (let i = 0; i < n; i++) {
    const conditions = Array.from({ length: r.int(3) }, () => `${r.chance(0.7) ? 'when' : 'unless'} { ${expression(r, 1 + r.int(4))} }`);
    out.push(`${r.chance(0.65) ? 'permit' : 'forbid'}(${scope(r, 'principal')}, ${actionScope(r)}, ${scope(r, 'resource')})${conditions.length > 0 ? ` ${conditions.join(' ')}` : ''};`);
  }
  return out.join('\n');
}

export interface FuzzRequest {
  readonly principal: { type: string; id: string };
  readonly action: { type: string; id: string };
  readonly resource: { type: string; id: string };
  readonly context: Json;
  readonly entities: Json[];
}

/** Entities with a hierarchy (groups in groups, never in a circle) and a request over them. */
export function request(r: Rng): FuzzRequest {
  const entities: Json[] = [];
  for (const type of TYPES) {
    for (const [i, id] of IDS.entries()) {
      if (r.chance(0.25)) continue; // some entities do not exist
      // Parents: groups of a later index only, so the graph has no cycle.
      const parents = IDS.slice(type === 'Group' ? i + 1 : 0).filter(() => r.chance(0.4)).map((g) => ({ type: 'Group', id: g }));
      const attrs: Record<string, Json> = {};
      for (const a of ATTRS) if (r.chance(0.6)) attrs[a] = attrValue(r, a);
      const e: Record<string, Json> = { uid: { type, id }, attrs, parents };
      if (r.chance(0.5)) e['tags'] = Object.fromEntries(TAGS.filter(() => r.chance(0.6)).map((t) => [t, attrValue(r, r.pick(ATTRS))]));
      entities.push(e);
    }
  }
  for (const a of ACTIONS) entities.push({ uid: { type: 'Action', id: a }, attrs: {}, parents: a === 'admin' ? [] : [{ type: 'Action', id: 'all' }] });
  const context: Record<string, Json> = {};
  for (const a of ATTRS) if (r.chance(0.6)) context[a] = attrValue(r, a);
  return {
    principal: { type: r.pick(TYPES), id: r.pick(IDS) },
    action: { type: 'Action', id: r.pick([...ACTIONS, 'all']) },
    resource: { type: r.pick(TYPES), id: r.pick(IDS) },
    context,
    entities,
  };
}
