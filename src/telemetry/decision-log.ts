// The decision log: one JSON line per decision, for review after the fact. Lines are queued
// (a decision's as its fields, written out as JSON when its batch is written; one with the
// Cedar request as input, written out at once) and written
// asynchronously; when the sink falls behind and the queue holds more than maxBufferBytes, new
// lines are dropped and counted, never waited for: a slow disk or a slow reader of stdout must
// not delay a decision. Denies are always logged; allows can be sampled.
//
// What a line holds is chosen here, from the decision: no raw headers, body or certificate.
// With `input` on, the Cedar request is logged too (for `mandate replay`); its context only ever
// holds allowlisted headers (credential headers are refused by config), and the header names in
// `redactHeaders` are replaced by "[redacted]".
//
// A file sink rotates by size (decisions.log -> .1 -> .2 ...), reopens the file when it was
// deleted, and on write errors (disk full) counts the lost lines, reports once per interval and
// tries again on the next batch.

import { createWriteStream, renameSync, statSync, type WriteStream } from 'node:fs';
import type { Decision } from '../core/decision.js';

export interface DecisionLogStats {
  written: number;
  dropped: number;
  failed: number;
  sampledOut: number;
}

export interface DecisionLogOptions {
  readonly sink: string;
  /** Config dryRun: every line says so (the decision is what policy decided; the request was let through). */
  readonly dryRun?: boolean;
  readonly maxBufferBytes: number;
  readonly includeInput: boolean;
  /** Share of allows logged, 0..1; denies are always logged. */
  readonly allowSampleRate: number;
  readonly maxFileBytes: number;
  readonly maxFiles: number;
  readonly redactHeaders: readonly string[];
  /** Called at most once per reportIntervalMs while writes fail. */
  readonly onError?: (message: string) => void;
  readonly reportIntervalMs?: number;
}

export interface DecisionLogLine {
  decisionId: string;
  time: string;
  decision: 'allow' | 'deny';
  code: string | null;
  workload: string | null;
  task: string | null;
  subject: string | null;
  action: string | null;
  resource: string | null;
  determiningPolicies: readonly string[];
  errors: readonly string[];
  message?: string;
  latencyUs: number;
  evaluationUs: number;
  /** compiled, wasm-inline or wasm-pool; null when the request never reached policy. */
  evaluationPath: string | null;
  policyVersion: string;
  /** What Cedar answered, when the request reached policy (replay compares with this). */
  policyDecision: 'allow' | 'deny' | null;
  /** Present (true) when serving in dry run: a deny here was let through. */
  dryRun?: true;
  input?: unknown;
}

const REDACTED = '[redacted]';

/**
 * Lines wait this long to be written together (after the first line, and after each write),
 * unless this many bytes are waiting. One write per line cost ~20,000 instructions per Check at
 * one call in flight (a thread-pool write and its completion: bench/instructions.ts); a line
 * reaches the sink at most 5 ms after the sink took the batch before it.
 */
const FLUSH_DELAY_MS = 5;
const FLUSH_NOW_BYTES = 64 * 1024;

let isoSecond = Number.NaN;
let isoPrefix = '';

/**
 * `new Date(ms).toISOString()`, with the part up to the second computed once per second: one
 * line per decision made toISOString ~1.3 us of each (its date arithmetic), the rest is three digits.
 */
export function isoTime(ms: number): string {
  const t = Math.trunc(ms); // as Date keeps whole milliseconds
  if (!(Math.abs(t) <= 8.64e15)) throw new RangeError('Invalid time value'); // as toISOString: NaN, beyond ±8.64e15
  const second = Math.floor(t / 1000);
  if (second !== isoSecond) {
    const iso = new Date(second * 1000).toISOString();
    isoSecond = second;
    isoPrefix = iso.slice(0, -4); // without "mmmZ"
  }
  const milli = t - second * 1000;
  return `${isoPrefix}${milli < 10 ? '00' : milli < 100 ? '0' : ''}${milli}Z`;
}

export function toLogLine(decision: Decision, latencyUs: number, now = Date.now()): DecisionLogLine {
  const line: DecisionLogLine = {
    decisionId: decision.decisionId,
    time: isoTime(now),
    decision: decision.allowed ? 'allow' : 'deny',
    code: decision.code,
    workload: decision.identity !== null && decision.identity.kind !== 'anonymous' ? decision.identity.spiffe.id : null,
    task: decision.taskId,
    subject: decision.subject,
    action: decision.action,
    resource: decision.resource,
    determiningPolicies: decision.determining,
    errors: decision.errors,
    latencyUs: Math.round(latencyUs),
    evaluationUs: Math.round(decision.evaluationUs),
    evaluationPath: decision.evaluationPath,
    policyVersion: decision.policyVersion,
    policyDecision: decision.policyDecision,
  };
  if (decision.message !== null) line.message = decision.message;
  return line;
}

/** What JSON.stringify escapes in a string: a quote, a backslash, a control character, a surrogate (lone ones are escaped, RFC 8259 / ES2019). */
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

/**
 * A string as JSON.stringify writes it. Most strings here need no escape (ids, SPIFFE IDs,
 * policy ids): tested by one regular expression (native; a loop over the characters in JS took
 * ~30% longer) and quoted as they are; any other goes through JSON.stringify itself.
 */
function jsonString(s: string): string {
  return NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`;
}

/**
 * Strings that recur line after line (the workload, the action, determining policy ids, the
 * policy version, codes): their JSON kept, so each is tested once and not again on every line.
 * Looked up by the string itself (V8 keeps its hash). Bounded: all dropped when full; each is
 * bounded too (SPIFFE IDs, route actions and tool names, policy ids). Not for the resource, ids
 * or error messages, which differ from line to line.
 */
const RECURRING = new Map<string, string>();
const RECURRING_KEPT = 4096;

function jsonRecurring(s: string): string {
  let json = RECURRING.get(s);
  if (json === undefined) {
    if (RECURRING.size >= RECURRING_KEPT) RECURRING.clear();
    json = jsonString(s);
    RECURRING.set(s, json);
  }
  return json;
}

const jsonNullable = (s: string | null): string => (s === null ? 'null' : jsonString(s));
const jsonRecurringNullable = (s: string | null): string => (s === null ? 'null' : jsonRecurring(s));
const jsonNumber = (n: number): string => (Number.isFinite(n) ? String(n) : 'null');

function jsonStrings(list: readonly string[], quote: (s: string) => string): string {
  if (list.length === 0) return '[]';
  let out = `[${quote(list[0] as string)}`;
  for (let i = 1; i < list.length; i++) out += `,${quote(list[i] as string)}`;
  return `${out}]`;
}

/**
 * A log line as JSON.stringify(line) writes it, byte for byte (test/telemetry/decision-log.test.ts
 * compares the two on generated decisions), in a fraction of its time: JSON.stringify took
 * ~2.5 us of every Check for this flat object. A line with `input` goes through JSON.stringify.
 */
export function logLineJson(line: DecisionLogLine): string {
  if (line.input !== undefined) return JSON.stringify(line);
  let out =
    `{"decisionId":${jsonString(line.decisionId)},"time":${jsonString(line.time)},"decision":${jsonRecurring(line.decision)}` +
    `,"code":${jsonRecurringNullable(line.code)},"workload":${jsonRecurringNullable(line.workload)},"task":${jsonNullable(line.task)}` +
    `,"subject":${jsonNullable(line.subject)},"action":${jsonRecurringNullable(line.action)},"resource":${jsonNullable(line.resource)}` +
    `,"determiningPolicies":${jsonStrings(line.determiningPolicies, jsonRecurring)},"errors":${jsonStrings(line.errors, jsonString)}` +
    `,"latencyUs":${jsonNumber(line.latencyUs)},"evaluationUs":${jsonNumber(line.evaluationUs)}` +
    `,"evaluationPath":${jsonRecurringNullable(line.evaluationPath)},"policyVersion":${jsonRecurring(line.policyVersion)},"policyDecision":${jsonRecurringNullable(line.policyDecision)}`;
  if (line.message !== undefined) out += `,"message":${jsonString(line.message)}`;
  if (line.dryRun !== undefined) out += ',"dryRun":true';
  return `${out}}`;
}

/**
 * What a decision's line is counted as while it waits to be written out as JSON: about what
 * one is (~500 bytes, no field of it grows with the request). A line with `input` is written out
 * when it is recorded and counted as it is: the Cedar request can be any size, and an estimate
 * would let a stalled sink hold far more than maxBufferBytes.
 */
const LINE_ESTIMATE_BYTES = 512;

export class DecisionLog {
  readonly stats: DecisionLogStats = { written: 0, dropped: 0, failed: 0, sampledOut: 0 };
  /**
   * Lines waiting for the next write: a decision's line as its fields (written out as JSON by
   * flush, all of a batch in one loop: one line at a time between Checks cost ~3x as much under
   * load, its code and data cold each time), or a line already written out (recordLine).
   */
  private queue: (DecisionLogLine | string)[] = [];
  /** Bytes queued and being written: estimated for lines not yet written out (LINE_ESTIMATE_BYTES). */
  private queuedBytes = 0;
  private writing = false;
  private closed = false;
  private stream: WriteStream;
  private fileBytes = 0;
  private broken = false;
  private lastReport = 0;
  private readonly redact: ReadonlySet<string>;
  /** The pending delayed flush, while lines wait to be written together. */
  private flushTimer: NodeJS.Timeout | null = null;

  private constructor(private readonly options: DecisionLogOptions) {
    this.redact = new Set(options.redactHeaders.map((h) => h.toLowerCase()));
    this.stream = this.open();
  }

  static open(options: DecisionLogOptions): DecisionLog {
    return new DecisionLog(options);
  }

  private get isFile(): boolean {
    return this.options.sink !== 'stdout';
  }

  private open(): WriteStream {
    const stream = this.isFile ? createWriteStream(this.options.sink, { flags: 'a', mode: 0o600 }) : createWriteStream('', { fd: 1, autoClose: false });
    if (this.isFile) {
      try {
        this.fileBytes = statSync(this.options.sink).size;
      } catch {
        this.fileBytes = 0;
      }
    }
    stream.on('error', (err) => this.fail(err.message));
    return stream;
  }

  /** A write failed: the sink is reopened before the next batch (maintainFile), and it is reported. */
  private fail(message: string): void {
    this.broken = true;
    this.report(message);
  }

  /** Reported at most once per reportIntervalMs. */
  private report(message: string): void {
    const now = Date.now();
    if (now - this.lastReport >= (this.options.reportIntervalMs ?? 10_000)) {
      this.lastReport = now;
      this.options.onError?.(`decision log write failed (lines are counted as failed until it recovers): ${message}`);
    }
  }

  record(decision: Decision, latencyUs: number): void {
    if (this.closed) return;
    if (decision.allowed && this.options.allowSampleRate < 1 && Math.random() >= this.options.allowSampleRate) {
      this.stats.sampledOut++;
      return;
    }
    const line = toLogLine(decision, latencyUs);
    if (this.options.dryRun === true) line.dryRun = true;
    if (this.options.includeInput && decision.cedar !== null) {
      line.input = this.redactInput(decision.cedar);
      let text: string;
      try {
        text = `${logLineJson(line)}\n`;
      } catch (err) {
        // An input that cannot be written as JSON (a BigInt in it): counted and reported, never thrown into the Check.
        this.stats.failed++;
        this.report(`a decision line could not be written as JSON: ${(err as Error)?.message ?? String(err)}`);
        return;
      }
      this.enqueue(text, text.length);
      return;
    }
    this.enqueue(line, LINE_ESTIMATE_BYTES);
  }

  /** Any other record for the log (shadow disagreements): never sampled out, still bounded. */
  recordLine(record: object): void {
    if (this.closed) return;
    const text = `${JSON.stringify(record)}\n`;
    this.enqueue(text, text.length);
  }

  private enqueue(entry: DecisionLogLine | string, bytes: number): void {
    if (this.queuedBytes + bytes > this.options.maxBufferBytes) {
      this.stats.dropped++;
      return;
    }
    this.queue.push(entry);
    this.queuedBytes += bytes;
    if (!this.writing) {
      this.writing = true;
      this.flushTimer = setTimeout(() => this.flush(), FLUSH_DELAY_MS);
    } else if (this.flushTimer !== null && this.queuedBytes >= FLUSH_NOW_BYTES) {
      clearTimeout(this.flushTimer);
      this.flushTimer = null;
      setImmediate(() => this.flush());
    }
  }

  private redactInput(cedar: NonNullable<Decision['cedar']>): unknown {
    if (this.redact.size === 0) return cedar;
    const http = (cedar.context as { http?: { headers?: Record<string, string> } }).http;
    if (http?.headers === undefined) return cedar;
    const headers = Object.fromEntries(Object.entries(http.headers).map(([k, v]) => [k, this.redact.has(k) ? REDACTED : v]));
    return { ...cedar, context: { ...cedar.context, http: { ...http, headers } } };
  }

  private flush(): void {
    this.flushTimer = null;
    if (this.queue.length === 0) {
      this.writing = false;
      return;
    }
    const queued = this.queue;
    this.queue = [];
    let batch = '';
    let estimated = 0;
    let count = 0;
    for (const entry of queued) {
      if (typeof entry === 'string') {
        batch += entry;
        estimated += entry.length;
        count++;
        continue;
      }
      estimated += LINE_ESTIMATE_BYTES;
      try {
        batch += `${logLineJson(entry)}\n`;
        count++;
      } catch (err) {
        // Not expected (no input, only strings and numbers), but never thrown out of this timer.
        this.stats.failed++;
        this.report(`a decision line could not be written as JSON: ${(err as Error)?.message ?? String(err)}`);
      }
    }
    // From here the batch counts as what it is.
    this.queuedBytes += batch.length - estimated;
    if (count === 0) {
      this.next();
      return;
    }
    if (this.isFile) this.maintainFile(batch.length);
    this.stream.write(batch, (err) => {
      this.queuedBytes -= batch.length;
      if (err) {
        this.stats.failed += count;
        this.fail(err.message);
      } else {
        this.stats.written += count;
        this.fileBytes += Buffer.byteLength(batch);
      }
      this.next();
    });
  }

  /**
   * After a batch is written, the lines that came meanwhile wait FLUSH_DELAY_MS too (unless
   * FLUSH_NOW_BYTES of them wait, or the log is closing). Written at once, a write took one or
   * two lines under load (a write to a file or a pipe is back in well under a millisecond), and
   * each write costs the main thread about as much as ten lines.
   */
  private next(): void {
    if (this.queue.length === 0) {
      this.writing = false;
      return;
    }
    if (this.closed || this.queuedBytes >= FLUSH_NOW_BYTES) {
      setImmediate(() => this.flush());
      return;
    }
    this.flushTimer = setTimeout(() => this.flush(), FLUSH_DELAY_MS);
  }

  /** Before a batch: rotate past maxFileBytes; reopen a deleted file or after a failure. */
  private maintainFile(nextBytes: number): void {
    const path = this.options.sink;
    let reopen = this.broken;
    try {
      statSync(path);
    } catch {
      reopen = true; // deleted (or never created): start a new file
    }
    if (!reopen && this.fileBytes + nextBytes > this.options.maxFileBytes) {
      this.stream.end();
      for (let i = this.options.maxFiles - 1; i >= 1; i--) {
        try {
          renameSync(i === 1 ? path : `${path}.${i - 1}`, `${path}.${i}`);
        } catch {
          // that generation does not exist yet
        }
      }
      reopen = true;
    }
    if (reopen) {
      if (!this.stream.closed) this.stream.destroy();
      this.broken = false;
      this.stream = this.open();
      this.fileBytes = 0;
    }
  }

  /** Writes what is queued, then closes the sink. */
  close(): Promise<void> {
    this.closed = true;
    if (this.flushTimer !== null) {
      clearTimeout(this.flushTimer);
      this.flush();
    }
    return new Promise((resolveClose) => {
      const wait = (): void => {
        if (this.writing) setTimeout(wait, 5);
        else this.stream.end(() => resolveClose());
      };
      wait();
    });
  }
}
