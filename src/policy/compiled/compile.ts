// Cedar policy -> JavaScript. The input is a policy's JSON form as cedar-wasm gives it
// (`policyToJson`: cedar-wasm stays the parser and the validator); the output is the source of a
// function `(P, A, R, C, E) => boolean` over the values of values.ts: true when the policy is
// satisfied, false when not, a thrown CedarError when its condition errors.
//
// Cedar reads a policy as one conjunction: principal scope && action scope && resource scope
// && each `when` && !each `unless`, left to right with short-circuit, every operand of && and
// of ! required to be a boolean. The generated code follows that order exactly; strict
// operators evaluate all their operands (JavaScript argument order) and then check types.
//
// What is not compiled (the reason is returned, the policy stays on cedar-wasm): template
// slots, unknowns, an extension function this evaluator does not know, and an integer literal
// beyond ±2^53 whose exact digits cannot be found in the text (cedar-wasm's JSON form gives such
// literals as rounded doubles).

import { EXTENSION_FUNCTIONS } from './extensions.js';

/**
 * A compiled policy: its shape (the function's source with every literal taken out, shared by
 * every policy that differs only in its literals: generated per-tenant policies have a handful
 * of shapes) and its literals, given to the shape's factory (authorize.ts policyFunction).
 */
export type Compiled = { readonly shape: CompiledShape; readonly constants: readonly Constant[] } | { readonly reason: string };
export interface CompiledShape {
  readonly source: string;
  readonly effect: 'permit' | 'forbid';
}
/** A literal: an entity, a `like` pattern (its RegExp source), a string, a long beyond 2^53 (its digits). */
export type Constant = readonly ['uid', string, string] | readonly ['re', string] | readonly ['str', string] | readonly ['big', string];

class NotCompiled extends Error {}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Obj = { [k: string]: Json };

const BINARY: Readonly<Record<string, string>> = {
  '+': 'add',
  '-': 'sub',
  '*': 'mul',
  '<': 'lt',
  '<=': 'le',
  '>': 'gt',
  '>=': 'ge',
  contains: 'contains',
  containsAll: 'containsAll',
  containsAny: 'containsAny',
};

/** Compiles one static policy; `text` is its Cedar source (for exact integer literals). */
export function compilePolicy(json: unknown, text: string): Compiled {
  try {
    const c = new PolicyCompiler(text);
    const p = json as Obj;
    const source = c.policy(p);
    return { shape: { source, effect: p['effect'] === 'forbid' ? 'forbid' : 'permit' }, constants: c.constants };
  } catch (err) {
    if (err instanceof NotCompiled) return { reason: err.message };
    throw err;
  }
}

class PolicyCompiler {
  /** Literals taken out of the function (K[i] in the shape's source). */
  readonly constants: Constant[] = [];
  private bigLiterals: Map<number, bigint[]> | null = null;

  constructor(private readonly text: string) {}

  policy(p: Obj): string {
    const checks: string[] = [];
    const scope = (v: string, c: Json): void => {
      const s = this.scope(v, c as Obj);
      if (s !== null) checks.push(`if (!(${s})) return false;`);
    };
    scope('P', p['principal'] ?? null);
    scope('A', p['action'] ?? null);
    scope('R', p['resource'] ?? null);
    const conditions = (p['conditions'] ?? []) as Obj[];
    const parts: string[] = [];
    for (const c of conditions) {
      const body = this.expr(c['body'] as Json);
      if (c['kind'] === 'when') parts.push(`rt.bool(${body})`);
      else if (c['kind'] === 'unless') parts.push(`!rt.bool(${body})`);
      else throw new NotCompiled(`condition kind ${String(c['kind'])}`);
    }
    const effect = p['effect'];
    if (effect !== 'permit' && effect !== 'forbid') throw new NotCompiled(`effect ${String(effect)}`);
    const body = `${checks.join('\n')}\nreturn ${parts.length === 0 ? 'true' : parts.join(' && ')};`;
    const names = this.constants.map((_, i) => `k${i}`);
    return `${names.length === 0 ? '' : `const [${names.join(', ')}] = K;`}\nreturn function (P, A, R, C, E) {\n${body}\n};`;
  }

  private constant(c: Constant): string {
    this.constants.push(c);
    return `k${this.constants.length - 1}`;
  }

  private uid(u: Json): string {
    const o = u as Obj;
    const inner = (o !== null && typeof o === 'object' && '__entity' in o ? o['__entity'] : o) as Obj;
    if (inner === null || typeof inner !== 'object' || typeof inner['type'] !== 'string' || typeof inner['id'] !== 'string') throw new NotCompiled('entity literal');
    return this.constant(['uid', inner['type'], inner['id']]);
  }

  private scope(v: string, c: Obj): string | null {
    if (c === null || typeof c !== 'object') throw new NotCompiled('scope');
    if ('slot' in c) throw new NotCompiled('template slot');
    switch (c['op']) {
      case 'All':
        return null;
      case '==':
        return `${v}.key === ${this.uid(c['entity'] as Json)}.key`;
      case 'in': {
        if (Array.isArray(c['entities'])) return `rt.isIn(${v}, [${c['entities'].map((e) => this.uid(e)).join(', ')}], E)`;
        return `rt.isIn(${v}, ${this.uid(c['entity'] as Json)}, E)`;
      }
      case 'is': {
        const type = c['entity_type'];
        if (typeof type !== 'string') throw new NotCompiled('is scope');
        const inner = c['in'] as Obj | undefined;
        const is = `${v}.type === ${JSON.stringify(type)}`;
        if (inner === undefined) return is;
        if (inner === null || typeof inner !== 'object' || 'slot' in inner) throw new NotCompiled('template slot');
        return `${is} && rt.isIn(${v}, ${this.uid(inner['entity'] as Json)}, E)`;
      }
      default:
        throw new NotCompiled(`scope op ${String(c['op'])}`);
    }
  }

  private value(v: Json): string {
    if (typeof v === 'boolean') return String(v);
    if (typeof v === 'string') return this.constant(['str', v]);
    if (typeof v === 'number') return this.integer(v);
    if (v !== null && typeof v === 'object' && !Array.isArray(v) && '__entity' in v) return this.uid(v);
    throw new NotCompiled('extension or other literal');
  }

  /** An integer literal: a safe one as is, a larger one from its digits in the policy text. */
  private integer(v: number): string {
    if (Number.isSafeInteger(v)) return String(v);
    if (!Number.isInteger(v)) throw new NotCompiled('non-integer number');
    if (this.bigLiterals === null) this.bigLiterals = integerLexemes(this.text);
    const candidates = new Set((this.bigLiterals.get(Math.abs(v)) ?? []).map(String));
    if (candidates.size !== 1) throw new NotCompiled('integer literal beyond 2^53 not found exactly in the text');
    const exact = BigInt([...candidates][0] as string) * (v < 0 ? -1n : 1n);
    return this.constant(['big', String(exact)]);
  }

  private expr(e: Json): string {
    if (e === null || typeof e !== 'object' || Array.isArray(e)) throw new NotCompiled('expression');
    const keys = Object.keys(e);
    if (keys.length !== 1) throw new NotCompiled('expression');
    const op = keys[0] as string;
    const arg = e[op] as Json;
    const a = arg as Obj;
    switch (op) {
      case 'Value':
        return this.value(arg);
      case 'Var':
        switch (arg) {
          case 'principal':
            return 'P';
          case 'action':
            return 'A';
          case 'resource':
            return 'R';
          case 'context':
            return 'C';
          default:
            throw new NotCompiled(`variable ${String(arg)}`);
        }
      case 'Slot':
        throw new NotCompiled('template slot');
      case 'Unknown':
        throw new NotCompiled('unknown');
      case '!':
        return `!rt.bool(${this.expr(a['arg'] as Json)})`;
      case 'neg':
        return `rt.neg(${this.expr(a['arg'] as Json)})`;
      case 'isEmpty':
        return `rt.isEmpty(${this.expr(a['arg'] as Json)})`;
      case '&&':
        return `(rt.bool(${this.expr(a['left'] as Json)}) && rt.bool(${this.expr(a['right'] as Json)}))`;
      case '||':
        return `(rt.bool(${this.expr(a['left'] as Json)}) || rt.bool(${this.expr(a['right'] as Json)}))`;
      case '==':
        return `rt.eq(${this.expr(a['left'] as Json)}, ${this.expr(a['right'] as Json)})`;
      case '!=':
        return `!rt.eq(${this.expr(a['left'] as Json)}, ${this.expr(a['right'] as Json)})`;
      case 'in':
        return `rt.isIn(${this.expr(a['left'] as Json)}, ${this.expr(a['right'] as Json)}, E)`;
      case 'hasTag':
      case 'getTag':
        return `rt.${op}(${this.expr(a['left'] as Json)}, ${this.expr(a['right'] as Json)}, E)`;
      case '.':
        return `rt.get(${this.expr(a['left'] as Json)}, ${JSON.stringify(this.attr(a['attr'] as Json))}, E)`;
      case 'has': {
        const path = Array.isArray(a['attr']) ? a['attr'].map((x) => this.attr(x)) : [this.attr(a['attr'] as Json)];
        if (path.length === 0) throw new NotCompiled('has');
        return `rt.hasPath(${this.expr(a['left'] as Json)}, ${JSON.stringify(path)}, E)`;
      }
      case 'like':
        return `rt.like(${this.expr(a['left'] as Json)}, ${this.constant(['re', patternRegExp(a['pattern'] as Json)])})`;
      case 'is': {
        const type = a['entity_type'];
        if (typeof type !== 'string') throw new NotCompiled('is');
        const left = this.expr(a['left'] as Json);
        const is = `rt.isType(${left}, ${JSON.stringify(type)})`;
        if (a['in'] === undefined) return is;
        // `e is T in f` is `e is T && e in f` (evaluating e twice is harmless: nothing has effects).
        return `(${is} && rt.isIn(${left}, ${this.expr(a['in'] as Json)}, E))`;
      }
      case 'if-then-else':
        return `(rt.bool(${this.expr(a['if'] as Json)}) ? ${this.expr(a['then'] as Json)} : ${this.expr(a['else'] as Json)})`;
      case 'Set':
        if (!Array.isArray(arg)) throw new NotCompiled('set literal');
        return `[${arg.map((x) => this.expr(x)).join(', ')}]`;
      case 'Record': {
        if (arg === null || typeof arg !== 'object' || Array.isArray(arg)) throw new NotCompiled('record literal');
        return `rt.record([${Object.entries(arg).map(([k, v]) => `[${JSON.stringify(k)}, ${this.expr(v)}]`).join(', ')}])`;
      }
      default: {
        const fn = BINARY[op];
        if (fn !== undefined) return `rt.${fn}(${this.expr(a['left'] as Json)}, ${this.expr(a['right'] as Json)})`;
        // Any other key is an extension function or method call: [receiver, args...]. A call
        // with the wrong number of arguments parses; evaluating it is an error (rt.ext).
        if (!EXTENSION_FUNCTIONS.has(op) || !Array.isArray(arg)) throw new NotCompiled(`extension function ${op}`);
        return `rt.ext(${JSON.stringify(op)}, [${arg.map((x) => this.expr(x)).join(', ')}])`;
      }
    }
  }

  private attr(name: Json): string {
    if (typeof name !== 'string') throw new NotCompiled('attribute name');
    return name;
  }
}

/** A `like` pattern as the source of an anchored RegExp: literals escaped, each wildcard any run of characters. */
function patternRegExp(pattern: Json): string {
  if (!Array.isArray(pattern)) throw new NotCompiled('like pattern');
  let re = '';
  for (const part of pattern) {
    if (part === 'Wildcard') re += '[\\s\\S]*';
    else if (part !== null && typeof part === 'object' && !Array.isArray(part) && typeof part['Literal'] === 'string') re += escapeRegExp(part['Literal']);
    else throw new NotCompiled('like pattern');
  }
  return `^${re}$`;
}

function escapeRegExp(s: string): string {
  return s.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&');
}

/**
 * Every integer lexeme of a policy's text outside strings and comments, by the double it rounds
 * to: an unsafe literal in the JSON form is recovered exactly when one lexeme rounds to it.
 */
function integerLexemes(text: string): Map<number, bigint[]> {
  const out = new Map<number, bigint[]>();
  let i = 0;
  while (i < text.length) {
    const ch = text[i] as string;
    if (ch === '"') {
      i++;
      while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
      i++;
    } else if (ch === '/' && text[i + 1] === '/') {
      while (i < text.length && text[i] !== '\n') i++;
    } else if (/[0-9]/.test(ch) && (i === 0 || !/[A-Za-z0-9_]/.test(text[i - 1] as string))) {
      let j = i;
      while (j < text.length && /[0-9]/.test(text[j] as string)) j++;
      const digits = text.slice(i, j);
      const big = BigInt(digits);
      const key = Number(digits);
      const list = out.get(key) ?? [];
      list.push(big);
      out.set(key, list);
      i = j;
    } else {
      i++;
    }
  }
  return out;
}
