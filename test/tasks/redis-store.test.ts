// The Redis task store on its own: atomic budgets, approvals, and revocations over pub/sub.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { RedisTaskStore } from '../../src/tasks/redis-store.js';
import { MemoryTaskStore } from '../../src/tasks/memory-store.js';
import { StateUnavailableError, type TaskRecord, type TaskStore } from '../../src/tasks/store.js';
import { startRedis, type RedisProcess } from '../helpers/redis.js';

const now = (): number => Math.floor(Date.now() / 1000);
function record(id: string, maxCalls: number | null = null): TaskRecord {
  return { id, purpose: 'p', tenant: 'acme', tools: ['t'], subject: null, parent: null, workload: 'spiffe://example.org/a', maxCalls, createdAt: now(), expiresAt: now() + 600 };
}

let redis: RedisProcess;
before(async () => {
  redis = await startRedis();
});
after(async () => redis.stop());

async function waitReady(store: RedisTaskStore): Promise<void> {
  assert.equal(await store.ready(2000), true);
}

for (const kind of ['memory', 'redis'] as const) {
  describe(`${kind} task store`, () => {
    let store: TaskStore;
    before(async () => {
      store = kind === 'memory' ? new MemoryTaskStore() : new RedisTaskStore(redis.url, `unit-${Date.now()}:`);
      if (store instanceof RedisTaskStore) await waitReady(store);
    });
    after(async () => store.close());

    it('reads back a task it created, and null for an unknown one', async () => {
      // One record, compared with itself: building it twice could straddle a second.
      const created = record('t1', 5);
      await store.createTask(created);
      const s = await store.getState('t1', now());
      assert.deepEqual(s?.record, created);
      assert.equal(s?.calls, 0);
      assert.equal(s?.endedAt, null);
      assert.equal(await store.getState('nope', now()), null);
    });

    it('records calls only against the state they were decided on: of 100 racing at one version, one wins', async () => {
      await store.createTask(record('t2', 13));
      const touch = { tool: 'support/get_ticket', labels: ['pii'], egress: false };
      const results = await Promise.all(Array.from({ length: 100 }, () => store.recordCalls('t2', 0, 13, [touch], { id: 'spiffe://example.org/t2', version: 0, now: now() })));
      assert.equal(results.filter((r) => r.ok).length, 1);
      assert.ok(results.filter((r) => !r.ok).every((r) => !r.ok && r.reason === 'conflict'));
      const s = await store.getState('t2', now());
      assert.equal(s?.calls, 1);
      assert.deepEqual(s?.history.counts, { 'support/get_ticket': 1 });
    });

    it('counts calls of tools named like Object.prototype keys as own keys', async () => {
      await store.createTask(record('t-proto', 10));
      const mark = { id: 'spiffe://example.org/t-proto', version: null, now: now() };
      const touch = (tool: string) => ({ tool, labels: [], egress: false });
      assert.ok((await store.recordCalls('t-proto', null, 10, [touch('__proto__'), touch('__proto__'), touch('toString')], mark)).ok);
      const counts = (await store.getState('t-proto', now()))?.history.counts ?? {};
      assert.equal(Object.getPrototypeOf(counts), Object.prototype, 'the prototype is untouched');
      assert.deepEqual(Object.entries(counts).sort(), [['__proto__', 2], ['toString', 1]]);
    });

    it('records a batch whole or not at all against maxCalls', async () => {
      await store.createTask(record('t5', 3));
      const touch = (tool: string, labels: string[] = [], egress = false) => ({ tool, labels, egress });
      const mark = (version: number) => ({ id: 'spiffe://example.org/t5', version, now: now() });
      assert.deepEqual(await store.recordCalls('t5', 0, 3, [touch('a'), touch('b', ['pii']), touch('c', [], true), touch('d')], mark(0)), { ok: false, reason: 'exhausted', calls: 0 });
      assert.deepEqual(await store.recordCalls('t5', 0, 3, [touch('a'), touch('b', ['pii']), touch('c', [], true)], mark(0)), { ok: true, calls: 3 });
      const s = await store.getState('t5', now());
      assert.deepEqual([...(s?.history.tools ?? [])].sort(), ['a', 'b', 'c']);
      assert.deepEqual(s?.history.labels, ['pii']);
      assert.equal(s?.history.egress, true);
      assert.deepEqual(await store.recordCalls('t5', 3, 3, [null], mark(3)), { ok: false, reason: 'exhausted', calls: 3 });
    });

    it('keeps a workload\'s history across its tasks, within the window, and compares its version', async () => {
      const t = now();
      await store.createTask(record('w1'));
      await store.createTask(record('w2'));
      const wl = `spiffe://example.org/ns/w/${kind}-${t}`;
      const pii = { tool: 'support/get_ticket', labels: ['pii'], egress: false };
      assert.deepEqual(await store.getWorkloadHistory(wl, t), { tools: [], labels: [], egress: false, counts: {}, version: 0 });
      assert.equal((await store.recordCalls('w1', 0, null, [pii, pii], { id: wl, version: 0, now: t })).ok, true);
      // Another task of the same workload, decided on a stale workload version: a conflict.
      assert.deepEqual(await store.recordCalls('w2', 0, null, [null], { id: wl, version: 0, now: t }), { ok: false, reason: 'conflict', calls: 0 });
      const seen = await store.getWorkloadHistory(wl, t + 10);
      assert.deepEqual({ ...seen, tools: [...seen.tools] }, { tools: ['support/get_ticket'], labels: ['pii'], egress: false, counts: { 'support/get_ticket': 2 }, version: 2 });
      assert.equal((await store.recordCalls('w2', 0, null, [{ tool: 'support/web_fetch', labels: [], egress: true }], { id: wl, version: 2, now: t + 20 })).ok, true);
      assert.equal((await store.getWorkloadHistory(wl, t + 30)).egress, true);
      // Past the window (3600 s), nothing of it counts any more.
      const later = await store.getWorkloadHistory(wl, t + 3600 + 120);
      assert.deepEqual({ tools: later.tools, labels: later.labels, egress: later.egress, counts: later.counts }, { tools: [], labels: [], egress: false, counts: {} });
    });

    it('refuses to count a call for an ended task', async () => {
      await store.createTask(record('t3'));
      assert.equal(await store.endTask('t3', now()), true);
      assert.deepEqual(await store.recordCalls('t3', 0, null, [null], { id: 'spiffe://example.org/t3', version: 0, now: now() }), { ok: false, reason: 'ended', calls: 0 });
      assert.equal(await store.endTask('never-started', now()), false);
    });

    it('spends a counted approval one use per call, and never below zero under a race', async () => {
      await store.createTask(record('t6'));
      await store.grantApproval({ id: 'once', taskId: 't6', scope: 'support/create_case', approver: 'spiffe://example.org/s', expiresAt: now() + 60, argumentsDigest: null, uses: 1 }, now() + 600);
      assert.equal((await store.getState('t6', now()))?.approvals[0]?.uses, 1);
      const mark = { id: 'spiffe://example.org/t6', version: 0, now: now() };
      const touch = { tool: 'support/create_case', labels: [], egress: false };
      // Two decisions spend it at once: one records, the other is a conflict (decided again).
      const both = await Promise.all([store.recordCalls('t6', 0, null, [touch], mark, ['once']), store.recordCalls('t6', 0, null, [touch], mark, ['once'])]);
      assert.equal(both.filter((r) => r.ok).length, 1);
      assert.deepEqual((await store.getState('t6', now()))?.approvals, [], 'a spent approval is gone');
      assert.deepEqual(await store.recordCalls('t6', 1, null, [touch], { ...mark, version: 1 }, ['once']), { ok: false, reason: 'conflict', calls: 1 });
    });

    it('answers a read after every change with the change, at the same second, and approvals by the second asked', async () => {
      // The memory store keeps the lists it answers with (approvals per second) until the task
      // changes: each change below must show in the very next read at the same second.
      const t = now();
      await store.createTask(record('t7', 10));
      assert.equal((await store.getState('t7', t))?.calls, 0);
      assert.deepEqual((await store.getState('t7', t))?.history.tools, []);
      const mark = { id: 'spiffe://example.org/t7', version: null, now: t };
      assert.equal((await store.recordCalls('t7', null, 10, [{ tool: 'support/get_ticket', labels: ['pii'], egress: false }], mark)).ok, true);
      const after = await store.getState('t7', t);
      assert.equal(after?.calls, 1);
      assert.deepEqual(after?.history.counts, { 'support/get_ticket': 1 });
      assert.deepEqual([after?.history.tools, after?.history.labels], [['support/get_ticket'], ['pii']]);
      await store.grantApproval({ id: 'g1', taskId: 't7', scope: 'support/create_case', approver: 'spiffe://example.org/s', expiresAt: t + 5, argumentsDigest: null, uses: null }, t + 600);
      assert.deepEqual((await store.getState('t7', t))?.approvals.map((a) => a.id), ['g1']);
      // By the second asked, in any order: expired at t + 5, still valid at t + 4.
      assert.deepEqual((await store.getState('t7', t + 5))?.approvals, []);
      assert.deepEqual((await store.getState('t7', t + 4))?.approvals.map((a) => a.id), ['g1']);
      assert.equal(await store.revokeApproval('t7', 'g1'), true);
      assert.deepEqual((await store.getState('t7', t + 4))?.approvals, []);
      assert.equal(await store.endTask('t7', t + 4), true);
      assert.equal((await store.getState('t7', t + 4))?.endedAt, t + 4);
    });

    it('lists only unexpired approvals, and revokes one', async () => {
      await store.createTask(record('t4'));
      await store.grantApproval({ id: 'a1', taskId: 't4', scope: 'cases.refund', approver: 'spiffe://example.org/s', expiresAt: now() + 60, argumentsDigest: null, uses: null }, now() + 600);
      await store.grantApproval({ id: 'a2', taskId: 't4', scope: 'old', approver: 'spiffe://example.org/s', expiresAt: now() - 1, argumentsDigest: null, uses: null }, now() + 600);
      assert.deepEqual((await store.getState('t4', now()))?.approvals.map((a) => a.id), ['a1']);
      assert.equal(await store.revokeApproval('t4', 'a1'), true);
      assert.deepEqual((await store.getState('t4', now()))?.approvals, []);
    });
  });
}

describe('Redis revocations over pub/sub', () => {
  it('tell another replica that a task ended within milliseconds', async () => {
    const prefix = `pubsub-${Date.now()}:`;
    const a = new RedisTaskStore(redis.url, prefix);
    const b = new RedisTaskStore(redis.url, prefix);
    try {
      await waitReady(a);
      await waitReady(b);
      await new Promise((r) => setTimeout(r, 100)); // let B's subscription settle
      await a.createTask(record('shared'));
      const heard = new Promise<bigint>((resolveHeard) => b.onTaskEnded((id) => id === 'shared' && resolveHeard(process.hrtime.bigint())));
      const sent = process.hrtime.bigint();
      await a.endTask('shared', now());
      const ms = Number((await heard) - sent) / 1e6;
      process.stdout.write(`# replica B heard the revocation ${ms.toFixed(2)} ms after replica A sent EndTask\n`);
      assert.ok(ms < 100, `took ${ms} ms`);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('are ready as soon as the first connection is up, so a new replica does not deny meanwhile', async () => {
    const store = new RedisTaskStore(redis.url, `ready-${Date.now()}:`);
    try {
      assert.equal(store.healthy(), false, 'not connected yet right after construction');
      assert.equal(await store.ready(2000), true);
      assert.equal(await store.getState('unknown', now()), null);
    } finally {
      await store.close();
    }
  });

  it('fail fast with StateUnavailableError when Redis is not there', async () => {
    const store = new RedisTaskStore('redis://127.0.0.1:1', 'x:');
    try {
      const started = Date.now();
      await assert.rejects(store.getState('t', now()), StateUnavailableError);
      assert.ok(Date.now() - started < 1500);
      assert.equal(store.healthy(), false);
      const waited = Date.now();
      assert.equal(await store.ready(300), false, 'ready() gives up after its timeout');
      assert.ok(Date.now() - waited < 1000);
    } finally {
      await store.close();
    }
  });
});
