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
      await store.createTask(record('t1', 5));
      const s = await store.getState('t1', now());
      assert.deepEqual(s?.record, record('t1', 5));
      assert.equal(s?.calls, 0);
      assert.equal(s?.endedAt, null);
      assert.equal(await store.getState('nope', now()), null);
    });

    it('allows exactly maxCalls of 100 concurrent consumes', async () => {
      await store.createTask(record('t2', 13));
      const results = await Promise.all(Array.from({ length: 100 }, () => store.consumeCall('t2', 13, null)));
      assert.equal(results.filter((r) => r.ok).length, 13);
      assert.ok(results.filter((r) => !r.ok).every((r) => !r.ok && r.reason === 'exhausted'));
      assert.equal((await store.getState('t2', now()))?.calls, 13);
    });

    it('refuses to count a call for an ended task', async () => {
      await store.createTask(record('t3'));
      assert.equal(await store.endTask('t3', now()), true);
      assert.deepEqual(await store.consumeCall('t3', null, null), { ok: false, reason: 'ended', calls: 0 });
      assert.equal(await store.endTask('never-started', now()), false);
    });

    it('lists only unexpired approvals, and revokes one', async () => {
      await store.createTask(record('t4'));
      await store.grantApproval({ id: 'a1', taskId: 't4', scope: 'cases.refund', approver: 'spiffe://example.org/s', expiresAt: now() + 60, argumentsDigest: null }, now() + 600);
      await store.grantApproval({ id: 'a2', taskId: 't4', scope: 'old', approver: 'spiffe://example.org/s', expiresAt: now() - 1, argumentsDigest: null }, now() + 600);
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
