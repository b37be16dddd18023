import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, WriteStream } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { makeDecision } from '../helpers/decisions.js';
import { DecisionLog, isoTime, logLineJson, toLogLine, type DecisionLogOptions } from '../../src/telemetry/decision-log.js';
import { seeded } from '../helpers/generate.js';
import type { Decision } from '../../src/core/decision.js';

function decision(n: number, allowed: boolean): Decision {
  return makeDecision({
    decisionId: `id-${n}`,
    allowed,
    code: allowed ? null : 'policy_denied',
    determining: allowed ? ['support-read-tickets'] : ['no-agent-internal-tickets'],
  });
}

function logOptions(sink: string, maxBufferBytes: number, extra: Partial<DecisionLogOptions> = {}): DecisionLogOptions {
  return { sink, maxBufferBytes, includeInput: false, allowSampleRate: 1, maxFileBytes: 1 << 30, maxFiles: 3, redactHeaders: [], ...extra };
}

describe('DecisionLog', () => {
  it('writes one JSON line per decision with the determining policies, to a 0600 file', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'mandate-log-')), 'decisions.jsonl');
    const log = DecisionLog.open(logOptions(file, 1 << 20));
    log.record(decision(1, true), 120.4);
    log.record(decision(2, false), 98.6);
    await log.close();
    const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(lines.length, 2);
    assert.deepEqual(
      lines.map((l) => [l.decisionId, l.decision, l.code, l.workload, l.action, l.resource, l.determiningPolicies, l.latencyUs, l.policyVersion]),
      [
        ['id-1', 'allow', null, 'spiffe://example.org/ns/a', 'GET /tickets/{id}', 'Ticket::"1"', ['support-read-tickets'], 120, 'sha256:0123456789abcdef'],
        ['id-2', 'deny', 'policy_denied', 'spiffe://example.org/ns/a', 'GET /tickets/{id}', 'Ticket::"1"', ['no-agent-internal-tickets'], 99, 'sha256:0123456789abcdef'],
      ],
    );
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.deepEqual(log.stats, { written: 2, dropped: 0, failed: 0, sampledOut: 0 });
  });

  it('drops and counts lines past its buffer instead of waiting for the sink', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'mandate-log-')), 'decisions.jsonl');
    const log = DecisionLog.open(logOptions(file, 4096));
    for (let i = 0; i < 1000; i++) log.record(decision(i, i % 2 === 0), 1);
    // Nothing was written yet: every record() returned at once, the overflow dropped.
    assert.ok(log.stats.dropped > 900, `dropped ${log.stats.dropped}`);
    await log.close();
    const written = readFileSync(file, 'utf8').trim().split('\n').length;
    assert.equal(written, log.stats.written);
    assert.equal(log.stats.written + log.stats.dropped, 1000);
  });

  it('rotates by size, keeping maxFiles generations', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'mandate-log-')), 'decisions.jsonl');
    const log = DecisionLog.open(logOptions(file, 1 << 20, { maxFileBytes: 2048, maxFiles: 3 }));
    for (let i = 0; i < 40; i++) {
      log.record(decision(i, false), 1);
      await sleep(1); // one batch per line, so rotation is checked often
    }
    await log.close();
    assert.ok(existsSync(`${file}.1`) && existsSync(`${file}.2`), 'two older generations');
    assert.equal(existsSync(`${file}.3`), false, 'no more than maxFiles files');
    for (const f of [file, `${file}.1`, `${file}.2`]) assert.ok(statSync(f).size <= 2048 + 600, `${f} stays near the limit`);
  });

  it('starts a new file when the log file is deleted, and decisions go on', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'mandate-log-')), 'decisions.jsonl');
    const log = DecisionLog.open(logOptions(file, 1 << 20));
    log.record(decision(1, false), 1);
    await sleep(50);
    rmSync(file);
    log.record(decision(2, false), 1);
    await log.close();
    assert.deepEqual(readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l).decisionId), ['id-2']);
  });

  it('counts lines it cannot write, reports once per interval, and recovers', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mandate-log-'));
    const errors: string[] = [];
    // A directory where the file should be: every open and write fails.
    const file = join(dir, 'is-a-dir');
    (await import('node:fs')).mkdirSync(file);
    const log = DecisionLog.open(logOptions(file, 1 << 20, { onError: (m) => errors.push(m), reportIntervalMs: 60_000 }));
    for (let i = 0; i < 5; i++) {
      log.record(decision(i, false), 1);
      await sleep(20);
    }
    assert.ok(log.stats.failed >= 1, `failed ${log.stats.failed}`);
    assert.equal(errors.length, 1, 'reported once in the interval');
    rmSync(file, { recursive: true });
    log.record(decision(99, false), 1);
    await sleep(50);
    await log.close();
    assert.match(readFileSync(file, 'utf8'), /"decisionId":"id-99"/);
  });

  it('always logs denies and samples allows', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'mandate-log-')), 'decisions.jsonl');
    const log = DecisionLog.open(logOptions(file, 1 << 20, { allowSampleRate: 0 }));
    for (let i = 0; i < 10; i++) log.record(decision(i, i % 2 === 0), 1);
    await log.close();
    const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(lines.length, 5);
    assert.ok(lines.every((l) => l.decision === 'deny'));
    assert.equal(log.stats.sampledOut, 5);
  });

  it('logs the Cedar input when asked, with configured headers redacted', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'mandate-log-')), 'decisions.jsonl');
    const log = DecisionLog.open(logOptions(file, 1 << 20, { includeInput: true, redactHeaders: ['X-Tenant-Id'] }));
    const cedar = { principal: { type: 'Workload', id: 'a' }, action: { type: 'Action', id: 'GET /x' }, resource: { type: 'Application', id: 'app' }, context: { http: { headers: { 'x-tenant-id': 'acme-secret-tenant', 'user-agent': 'ua' } } }, entities: [] };
    log.record({ ...decision(1, false), cedar }, 1);
    await log.close();
    const line = JSON.parse(readFileSync(file, 'utf8'));
    assert.deepEqual(line.input.context.http.headers, { 'x-tenant-id': '[redacted]', 'user-agent': 'ua' });
    assert.ok(!readFileSync(file, 'utf8').includes('acme-secret-tenant'));
  });

  it('gathers the lines that come while a batch is written into the next batch, 5 ms later', async () => {
    // Under load lines came faster than a write took: written again as soon as a write was back,
    // each batch held one or two lines, and each write cost the main thread about ten lines.
    const file = join(mkdtempSync(join(tmpdir(), 'mandate-log-')), 'decisions.jsonl');
    // Writes counted on every file stream of this path: the log opens its file again when it
    // finds it missing (as it can before the first open completes), so its stream may change.
    let writes = 0;
    const write = WriteStream.prototype.write;
    WriteStream.prototype.write = function (this: WriteStream, ...args: unknown[]) {
      if (this.path === file) writes++;
      return (write as (...a: unknown[]) => boolean).apply(this, args);
    } as typeof write;
    try {
      const log = DecisionLog.open(logOptions(file, 1 << 24));
      const started = Date.now();
      let n = 0;
      let last = performance.now();
      while (Date.now() - started < 100) {
        // A line every 0.1 ms (~1,000 in all, whatever the machine): faster than a write comes
        // back, too few to fill 64 KiB before 5 ms pass more than a few times.
        while (performance.now() - last < 0.1);
        last = performance.now();
        log.record(decision(n++, true), 1);
        await new Promise((r) => setImmediate(r));
      }
      const elapsed = Date.now() - started;
      await log.close();
      assert.equal(log.stats.written, n);
      assert.equal(readFileSync(file, 'utf8').trim().split('\n').length, n);
      assert.ok(writes > 0, 'the writes were counted');
      // One write per 5 ms, and early ones only when 64 KiB wait (a line waiting is counted as 512
      // bytes; a batch being written counts too, hence twice): about 40 here. The old behaviour
      // wrote each time a write came back, 150-360 times in 100 ms on this machine.
      assert.ok(writes <= elapsed / 5 + (2 * n * 512) / 65536 + 2, `${writes} writes for ${n} lines in ${elapsed} ms`);
    } finally {
      WriteStream.prototype.write = write;
    }
  });

  it('counts a line that cannot be written as JSON as failed, reports it, and writes the others of its batch', async () => {
    // A line with input is written out as JSON when recorded (others when their batch is written,
    // in a timer): a throw in either place would fail the Check or take the process down.
    const file = join(mkdtempSync(join(tmpdir(), 'mandate-log-')), 'decisions.jsonl');
    const errors: string[] = [];
    const log = DecisionLog.open(logOptions(file, 1 << 20, { includeInput: true, onError: (m) => errors.push(m) }));
    const cedar = (n: unknown) => ({ principal: { type: 'Workload', id: 'a' }, action: { type: 'Action', id: 'GET /x' }, resource: { type: 'Application', id: 'app' }, context: { n } as never, entities: [] });
    log.record({ ...decision(1, true), cedar: cedar(1) }, 1);
    log.record({ ...decision(2, true), cedar: cedar(2n) }, 1);
    log.record({ ...decision(3, false), cedar: cedar(3) }, 1);
    await sleep(50);
    await log.close();
    const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(lines.map((l) => l.decisionId), ['id-1', 'id-3']);
    assert.deepEqual(log.stats, { written: 2, dropped: 0, failed: 1, sampledOut: 0 });
    assert.equal(errors.length, 1);
    assert.match(errors[0] as string, /could not be written as JSON/);
  });
});

describe('the decision log bound with input lines', () => {
  it('counts a line with input as its size while it waits, so large requests cannot hold more than maxBufferBytes', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'mandate-log-')), 'decisions.jsonl');
    const log = DecisionLog.open(logOptions(file, 300_000, { includeInput: true }));
    const big = { principal: { type: 'Workload', id: 'a' }, action: { type: 'Action', id: 'POST /x' }, resource: { type: 'Application', id: 'app' }, context: { body: 'x'.repeat(100_000) } as never, entities: [] };
    // Ten lines of ~100 KB recorded before the first batch is written (it waits 5 ms).
    for (let i = 0; i < 10; i++) log.record({ ...decision(i, true), cedar: big }, 1);
    assert.equal(log.stats.dropped, 8, 'two fit in 300,000 bytes, the other eight are dropped');
    await sleep(50);
    await log.close();
    assert.equal(readFileSync(file, 'utf8').trim().split('\n').length, 2);
    assert.deepEqual(log.stats, { written: 2, dropped: 8, failed: 0, sampledOut: 0 });
  });
});

describe('isoTime (the decision log line\'s time)', () => {
  it('is Date#toISOString, across seconds, before 1970, at the ends of time, and for fractions', () => {
    const random = seeded(7);
    const cases = [0, 1, 9, 10, 99, 100, 999, 1000, 1001, -1, -999, -1000, -1001, 1.5, -1.5, 8.64e15, -8.64e15, 253402300799999, 253402300800000];
    // Runs of nearby times reuse the cached second; jumps refresh it.
    let t = Date.now();
    for (let i = 0; i < 5000; i++) cases.push((t += Math.floor(random() * 700)), Math.floor(random() * 4e12) - 1e12);
    for (const ms of cases) assert.equal(isoTime(ms), new Date(ms).toISOString(), String(ms));
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, 8.64e15 + 1]) assert.throws(() => isoTime(bad), RangeError, String(bad));
  });
});

describe('the decision log line writer', () => {
  it('writes every generated line exactly as JSON.stringify does (escapes, surrogates, nulls, numbers)', () => {
    const seed = Number(process.env['MANDATE_FUZZ_SEED'] ?? Date.now() % 1_000_000);
    const rand = seeded(seed);
    const pieces = ['a', 'spiffe://example.org/ns/a', '"', '\\', '\n', '\u0000', '\u001f', '\u007f', 'é', '\u2028', '\ud83d\ude00', '\ud800', '\udfff', 'x\ud800y', '{}', '::'];
    const text = (): string => Array.from({ length: Math.floor(rand() * 5) }, () => pieces[Math.floor(rand() * pieces.length)] as string).join('');
    const maybe = (): string | null => (rand() < 0.3 ? null : text());
    const list = (): string[] => Array.from({ length: Math.floor(rand() * 4) }, text);
    const numbers = [0, -0, 1.5, 55.3, 1e21, 2 ** 53, Number.NaN, Number.POSITIVE_INFINITY];
    for (let i = 0; i < 3000; i++) {
      const allowed = rand() < 0.5;
      const d = makeDecision({
        decisionId: text(),
        allowed,
        code: allowed ? null : 'policy_denied',
        message: maybe(),
        identity: rand() < 0.3 ? null : { kind: 'x509', spiffe: { id: text(), trustDomain: 'example.org', path: '/ns/a' }, jwt: null },
        action: maybe(),
        resource: maybe(),
        determining: list(),
        errors: list(),
        policyVersion: text(),
        taskId: maybe(),
        subject: maybe(),
        evaluationPath: rand() < 0.5 ? null : 'compiled',
        evaluationUs: numbers[Math.floor(rand() * numbers.length)] as number,
        policyDecision: rand() < 0.3 ? null : allowed ? 'allow' : 'deny',
      });
      const line = toLogLine(d, numbers[Math.floor(rand() * numbers.length)] as number, rand() * 4e12);
      if (rand() < 0.2) line.dryRun = true;
      assert.equal(logLineJson(line), JSON.stringify(line), `line ${i} of seed ${seed}`);
    }
  });

  it('writes a line with the Cedar input through JSON.stringify', () => {
    const line = toLogLine(makeDecision(), 10, 0);
    line.input = { context: { note: 'x"y' } };
    assert.equal(logLineJson(line), JSON.stringify(line));
  });
});
