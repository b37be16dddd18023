// Pooled evaluation (src/policy/pool.ts): the same decisions as inline, and every way it can
// fail ends in a deny with its code: a full queue (`overloaded`), a passed deadline
// (`overloaded`), a worker that dies (`internal_error`, and the worker is replaced).

import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, it } from 'node:test';
import type { CheckRequestMessage } from '../../src/check/decode.js';
import { createDecisionState, decide } from '../../src/check/pipeline.js';
import { loadRuntime } from '../../src/cli/runtime.js';
import { kPackageRoot } from '../../src/package-root.js';
import { EVALUATION_PATHS, type PolicyEngine } from '../../src/policy/engine.js';
import { EvaluationPool } from '../../src/policy/pool.js';
import { decodeCheckRequestBytes, encodeCheckRequest } from '../../src/server/protos.js';
import { exampleRequests, exampleWith, startExampleServer } from '../helpers/server.js';
import { createCheckClient } from '../helpers/upstream.js';
import { checkRequest } from '../helpers/requests.js';
import { codeOf } from '../helpers/task-fixture.js';
import type { CedarRequest } from '../../src/core/cedar-request.js';

const message = (json: unknown): CheckRequestMessage => decodeCheckRequestBytes(encodeCheckRequest(json)) as CheckRequestMessage;

/** The example with compiled evaluation off: every evaluation here is cedar-wasm's, so the pool gets them. */
const WASM_ONLY = exampleWith({ evaluation: 'evaluation:\n  compiled: false\n' }).config;

/** The Cedar request the pipeline builds for the support agent reading a ticket. */
async function ticketRead(configFile: string): Promise<{ engine: PolicyEngine; request: CedarRequest }> {
  const state = loadRuntime(configFile, { mode: 'validate' }).state();
  const decision = await decide(message(checkRequest('GET', '/tickets/T-1', { principal: 'spiffe://example.org/ns/support/sa/support-agent' })), state);
  assert.ok(decision.allowed && decision.cedar !== null, 'the example allows it inline');
  return { engine: state.engine, request: decision.cedar };
}

describe('pooled evaluation', () => {
  let pool: EvaluationPool;
  before(() => {
    pool = new EvaluationPool({ workers: 1, maxQueue: 4, maxBatch: 32 });
  });
  after(async () => pool.close());

  it('decides every example request exactly as inline evaluation does', async () => {
    const runtime = loadRuntime(WASM_ONLY, { mode: 'validate' });
    const inline = runtime.state();
    const big = new EvaluationPool({ workers: 2, maxQueue: 1024, maxBatch: 8 });
    try {
      const pooled = createDecisionState(inline.config, inline.routes, inline.engine, inline.identifier, inline.groups, inline.tasks, big);
      let compared = 0;
      for (const { name, request } of exampleRequests()) {
        const [a, b] = await Promise.all([decide(message(request), inline), decide(message(request), pooled)]);
        assert.deepEqual([b.allowed, b.code, [...b.determining].sort()], [a.allowed, a.code, [...a.determining].sort()], name);
        compared++;
      }
      assert.ok(compared >= 20);
      assert.ok(big.stats().batches > 0);
    } finally {
      await big.close();
    }
  });

  it('denies `overloaded` at once past maxQueue, and keeps serving', async () => {
    const { engine, request } = await ticketRead(WASM_ONLY);
    // Nothing completes while this loop runs: exactly maxQueue (4) are taken.
    const answers = await Promise.all(Array.from({ length: 40 }, () => pool.evaluate(engine, request)));
    const overloaded = answers.filter((a) => !a.ok && a.code === 'overloaded');
    const allowed = answers.filter((a) => a.ok && a.value.decision === 'allow');
    assert.equal(overloaded.length, 36);
    assert.equal(allowed.length, 4);
    assert.match(String(!overloaded[0]?.ok && overloaded[0]?.message), /4 evaluations are already waiting or running/);
    const later = await pool.evaluate(engine, request);
    assert.ok(later.ok && later.value.decision === 'allow', 'serves again once the queue drains');
  });

  it('answers `overloaded` without evaluating a request whose deadline has passed', async () => {
    const { engine, request } = await ticketRead(WASM_ONLY);
    const before = pool.stats();
    const out = await pool.evaluate(engine, request, Date.now() - 1);
    assert.equal(out.ok, false);
    assert.equal(!out.ok && out.code, 'overloaded');
    assert.equal(pool.stats().expired, before.expired + 1);
    assert.equal(pool.stats().batches, before.batches, 'nothing was sent to a worker');
  });

  it('evaluates each request against its own version across a reload, pushed to the worker', async () => {
    const a = await ticketRead(WASM_ONLY);
    const { dir, config } = exampleWith({ evaluation: 'evaluation:\n  compiled: false\n' });
    writeFileSync(join(dir, 'policies', 'freeze.cedar'), '@id("freeze-all")\nforbid (principal, action, resource);\n');
    const b = await ticketRead(config).catch(() => null);
    assert.equal(b, null, 'the frozen version denies inline');
    const frozen = loadRuntime(config, { mode: 'validate' }).store.current;
    pool.pushVersion(frozen);
    const [onNew, onOld] = await Promise.all([pool.evaluate(frozen, a.request), pool.evaluate(a.engine, a.request)]);
    assert.ok(onNew.ok && onNew.value.decision === 'deny');
    assert.deepEqual(onNew.ok && onNew.value.determining, ['freeze-all']);
    assert.ok(onOld.ok && onOld.value.decision === 'allow', 'the previous version still decides requests mapped with it');
  });
});

describe('a pooled evaluation worker that dies', () => {
  it('answers its batch `internal_error`, is replaced, and the next requests are evaluated', async () => {
    // A worker module that dies on a marked request and otherwise is the real worker.
    const dir = mkdtempSync(join(tmpdir(), 'mandate-crash-worker-'));
    const real = pathToFileURL(resolve(kPackageRoot, 'dist/src/policy/worker.js')).href;
    const file = join(dir, 'crash-worker.mjs');
    writeFileSync(file, `import handle from ${JSON.stringify(real)};\nexport default function (m) {\n  if (m.kind === 'evaluate' && m.requests.some((r) => r.context.crash === true)) process.exit(3);\n  return handle(m);\n}\n`);
    const pool = new EvaluationPool({ workers: 1, maxQueue: 100, maxBatch: 32, workerFile: pathToFileURL(file).href });
    try {
      const { engine, request } = await ticketRead(WASM_ONLY);
      const crash = { ...request, context: { ...request.context, crash: true } };
      // The crash goes out alone (the worker is free); the other two wait and go to its replacement.
      const [dead, ...rest] = await Promise.all([pool.evaluate(engine, crash), pool.evaluate(engine, request), pool.evaluate(engine, request)]);
      assert.equal(dead?.ok, false);
      assert.equal(!dead?.ok && dead?.code, 'internal_error');
      assert.match(String(!dead?.ok && dead?.message), /the evaluation worker failed/);
      for (const r of rest) assert.ok(r.ok && r.value.decision === 'allow', 'evaluated by the replacement worker');
      assert.equal(pool.stats().workerFailures, 1);
    } finally {
      await pool.close();
    }
  });
});

describe('a pooled evaluation that outlives its deadline', () => {
  it('is stopped and answered `overloaded`; its worker is replaced and the next request is evaluated', async () => {
    // A worker module that never finishes a marked request and otherwise is the real worker.
    const dir = mkdtempSync(join(tmpdir(), 'mandate-stuck-worker-'));
    const real = pathToFileURL(resolve(kPackageRoot, 'dist/src/policy/worker.js')).href;
    const file = join(dir, 'stuck-worker.mjs');
    writeFileSync(file, `import handle from ${JSON.stringify(real)};\nexport default function (m) {\n  if (m.kind === 'evaluate' && m.requests.some((r) => r.context.stuck === true)) for (;;);\n  return handle(m);\n}\n`);
    const pool = new EvaluationPool({ workers: 1, maxQueue: 100, maxBatch: 32, workerFile: pathToFileURL(file).href });
    try {
      const { engine, request } = await ticketRead(WASM_ONLY);
      const started = Date.now();
      const stuck = await pool.evaluate(engine, { ...request, context: { ...request.context, stuck: true } }, Date.now() + 300);
      assert.equal(stuck.ok, false);
      assert.equal(!stuck.ok && stuck.code, 'overloaded');
      assert.match(String(!stuck.ok && stuck.message), /outlived the request's deadline/);
      assert.ok(Date.now() - started < 5000, 'answered soon after the deadline, not never');
      const next = await pool.evaluate(engine, request, Date.now() + 10_000);
      assert.ok(next.ok && next.value.decision === 'allow', 'the replacement worker evaluates');
    } finally {
      await pool.close();
    }
  });
});

/** A server on the example with `evaluation.mode`, one worker, compiled evaluation off unless asked, and a Check client. */
async function withServer(mode: 'pool' | 'auto', body: (server: Awaited<ReturnType<typeof startExampleServer>>, client: ReturnType<typeof createCheckClient>) => Promise<void>, compiled = false): Promise<void> {
  const { config } = exampleWith({ evaluation: `evaluation:\n  mode: ${mode}\n  workers: 1\n  compiled: ${String(compiled)}\n` });
  const server = await startExampleServer(config);
  const client = createCheckClient(server.address);
  try {
    await body(server, client);
  } finally {
    client.close();
    await server.close();
  }
}

describe('a server with evaluation.mode pool', () => {
  it('answers Checks over gRPC with the pool deciding', () =>
    withServer('pool', async (server, client) => {
      assert.equal(server.runtime.config.evaluation.mode, 'pool');
      const allowed = await client.check(checkRequest('GET', '/tickets/T-1', { principal: 'spiffe://example.org/ns/support/sa/support-agent' }));
      assert.equal(codeOf(allowed), null);
      const denied = await client.check(checkRequest('POST', '/cases/C-1/refunds', { principal: 'spiffe://example.org/ns/billing/sa/billing-agent' }));
      assert.notEqual(codeOf(denied), null);
      // The refund is refused before evaluation (its route requires a task): one evaluation, pooled.
      assert.equal(server.server.poolStats()?.batches, 1);
      assert.equal(server.server.poolStats()?.pooled, 1);
    }));
});

describe('pooled evaluation in mode auto', () => {
  it('evaluates inline when quiet, in the pool when requests follow each other closely', async () => {
    const pool = new EvaluationPool({ workers: 1, maxQueue: 100, maxBatch: 32, inlineWhenQuiet: true, quietMs: 50 });
    try {
      const { engine, request } = await ticketRead(WASM_ONLY);
      const first = pool.evaluate(engine, request);
      assert.ok(!(first instanceof Promise), 'quiet: answered on the calling thread');
      const second = pool.evaluate(engine, request);
      assert.ok(second instanceof Promise, 'right after another: sent to the pool');
      const [a, b] = await Promise.all([first, second]);
      assert.ok(a.ok && b.ok && a.value.decision === 'allow' && b.value.decision === 'allow');
      assert.equal(pool.stats().inline, 1);
      assert.equal(pool.stats().batches, 1);
      await new Promise((r) => setTimeout(r, 120));
      const third = pool.evaluate(engine, request);
      assert.ok(!(third instanceof Promise), 'quiet again: inline');
      assert.equal(pool.stats().inline, 2);
    } finally {
      await pool.close();
    }
  });
});

describe('a server with evaluation.mode auto', () => {
  it('runs a pool and evaluates a Check that comes alone inline', () =>
    withServer('auto', async (server, client) => {
      const read = checkRequest('GET', '/tickets/T-1', { principal: 'spiffe://example.org/ns/support/sa/support-agent' });
      assert.equal(codeOf(await client.check(read)), null);
      assert.equal(server.server.poolStats()?.inline, 1, 'alone: inline');
      assert.equal(server.server.poolStats()?.batches, 0);
    }));
});

describe('a server with evaluation.mode pool and compiled policies', () => {
  it('decides a compiled request on the main thread: no batch reaches the pool', () =>
    withServer(
      'pool',
      async (server, client) => {
        const before = EVALUATION_PATHS.compiled;
        const read = checkRequest('GET', '/tickets/T-1', { principal: 'spiffe://example.org/ns/support/sa/support-agent' });
        assert.equal(codeOf(await client.check(read)), null);
        const other = checkRequest('GET', '/tickets/T-1', { principal: 'spiffe://example.org/ns/billing/sa/billing-agent' });
        assert.notEqual(codeOf(await client.check(other)), null);
        assert.equal(EVALUATION_PATHS.compiled, before + 2);
        assert.equal(server.server.poolStats()?.batches, 0);
        assert.equal(server.server.poolStats()?.pooled, 0);
        assert.equal(server.server.poolStats()?.workersStarted, false, 'no worker thread was started');
      },
      true,
    ));
});
