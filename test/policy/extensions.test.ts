// The compiled evaluator's extension types (src/policy/compiled/extensions.ts) held to
// cedar-wasm on generated strings, valid and not: for each constructor (decimal, ip, datetime,
// duration), a string either fails in both or gives the same value in both. The value is
// checked by Cedar itself: one policy per string compares the constructor's result with the
// value we computed, written back in a canonical form Cedar reads.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as cedar from '../../src/policy/cedar.js';
import { parseDatetime, parseDecimal, parseDuration, parseIp, type IpAddr } from '../../src/policy/compiled/extensions.js';
import { Rng } from '../helpers/cedar-fuzz.js';

const SEED = process.env['MANDATE_FUZZ_SEED'] !== undefined ? Number(process.env['MANDATE_FUZZ_SEED']) : (Date.now() % 1_000_000_007) >>> 0;

/** A Cedar string literal for printable ASCII. */
const lit = (s: string): string => `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`;

function ipCanonical(ip: IpAddr): string {
  if (!ip.v6) return `${[24n, 16n, 8n, 0n].map((sh) => String((ip.addr >> sh) & 255n)).join('.')}/${ip.prefix}`;
  const groups = Array.from({ length: 8 }, (_, i) => ((ip.addr >> BigInt(112 - 16 * i)) & 0xffffn).toString(16));
  return `${groups.join(':')}/${ip.prefix}`;
}

interface Kind {
  readonly name: string;
  readonly generate: (r: Rng) => string;
  /** Our value written as a Cedar expression; throws when we refuse the string. */
  readonly canonical: (s: string) => string;
}

const pickChars = (r: Rng, chars: string, n: number): string => Array.from({ length: n }, () => chars[r.int(chars.length)]).join('');
const num = (r: Rng, max: number, pad = 0): string => String(r.int(max)).padStart(pad, '0');

const KINDS: readonly Kind[] = [
  {
    name: 'decimal',
    generate: (r) =>
      r.pick([
        () => `${r.chance(0.3) ? '-' : ''}${num(r, 1000)}.${pickChars(r, '0123456789', 1 + r.int(5))}`,
        () => `${r.chance(0.5) ? '-' : ''}${r.pick(['922337203685477', '922337203685478', '0000', '00', '1e3', ''])}.${r.pick(['5807', '5808', '5809', '0', '', '1'])}`,
        () => pickChars(r, '0123456789.-+ e', 1 + r.int(7)),
      ])(),
    canonical: (s) => {
      const d = parseDecimal(s);
      const a = d.v < 0n ? -d.v : d.v;
      return `decimal(${lit(`${d.v < 0n ? '-' : ''}${a / 10000n}.${String(a % 10000n).padStart(4, '0')}`)})`;
    },
  },
  {
    name: 'ip',
    generate: (r) => {
      const prefix = (): string => (r.chance(0.5) ? '' : `/${r.chance(0.6) ? num(r, 33) : r.pick([num(r, 140), '08', '+8', '', '0', '32', '128', '129', '0128'])}`);
      const octet = (): string => (r.chance(0.85) ? num(r, 256) : r.pick([num(r, 300), '01', '00', '0', '', '1a']));
      const v4 = (): string => Array.from({ length: r.chance(0.9) ? 4 : r.pick([3, 5]) }, octet).join('.');
      const group = (): string => (r.chance(0.9) ? r.pick([r.int(0x10000).toString(16), r.int(0x10).toString(16), 'FFFF', '0']) : r.pick(['00000', 'g', '']));
      const v6 = (): string => {
        const n = r.chance(0.5) ? 8 : r.int(9);
        const gs = Array.from({ length: n }, group);
        if (n < 8 ? r.chance(0.8) : r.chance(0.1)) gs.splice(r.int(n + 1), 0, '');
        let s = gs.join(':');
        if (s.startsWith(':') && !s.startsWith('::')) s = `:${s}`;
        if (s.endsWith(':') && !s.endsWith('::')) s = `${s}:`;
        return r.chance(0.1) ? `${s}:${v4()}` : s;
      };
      return `${r.chance(0.5) ? v4() : v6()}${prefix()}`;
    },
    canonical: (s) => `ip(${lit(ipCanonical(parseIp(s)))})`,
  },
  {
    name: 'datetime',
    generate: (r) => {
      const date = `${r.pick([num(r, 10000, 4), '1970', '2024', '2023', '0000', '9999', '10000', '197'])}-${r.pick([num(r, 14, 2), '02', '2'])}-${r.pick([num(r, 33, 2), '29', '30', '31', '1'])}`;
      if (r.chance(0.3)) return date;
      const time = `T${num(r, 26, 2)}:${num(r, 62, 2)}:${r.pick([num(r, 62, 2), '60', '59'])}`;
      const ms = r.chance(0.5) ? `.${r.pick([num(r, 1000, 3), '12', '1234'])}` : '';
      const zone = r.pick(['Z', '', `${r.pick(['+', '-'])}${num(r, 26, 2)}${num(r, 62, 2)}`, 'z', '+01:00']);
      return `${date}${time}${ms}${zone}`;
    },
    canonical: (s) => `datetime("1970-01-01").offset(duration(${lit(`${parseDatetime(s).v}ms`)}))`,
  },
  {
    name: 'duration',
    generate: (r) => {
      const units = ['d', 'h', 'm', 's', 'ms'];
      const amount = (): string => r.pick([num(r, 100), num(r, 100000), '9223372036854775807', '106751991167', '106751991168', '18446744073709551616', '']);
      let s = r.chance(0.3) ? '-' : '';
      for (const u of units) if (r.chance(0.4)) s += `${amount()}${u}`;
      if (r.chance(0.1)) s += r.pick(['d', 'x', '1', 'ms1s']);
      return s;
    },
    canonical: (s) => {
      const d = parseDuration(s);
      return `duration(${lit(`${d.v < 0n ? `-${-d.v}` : d.v}ms`)})`;
    },
  },
];

describe('extension constructors against cedar-wasm', () => {
  for (const kind of KINDS) {
    it(`${kind.name}: the same strings are refused, the others give the same value (seed ${SEED})`, () => {
      const r = new Rng(SEED ^ kind.name.length);
      const seen = new Set<string>();
      let valid = 0;
      let invalid = 0;
      for (let batch = 0; batch < 20; batch++) {
        const policies: Record<string, string> = {};
        const expectValid = new Map<string, string>();
        for (let i = 0; i < 50; i++) {
          const s = kind.generate(r);
          if (seen.has(s) || /[^\x20-\x7e]/.test(s)) continue;
          seen.add(s);
          const id = `p${i}`;
          let ours: string | null;
          try {
            ours = kind.canonical(s);
          } catch {
            ours = null;
          }
          const call = `${kind.name}(${lit(s)})`;
          policies[id] = `permit(principal, action, resource) when { ${ours === null ? `${call} == ${call}` : `${call} == ${ours}`} };`;
          expectValid.set(id, ours === null ? 'refused' : 'valid');
        }
        const answer = cedar.isAuthorized({ principal: { type: 'U', id: 'u' }, action: { type: 'Action', id: 'a' }, resource: { type: 'U', id: 'r' }, context: {}, entities: [], policies: { staticPolicies: policies } });
        assert.equal(answer.type, 'success', JSON.stringify(answer));
        if (answer.type !== 'success') return;
        const satisfied = new Set(answer.response.diagnostics.reason);
        const errored = new Map(answer.response.diagnostics.errors.map((e) => [e.policyId, e.error.message]));
        for (const [id, expected] of expectValid) {
          const text = policies[id] as string;
          if (expected === 'valid') assert.ok(satisfied.has(id), `${kind.name}: we read a value Cedar ${errored.has(id) ? `refuses (${errored.get(id)})` : 'reads otherwise'}: ${text}`);
          else assert.ok(errored.has(id), `${kind.name}: we refuse a string Cedar reads: ${text}`);
        }
        valid += [...expectValid.values()].filter((v) => v === 'valid').length;
        invalid += [...expectValid.values()].filter((v) => v === 'refused').length;
      }
      process.stdout.write(`# ${kind.name}: ${valid} valid, ${invalid} refused, all as cedar-wasm\n`);
      assert.ok(valid > 50 && invalid > 50, `both kinds generated: ${valid} valid, ${invalid} refused`);
    });
  }
});
