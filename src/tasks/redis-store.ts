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
import { StateUnavailableError, type Approval, type ConsumeResult, type TaskRecord, type TaskState, type TaskStore, type ToolTouch } from './store.js';

const KEEP_AFTER_END_SECONDS = 3600;

// KEYS: task hash, calls counter, tools set, labels set, egress flag, counts hash.
// ARGV: max calls (-1: none), tool ('' for none), egress ('1'/'0'), labels...
// Returns {1, calls} counted (and the history updated); {-1, calls} budget exhausted;
// {-2, calls} ended or unknown. A refused call records nothing.
const CONSUME_LUA = `
if redis.call('EXISTS', KEYS[1]) == 0 then return {-2, 0} end
local calls = tonumber(redis.call('GET', KEYS[2]) or '0')
local ended = redis.call('HGET', KEYS[1], 'endedAt')
if ended and ended ~= '' then return {-2, calls} end
local max = tonumber(ARGV[1])
if max >= 0 and calls >= max then return {-1, calls} end
calls = redis.call('INCR', KEYS[2])
if ARGV[2] ~= '' then
  redis.call('SADD', KEYS[3], ARGV[2])
  redis.call('HINCRBY', KEYS[6], ARGV[2], 1)
  for i = 4, #ARGV do redis.call('SADD', KEYS[4], ARGV[i]) end
  if ARGV[3] == '1' then redis.call('SET', KEYS[5], '1') end
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then
  for i = 2, 6 do if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('PEXPIRE', KEYS[i], ttl) end end
end
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
  mandateConsume(...args: (string | number)[]): Promise<[number, number]>;
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
    this.redis.defineCommand('mandateConsume', { numberOfKeys: 6, lua: CONSUME_LUA });
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
      this.redis
        .pipeline()
        .hgetall(this.key(taskId))
        .get(this.key(taskId, ':calls'))
        .hvals(this.key(taskId, ':approvals'))
        .smembers(this.key(taskId, ':tools'))
        .smembers(this.key(taskId, ':labels'))
        .get(this.key(taskId, ':egress'))
        .hgetall(this.key(taskId, ':counts'))
        .exec()
        .then(checkExec),
    );
    const hash = results[0] as Record<string, string>;
    if (hash['record'] === undefined) return null;
    const approvals = (results[2] as string[]).map((a) => JSON.parse(a) as Approval).filter((a) => a.expiresAt > now);
    return {
      record: JSON.parse(hash['record']) as TaskRecord,
      endedAt: hash['endedAt'] ? Number(hash['endedAt']) : null,
      calls: Number(results[1] ?? 0),
      approvals,
      history: {
        tools: results[3] as string[],
        labels: results[4] as string[],
        egress: results[5] === '1',
        counts: Object.fromEntries(Object.entries(results[6] as Record<string, string>).map(([k, v]) => [k, Number(v)])),
      },
    };
  }

  async endTask(taskId: string, now: number): Promise<boolean> {
    const ended = await this.run('end a task', () => this.redis.mandateEnd(this.key(taskId), now, this.channel, taskId));
    return ended === 1;
  }

  async consumeCall(taskId: string, maxCalls: number | null, touch: ToolTouch | null): Promise<ConsumeResult> {
    const keys = ['', ':calls', ':tools', ':labels', ':egress', ':counts'].map((s) => this.key(taskId, s));
    const args = [maxCalls ?? -1, touch?.tool ?? '', touch?.egress ? '1' : '0', ...(touch?.labels ?? [])];
    const [status, calls] = await this.run('count a call', () => this.redis.mandateConsume(...keys, ...args));
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

  async ready(timeoutMs: number): Promise<boolean> {
    if (this.healthy()) return true;
    return new Promise((resolve) => {
      const done = (value: boolean): void => {
        clearTimeout(timer);
        this.redis.off('ready', onReady);
        resolve(value);
      };
      const onReady = (): void => done(true);
      const timer = setTimeout(() => done(this.healthy()), timeoutMs);
      timer.unref();
      this.redis.on('ready', onReady);
    });
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
