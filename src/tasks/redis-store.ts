// Task state in Redis, shared by every replica.
//   <prefix>task:<id>            hash: record (JSON), endedAt ('' while running)
//   <prefix>task:<id>:calls      counter of allowed calls
//   <prefix>task:<id>:approvals  hash: approval id -> JSON
//   <prefix>task:<id>:uses       hash: approval id -> uses left (counted approvals only)
//   <prefix>task-ended           pub/sub channel: the id of every ended task
// All three keys expire an hour after the task's own end, so Redis holds live tasks only.
// Commands fail fast when Redis is unreachable (no offline queue, a command timeout of
// tasks.store.timeoutMs, 100 ms by default): a decision that needs task state then denies with
// state_unavailable instead of waiting, and recovers by itself when the connection is back.
// A Redis that hangs keeps its connection open, so the store also pings it every second: a
// timed-out command or ping marks it unhealthy at once (readyz 503, Tasks NOT_SERVING, store-up
// metric 0), the next answered ping healthy again.

import { createRequire } from 'node:module';
import type { Redis } from 'ioredis';

/**
 * ioredis, loaded when the first Redis store is made: most processes (the example, `mandate
 * check`, `validate`) never talk to Redis, and importing it costs ~80 ms of every start.
 */
function redisClass(): typeof Redis {
  return (createRequire(import.meta.url)('ioredis') as { Redis: typeof Redis }).Redis;
}
import { WorkloadWindow } from './workload-window.js';
import { EMPTY_WORKLOAD_HISTORY, StateUnavailableError, type Approval, type RecordResult, type WorkloadHistory, type WorkloadMark, type TaskRecord, type TaskState, type TaskStore, type ToolTouch } from './store.js';

const KEEP_AFTER_END_SECONDS = 3600;

//   <prefix>wl:<workload>        hash: the workload's history (tasks.workloadHistorySeconds):
//                                v (version), l:<label> / t:<tool> / e (epoch seconds last seen),
//                                c:<tool>:<bucket> (calls per bucket); expires after the window
//
// KEYS: task hash, calls counter, tools set, labels set, egress flag, counts hash, workload hash,
// approval uses hash.
// ARGV: expected calls (-1: not compared), max calls (-1: none), number of calls, expected
// workload version (-1: not compared), now,
// bucket seconds, window seconds, number of approvals to spend, their ids, then per call: tool
// ('' for none), egress ('1'/'0'), number of labels, labels...
// Returns {1, calls} recorded (budget, task and workload history); {-1, calls} budget exhausted;
// {-2, calls} ended or unknown; {-3, calls} the task or the workload recorded other calls since
// the state they were decided on (decide again). A refused batch records nothing.
const RECORD_LUA = `
if redis.call('EXISTS', KEYS[1]) == 0 then return {-2, 0} end
local calls = tonumber(redis.call('GET', KEYS[2]) or '0')
local ended = redis.call('HGET', KEYS[1], 'endedAt')
if ended and ended ~= '' then return {-2, calls} end
if tonumber(ARGV[1]) >= 0 and calls ~= tonumber(ARGV[1]) then return {-3, calls} end
local wversion = tonumber(redis.call('HGET', KEYS[7], 'v') or '0')
if tonumber(ARGV[4]) >= 0 and wversion ~= tonumber(ARGV[4]) then return {-3, calls} end
local nspend = tonumber(ARGV[8])
for s = 1, nspend do
  local left = tonumber(redis.call('HGET', KEYS[8], ARGV[8 + s]) or '0')
  if left <= 0 then return {-3, calls} end
end
local max = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
if max >= 0 and calls + n > max then return {-1, calls} end
for s = 1, nspend do redis.call('HINCRBY', KEYS[8], ARGV[8 + s], -1) end
calls = redis.call('INCRBY', KEYS[2], n)
redis.call('HINCRBY', KEYS[7], 'v', n)
local now = ARGV[5]
local bucketSeconds = tonumber(ARGV[6])
local window = tonumber(ARGV[7])
local bucket = math.floor(tonumber(now) / bucketSeconds)
local i = 9 + nspend
for c = 1, n do
  local tool = ARGV[i]
  local egress = ARGV[i + 1]
  local nlabels = tonumber(ARGV[i + 2])
  if tool ~= '' then
    redis.call('SADD', KEYS[3], tool)
    redis.call('HINCRBY', KEYS[6], tool, 1)
    redis.call('HSET', KEYS[7], 't:' .. tool, now)
    redis.call('HINCRBY', KEYS[7], 'c:' .. tool .. ':' .. bucket, 1)
    for j = 1, nlabels do
      redis.call('SADD', KEYS[4], ARGV[i + 2 + j])
      redis.call('HSET', KEYS[7], 'l:' .. ARGV[i + 2 + j], now)
    end
    if egress == '1' then
      redis.call('SET', KEYS[5], '1')
      redis.call('HSET', KEYS[7], 'e', now)
    end
  end
  i = i + 3 + nlabels
end
-- Forget count buckets that left the window, so the workload's hash stays bounded.
local first = math.floor((tonumber(now) - window) / bucketSeconds)
local fields = redis.call('HKEYS', KEYS[7])
for _, f in ipairs(fields) do
  local b = string.match(f, '^c:.*:(%d+)$')
  if b and tonumber(b) < first then redis.call('HDEL', KEYS[7], f) end
end
redis.call('EXPIRE', KEYS[7], window + bucketSeconds)
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
  mandateRecord(...args: (string | number)[]): Promise<[number, number]>;
  mandateEnd(taskKey: string, now: number, channel: string, taskId: string): Promise<number>;
}

export interface RedisStoreOptions {
  readonly commandTimeoutMs?: number;
  /** How often the store pings Redis to notice one that hangs (ms). */
  readonly probeIntervalMs?: number;
  /** tasks.workloadHistorySeconds. */
  readonly workloadHistorySeconds?: number;
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
      commandTimeout: options.commandTimeoutMs ?? 100,
      connectTimeout: 1000,
      retryStrategy: (attempt: number) => Math.min(50 * attempt, 500),
    };
    const RedisClient = redisClass();
    this.redis = new RedisClient(url, common) as Redis & Scripts;
    this.redis.defineCommand('mandateRecord', { numberOfKeys: 8, lua: RECORD_LUA });
    this.redis.defineCommand('mandateEnd', { numberOfKeys: 1, lua: END_LUA });
    // Subscriptions need the offline queue: ioredis replays them after a reconnect.
    this.subscriber = new RedisClient(url, { ...common, enableOfflineQueue: true, commandTimeout: undefined });
    this.channel = `${prefix}task-ended`;
    this.window = new WorkloadWindow(options.workloadHistorySeconds ?? 3600);
    const report = (err: Error): void => options.onError?.(err.message);
    this.redis.on('error', report);
    this.subscriber.on('error', report);
    this.subscriber.on('message', (channel: string, taskId: string) => {
      if (channel === this.channel) for (const l of this.listeners) l(taskId);
    });
    void this.subscriber.subscribe(this.channel).catch(report);
    this.probe = setInterval(() => {
      if (this.redis.status !== 'ready') return;
      this.redis.ping().then(
        () => (this.answering = true),
        () => (this.answering = false),
      );
    }, options.probeIntervalMs ?? 1000);
    this.probe.unref();
  }

  private readonly window: WorkloadWindow;
  /** False from a command or ping that Redis did not answer until the next one it answers. */
  private answering = true;
  private readonly probe: NodeJS.Timeout;

  private key(taskId: string, suffix = ''): string {
    return `${this.prefix}task:${taskId}${suffix}`;
  }

  private async run<T>(what: string, op: () => Promise<T>): Promise<T> {
    try {
      return await op();
    } catch (err) {
      if (/timed? ?out/i.test((err as Error).message)) this.answering = false;
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
        .hgetall(this.key(taskId, ':uses'))
        .exec()
        .then(checkExec),
    );
    const hash = results[0] as Record<string, string>;
    if (hash['record'] === undefined) return null;
    const uses = results[7] as Record<string, string>;
    const approvals = (results[2] as string[])
      .map((a): Approval => {
        // Approvals written before counted approvals existed have no `uses`: uncounted.
        const stored = JSON.parse(a) as Omit<Approval, 'uses'> & { uses?: number | null };
        const approval: Approval = { ...stored, uses: stored.uses ?? null };
        return approval.uses === null ? approval : { ...approval, uses: Number(uses[approval.id] ?? 0) };
      })
      .filter((a) => a.expiresAt > now && (a.uses === null || a.uses > 0));
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

  async recordCalls(taskId: string, expectedCalls: number | null, maxCalls: number | null, touches: readonly (ToolTouch | null)[], workload: WorkloadMark, spend: readonly string[] = []): Promise<RecordResult> {
    const keys = [...['', ':calls', ':tools', ':labels', ':egress', ':counts'].map((s) => this.key(taskId, s)), this.workloadKey(workload.id), this.key(taskId, ':uses')];
    const args: (string | number)[] = [expectedCalls ?? -1, maxCalls ?? -1, touches.length, workload.version ?? -1, workload.now, this.window.bucketSeconds, this.window.seconds, spend.length, ...spend];
    for (const t of touches) args.push(t?.tool ?? '', t?.egress ? '1' : '0', t?.labels.length ?? 0, ...(t?.labels ?? []));
    const [status, calls] = await this.run('record calls', () => this.redis.mandateRecord(...keys, ...args));
    if (status === 1) return { ok: true, calls };
    return { ok: false, reason: status === -1 ? 'exhausted' : status === -3 ? 'conflict' : 'ended', calls };
  }

  async getWorkloadHistory(workload: string, now: number): Promise<WorkloadHistory> {
    const hash = (await this.run('read workload history', () => this.redis.hgetall(this.workloadKey(workload)))) as Record<string, string>;
    if (hash['v'] === undefined) return EMPTY_WORKLOAD_HISTORY;
    const since = this.window.since(now);
    const first = this.window.firstBucket(now);
    const tools: string[] = [];
    const labels: string[] = [];
    const counts: Record<string, number> = {};
    for (const [field, value] of Object.entries(hash)) {
      if (field.startsWith('t:') && Number(value) > since) tools.push(field.slice(2));
      else if (field.startsWith('l:') && Number(value) > since) labels.push(field.slice(2));
      else if (field.startsWith('c:')) {
        const at = field.lastIndexOf(':');
        if (Number(field.slice(at + 1)) >= first) counts[field.slice(2, at)] = (counts[field.slice(2, at)] ?? 0) + Number(value);
      }
    }
    return { tools, labels, egress: Number(hash['e'] ?? 0) > since, counts, version: Number(hash['v']) };
  }

  private workloadKey(workload: string): string {
    return `${this.prefix}wl:${workload}`;
  }

  async grantApproval(approval: Approval, taskExpiresAt: number): Promise<void> {
    const key = this.key(approval.taskId, ':approvals');
    const usesKey = this.key(approval.taskId, ':uses');
    const expireAt = taskExpiresAt + KEEP_AFTER_END_SECONDS;
    const tx = this.redis.multi().hset(key, approval.id, JSON.stringify(approval)).expireat(key, expireAt);
    if (approval.uses !== null) tx.hset(usesKey, approval.id, approval.uses).expireat(usesKey, expireAt);
    await this.run('grant an approval', () => tx.exec().then(checkExec));
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
    return this.redis.status === 'ready' && this.answering;
  }

  async close(): Promise<void> {
    clearInterval(this.probe);
    this.redis.disconnect();
    this.subscriber.disconnect();
  }
}

function checkExec(results: [Error | null, unknown][] | null): unknown[] {
  if (results === null) throw new Error('transaction aborted');
  for (const [err] of results) if (err) throw err;
  return results.map(([, value]) => value);
}
