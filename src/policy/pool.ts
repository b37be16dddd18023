// Pooled evaluation (config `evaluation.mode: pool`): Cedar runs in piscina worker threads while
// the main thread keeps gRPC, decoding, identity, mapping and tasks.
//
// - Batching: requests wait in one queue; whenever a worker is free, every request waiting at
//   that moment (up to maxBatch) goes to it in one message, so the per-message cost (~50 us) is
//   paid once per batch under load, and once per request when idle.
// - Bounded: past maxQueue requests waiting or in flight, a request is denied `overloaded` at
//   once instead of letting latency grow without bound.
// - Deadlines: a request whose gRPC deadline has passed while it waited is answered `overloaded`
//   without being evaluated (its caller has given up); a batch still running after the last of
//   its deadlines is stopped (the worker is terminated and replaced) and answered `overloaded`.
// - Versions are pushed to workers on reload (`prepare`), never read from disk there; a worker
//   that does not hold the version a batch names says so and gets it with the retry, which also
//   covers workers started after the push (replacements).
// - A worker that dies takes its batch with it: piscina rejects the run and starts a new worker;
//   every request of that batch is answered `internal_error`. Nothing is lost, nothing allowed.

import { createRequire } from 'node:module';
import type { Piscina } from 'piscina';

/** piscina, loaded with the first worker: most servers decide everything compiled and never start one. */
function piscinaClass(): typeof Piscina {
  return (createRequire(import.meta.url)('piscina') as { Piscina: typeof Piscina }).Piscina;
}
import { deny, ok, type Outcome } from '../core/reasons.js';
import type { Evaluation, PolicyEngine } from './engine.js';
import type { VersionPayload, WorkerRequest, WorkerResponse } from './pool-types.js';
import type { CedarRequest } from '../core/cedar-request.js';

export interface PoolOptions {
  /**
   * Mode `auto`: evaluate on the calling thread when the pool is idle and the last evaluation
   * ended (or was handed to the pool) at least QUIET_MS ago, saving the worker round trip at
   * low load; requests that follow each other closely go to the pool, which then stays busy.
   */
  readonly inlineWhenQuiet?: boolean;
  /** How long since the last evaluation counts as quiet (mode auto); default QUIET_MS. */
  readonly quietMs?: number;
  readonly workers: number;
  readonly maxQueue: number;
  readonly maxBatch: number;
  /** The worker module (tests give one that crashes on purpose); default: worker.js. */
  readonly workerFile?: string;
}

interface Waiting {
  readonly request: CedarRequest;
  readonly payload: VersionPayload;
  /** Epoch ms after which the caller has given up, or Infinity. */
  readonly deadline: number;
  readonly resolve: (outcome: Outcome<Evaluation>) => void;
}

export interface PoolStats {
  /** False until an evaluation needed cedar-wasm in a worker. */
  readonly workersStarted: boolean;
  readonly waiting: number;
  readonly inFlight: number;
  readonly batches: number;
  /** Requests evaluated by a worker (in `batches` batches). */
  readonly pooled: number;
  /** Evaluated on the calling thread because nothing else was going on (mode auto). */
  readonly inline: number;
  readonly overloaded: number;
  readonly expired: number;
  readonly workerFailures: number;
}

/**
 * A worker's young generation, capped: V8 grows it to its default maximum while a version is
 * received and prepared and keeps it. Measured with 10,000 policies and 4 workers: RSS 500 MB
 * by default, 401 MB with 4 MB; throughput at 64 in flight was within the run's noise.
 */
const WORKER_YOUNG_GENERATION_MB = 4;

/** Evaluations further apart than this are "quiet": the main thread has time for them (mode auto). */
const QUIET_MS = 0.25;

export class EvaluationPool {
  /** Started on the first evaluation cedar-wasm must do: with every slice compiled, never (each worker holds ~43 MB of wasm). */
  private piscinaPool: Piscina | null = null;
  private readonly waiting: Waiting[] = [];
  private activeBatches = 0;
  private inFlight = 0;
  private closed = false;
  private readonly counts = { batches: 0, pooled: 0, inline: 0, overloaded: 0, expired: 0, workerFailures: 0 };
  private lastActivity = -Infinity;

  constructor(private readonly options: PoolOptions) {}

  private get piscina(): Piscina {
    this.piscinaPool ??= new (piscinaClass())({
      filename: this.options.workerFile ?? new URL('./worker.js', import.meta.url).href,
      minThreads: this.options.workers,
      maxThreads: this.options.workers,
      idleTimeout: Infinity,
      concurrentTasksPerWorker: 1,
      resourceLimits: { maxYoungGenerationSizeMb: WORKER_YOUNG_GENERATION_MB },
    });
    return this.piscinaPool;
  }

  /** Whether the worker threads have been started. */
  get started(): boolean {
    return this.piscinaPool !== null;
  }

  /** Evaluates `request` against the engine's version in a worker (or inline, see inlineWhenQuiet). Never rejects. */
  evaluate(engine: PolicyEngine, request: CedarRequest, deadline = Infinity): Outcome<Evaluation> | Promise<Outcome<Evaluation>> {
    // The compiled path needs no worker: it runs here in microseconds (engine.ts).
    const compiled = engine.evaluateCompiled(request);
    if (compiled !== null) return compiled;
    if (this.closed) return Promise.resolve(deny('overloaded', 'the evaluation pool is shutting down'));
    if (this.options.inlineWhenQuiet === true) {
      // Quiet: nothing evaluated or asked for since QUIET_MS ago. Measured from the end of the
      // last inline evaluation, so that requests queued behind it (arriving while it ran) count
      // as busy and go to the pool.
      const now = performance.now();
      const quiet = now - this.lastActivity >= (this.options.quietMs ?? QUIET_MS) && this.inFlight === 0 && this.waiting.length === 0;
      this.lastActivity = now;
      if (quiet) {
        this.counts.inline++;
        const out = engine.evaluate(request);
        this.lastActivity = performance.now();
        return out;
      }
    }
    if (this.waiting.length + this.inFlight >= this.options.maxQueue) {
      this.counts.overloaded++;
      return Promise.resolve(deny('overloaded', `${this.options.maxQueue} evaluations are already waiting or running`));
    }
    return new Promise((resolve) => {
      this.waiting.push({ request, payload: payloadFor(engine), deadline, resolve });
      this.dispatch();
    });
  }

  /** Pushes a new version to the workers ahead of the first request that names it. */
  pushVersion(engine: PolicyEngine): void {
    if (this.piscinaPool === null) return; // workers not started: they get the version with their first batch
    const message: WorkerRequest = { kind: 'prepare', payload: payloadFor(engine) };
    for (let i = 0; i < this.options.workers; i++) {
      this.piscina.run(message).catch(() => undefined); // a worker that misses it gets it with its next batch
    }
  }

  stats(): PoolStats {
    return { waiting: this.waiting.length, inFlight: this.inFlight, workersStarted: this.started, ...this.counts };
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const w of this.waiting.splice(0)) w.resolve(deny('overloaded', 'the evaluation pool is shutting down'));
    await this.piscinaPool?.destroy();
  }

  private dispatch(): void {
    while (this.activeBatches < this.options.workers && this.waiting.length > 0) {
      const now = Date.now();
      const batch: Waiting[] = [];
      const versionId = (this.waiting[0] as Waiting).payload.version.version;
      // The leading requests of one version (two only meet around a reload), in arrival order;
      // those already past their deadline are answered instead of sent.
      let taken = 0;
      for (; taken < this.waiting.length && batch.length < this.options.maxBatch; taken++) {
        const w = this.waiting[taken] as Waiting;
        if (w.payload.version.version !== versionId) break;
        if (w.deadline > now) batch.push(w);
        else {
          this.counts.expired++;
          w.resolve(deny('overloaded', 'the request waited past its deadline for an evaluation worker'));
        }
      }
      this.waiting.splice(0, taken);
      if (batch.length > 0) void this.run(batch);
    }
  }

  private async run(batch: Waiting[]): Promise<void> {
    this.activeBatches++;
    this.inFlight += batch.length;
    this.counts.batches++;
    const first = batch[0] as Waiting;
    const requests = batch.map((w) => w.request);
    // A batch still running when the last of its callers has given up is stopped: piscina
    // terminates the worker and starts another (a worker stuck in one evaluation would otherwise
    // hold every later request).
    const until = Math.max(...batch.map((w) => w.deadline));
    const abort = Number.isFinite(until) ? new AbortController() : null;
    const timer = abort === null ? undefined : setTimeout(() => abort.abort(), Math.max(0, until - Date.now()));
    const options = abort === null ? {} : { signal: abort.signal };
    try {
      let answer = (await this.piscina.run({ kind: 'evaluate', versionId: first.payload.version.version, requests } satisfies WorkerRequest, options)) as WorkerResponse;
      if (answer.kind === 'need-version') {
        answer = (await this.piscina.run({ kind: 'evaluate', versionId: first.payload.version.version, payload: first.payload, requests } satisfies WorkerRequest, options)) as WorkerResponse;
      }
      if (answer.kind !== 'evaluated' || answer.results.length !== batch.length) throw new Error(`unexpected answer from the worker: ${answer.kind}`);
      this.counts.pooled += batch.length;
      for (const [i, w] of batch.entries()) {
        const result = answer.results[i] as Outcome<Evaluation>;
        w.resolve(result.ok ? ok({ ...result.value, path: 'wasm-pool' }) : result);
      }
    } catch (err) {
      if (abort?.signal.aborted === true) {
        this.counts.expired += batch.length;
        for (const w of batch) w.resolve(deny('overloaded', 'the evaluation outlived the request\'s deadline; its worker was stopped'));
      } else {
        this.counts.workerFailures++;
        for (const w of batch) w.resolve(deny('internal_error', `the evaluation worker failed: ${(err as Error)?.message ?? String(err)}`));
      }
    } finally {
      clearTimeout(timer);
      this.activeBatches--;
      this.inFlight -= batch.length;
      this.dispatch();
    }
  }
}

const payloads = new WeakMap<PolicyEngine, VersionPayload>();

const NO_ANNOTATIONS: Readonly<Record<string, string>> = Object.freeze({});
/** Workers run cedar-wasm only: compiled policies run on the main thread (engine.ts). */
const NOT_SENT = Object.freeze({ reason: 'compiled policies run on the main thread' });

/**
 * What a worker needs of a version. Not the static entities: requests are mapped on the main
 * thread and carry their own entities, and 20,000 entities cost each worker tens of megabytes.
 */
function payloadFor(engine: PolicyEngine): VersionPayload {
  let payload = payloads.get(engine);
  if (payload === undefined) {
    // What evaluation needs, no more: each worker holds its own copy of everything sent. No
    // static entities (requests carry theirs), no file positions or annotations (the main
    // thread reports them).
    const policies = engine.version.policies.map((p) => ({ id: p.id, text: p.text, file: '', line: 0, annotations: NO_ANNOTATIONS, facts: p.facts, compiled: NOT_SENT }));
    payload = { version: { ...engine.version, policies, entities: [] }, actions: engine.actions, derived: engine.derived };
    payloads.set(engine, payload);
  }
  return payload;
}
