// Task state in Redis, shared by every replica.
//   <prefix>task:<id>            hash: record (JSON), endedAt ('' while running)
//   <prefix>task:<id>:calls      counter of allowed calls
//   <prefix>task:<id>:approvals  hash: approval id -> JSON
//   <prefix>task-ended           pub/sub channel: the id of every ended task
// All three keys expire an hour after the task's own end, so Redis holds live tasks only.
// Commands fail fast when Redis is unreachable (no offline queue, a command timeout): a
// decision that needs task state then denies with state_unavailable instead of waiting, and
// recovers by itself when the connection is back.

import { Redis } from 'ioredis';
import { StateUnavailableError, type Approval, type ConsumeResult, type TaskRecord, type TaskState, type TaskStore } from './store.js';

const KEEP_AFTER_END_SECONDS = 3600;

// KEYS: task hash, calls counter. ARGV: max calls (-1: none).
// Returns {1, calls} counted; {-1, calls} budget exhausted; {-2, calls} ended or unknown.
const CONSUME_LUA = `
if redis.call('EXISTS', KEYS[1]) == 0 then return {-2, 0} end
local calls = tonumber(redis.call('GET', KEYS[2]) or '0')
local ended = redis.call('HGET', KEYS[1], 'endedAt')
if ended and ended ~= '' then return {-2, calls} end
local max = tonumber(ARGV[1])
if max >= 0 and calls >= max then return {-1, calls} end
calls = redis.call('INCR', KEYS[2])
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
return {1, calls}
`;

// KEYS: task hash. ARGV: now, channel, task id. Ends the task once and tells every replica.
const END_LUA = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local ended = redis.call('HGET', KEYS[1], 'endedAt')
if not ended or ended == '' then redis.call('HSET', KEYS[1], 'endedAt', ARGV[1]) end
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
`;

interface Scripts {
  mandateConsume(taskKey: string, callsKey: string, max: number): Promise<[number, number]>;
  mandateEnd(taskKey: string, now: number, channel: string, taskId: string): Promise<number>;
}

export interface RedisStoreOptions {
  readonly commandTimeoutMs?: number;
  readonly onError?: (message: string) => void;
}

export class RedisTaskStore implements TaskStore {
  readonly kind = 'redis' as const;
  private readonly redis: Redis & Scripts;
  private readonly subscriber: Redis;
  private readonly channel: string;
  private readonly listeners: ((taskId: string) => void)[] = [];

  constructor(
    url: string,
    private readonly prefix: string,
    options: RedisStoreOptions = {},
  ) {
    const common = {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: options.commandTimeoutMs ?? 500,
      connectTimeout: 1000,
      retryStrategy: (attempt: number) => Math.min(50 * attempt, 500),
    };
    this.redis = new Redis(url, common) as Redis & Scripts;
    this.redis.defineCommand('mandateConsume', { numberOfKeys: 2, lua: CONSUME_LUA });
    this.redis.defineCommand('mandateEnd', { numberOfKeys: 1, lua: END_LUA });
    // Subscriptions need the offline queue: ioredis replays them after a reconnect.
    this.subscriber = new Redis(url, { ...common, enableOfflineQueue: true, commandTimeout: undefined });
    this.channel = `${prefix}task-ended`;
    const report = (err: Error): void => options.onError?.(err.message);
    this.redis.on('error', report);
    this.subscriber.on('error', report);
    this.subscriber.on('message', (channel: string, taskId: string) => {
      if (channel === this.channel) for (const l of this.listeners) l(taskId);
    });
    void this.subscriber.subscribe(this.channel).catch(report);
  }

  private key(taskId: string, suffix = ''): string {
    return `${this.prefix}task:${taskId}${suffix}`;
  }

  private async run<T>(what: string, op: () => Promise<T>): Promise<T> {
    try {
      return await op();
    } catch (err) {
      throw new StateUnavailableError(`task state store (Redis) failed to ${what}: ${(err as Error).message}`);
    }
  }

  async createTask(record: TaskRecord): Promise<void> {
    const expireAt = record.expiresAt + KEEP_AFTER_END_SECONDS;
    await this.run('create a task', () =>
      this.redis
        .multi()
        .hset(this.key(record.id), 'record', JSON.stringify(record), 'endedAt', '')
        .expireat(this.key(record.id), expireAt)
        .exec()
        .then(checkExec),
    );
  }

  async getState(taskId: string, now: number): Promise<TaskState | null> {
    const results = await this.run('read task state', () =>
      this.redis.pipeline().hgetall(this.key(taskId)).get(this.key(taskId, ':calls')).hvals(this.key(taskId, ':approvals')).exec().then(checkExec),
    );
    const hash = results[0] as Record<string, string>;
    if (hash['record'] === undefined) return null;
    const approvals = (results[2] as string[]).map((a) => JSON.parse(a) as Approval).filter((a) => a.expiresAt > now);
    return {
      record: JSON.parse(hash['record']) as TaskRecord,
      endedAt: hash['endedAt'] ? Number(hash['endedAt']) : null,
      calls: Number(results[1] ?? 0),
      approvals,
    };
  }

  async endTask(taskId: string, now: number): Promise<boolean> {
    const ended = await this.run('end a task', () => this.redis.mandateEnd(this.key(taskId), now, this.channel, taskId));
    return ended === 1;
  }

  async consumeCall(taskId: string, maxCalls: number | null): Promise<ConsumeResult> {
    const [status, calls] = await this.run('count a call', () => this.redis.mandateConsume(this.key(taskId), this.key(taskId, ':calls'), maxCalls ?? -1));
    if (status === 1) return { ok: true, calls };
    return { ok: false, reason: status === -1 ? 'exhausted' : 'ended', calls };
  }

  async grantApproval(approval: Approval, taskExpiresAt: number): Promise<void> {
    const key = this.key(approval.taskId, ':approvals');
    await this.run('grant an approval', () =>
      this.redis.multi().hset(key, approval.id, JSON.stringify(approval)).expireat(key, taskExpiresAt + KEEP_AFTER_END_SECONDS).exec().then(checkExec),
    );
  }

  async revokeApproval(taskId: string, approvalId: string): Promise<boolean> {
    return (await this.run('revoke an approval', () => this.redis.hdel(this.key(taskId, ':approvals'), approvalId))) === 1;
  }

  onTaskEnded(listener: (taskId: string) => void): void {
    this.listeners.push(listener);
  }

  healthy(): boolean {
    return this.redis.status === 'ready';
  }

  async close(): Promise<void> {
    this.redis.disconnect();
    this.subscriber.disconnect();
  }
}

function checkExec(results: [Error | null, unknown][] | null): unknown[] {
  if (results === null) throw new Error('transaction aborted');
  for (const [err] of results) if (err) throw err;
  return results.map(([, value]) => value);
}
