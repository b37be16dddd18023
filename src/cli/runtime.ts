// Everything a decision needs, loaded once and checked: config, routes, policies. Shared by
// serve, check and validate so the three can never disagree about what is loaded.

import { KeyedLock } from '../tasks/keyed-lock.js';
import { SubjectTokenVerifier } from '../identity/subject-token.js';
import { TxnTokenVerifier } from '../identity/txn-token.js';
import { RouteTable } from '../check/routes.js';
import { createDecisionState, type DecisionState } from '../check/pipeline.js';
import { ConfigError, loadConfig } from '../config/load.js';
import type { MandateConfig } from '../config/types.js';
import { PolicyLoadError } from '../policy/loader.js';
import { PolicyStore } from '../policy/store.js';
import { Identifier } from '../check/identify.js';
import { BundleError, BundleSet } from '../identity/bundles.js';
import { WorkloadGroups } from '../identity/groups.js';
import type { TaskDeps } from '../tasks/deps.js';
import { KeyFileError, KeyRing } from '../identity/task-keys.js';
import { MemoryTaskStore } from '../tasks/memory-store.js';
import { EndedTasks } from '../tasks/ended.js';
import { RedisTaskStore } from '../tasks/redis-store.js';
import { WorkloadApiClient } from '../identity/workload-api.js';

export interface RuntimeOptions {
  readonly listen?: string | undefined;
  readonly adminListen?: string | undefined;
  /** serve: create the task key file if missing; validate: leave task state alone. */
  readonly mode?: 'serve' | 'check' | 'validate';
  readonly onStoreError?: (message: string) => void;
}

export interface Runtime {
  readonly config: MandateConfig;
  readonly routes: RouteTable;
  readonly store: PolicyStore;
  readonly bundles: BundleSet;
  readonly identifier: Identifier;
  readonly groups: WorkloadGroups;
  /** null when the config has no tasks section (or in validate mode). */
  readonly tasks: TaskDeps | null;
  /** The shadow policy set (config.shadowPolicies), or null. */
  readonly shadow: PolicyStore | null;
  /** The SPIFFE Workload API client (config.workloadApi), or null; it connects on first use. */
  readonly workloadApi: WorkloadApiClient | null;
  state(): DecisionState;
}

/** Problems as lines for the user: `field: message` or `file:line: message`. */
export class StartupError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(problems.join('\n'));
    this.name = 'StartupError';
  }
}

export function loadRuntime(file: string | null, options: RuntimeOptions = {}): Runtime {
  try {
    const config = loadConfig({ file, listen: options.listen, adminListen: options.adminListen });
    const routes = new RouteTable(config.routes, config.application);
    const actions = routes.routes.map((r) => r.action);
    const routeNeeds = routes.routes.filter((r) => r.mcp === null).map((r) => ({ action: r.action, resourceType: r.resourceType, origin: r.origin }));
    const store = PolicyStore.open({ ...config, routeNeeds, compiled: config.evaluation.compiled }, actions);
    const mode = options.mode ?? 'check';
    const workloadApi = config.workloadApi === null || mode === 'validate' ? null : new WorkloadApiClient(config.workloadApi.target);
    const bundles = BundleSet.open(config.identity.bundles, {}, workloadApi === null || config.workloadApi === null ? null : { client: workloadApi, timeoutMs: config.workloadApi.timeoutMs });
    const identifier = new Identifier(config, bundles);
    const groups = new WorkloadGroups(config.identity.groups);
    let tasks: TaskDeps | null = null;
    if (config.tasks !== null && mode !== 'validate') {
      // Nothing is written here: `mandate serve` creates a missing key file once its ports are bound.
      const keys = KeyRing.open(config.tasks.keyFile, { create: false });
      const taskStore = config.tasks.store.kind === 'redis'
        ? new RedisTaskStore(config.tasks.store.url, config.tasks.store.keyPrefix, { commandTimeoutMs: config.tasks.store.timeoutMs, workloadHistorySeconds: config.tasks.workloadHistorySeconds, ...(options.onStoreError === undefined ? {} : { onError: options.onStoreError }) })
        : new MemoryTaskStore(config.tasks.workloadHistorySeconds);
      const ended = new EndedTasks();
      taskStore.onTaskEnded((taskId) => ended.add(taskId));
      tasks = { config: config.tasks, keys, store: taskStore, ended, verifier: new TxnTokenVerifier(keys, config.tasks), locks: new KeyedLock(), subjects: config.tasks.subjectIssuers.length === 0 ? null : new SubjectTokenVerifier(config.tasks.subjectIssuers) };
    }
    const shadow = config.shadowPolicies === null || mode === 'validate' ? null : PolicyStore.open({ ...config, policies: config.shadowPolicies, compiled: config.evaluation.compiled }, actions);
    return { config, routes, store, bundles, identifier, groups, tasks, shadow, workloadApi, state: () => createDecisionState(config, routes, store.current, identifier, groups, tasks) };
  } catch (err) {
    if (err instanceof ConfigError) throw new StartupError([err.message]);
    if (err instanceof PolicyLoadError) throw new StartupError(err.problems);
    if (err instanceof BundleError || err instanceof KeyFileError) throw new StartupError([err.message]);
    throw err;
  }
}

/**
 * loadRuntime for a command: startup problems go to stderr, one per line (then `trailer`, if
 * any), and null tells the command to exit 1. Other errors are bugs and are thrown.
 */
export function loadRuntimeForCommand(file: string | null, options: RuntimeOptions = {}, trailer?: string): Runtime | null {
  try {
    return loadRuntime(file, options);
  } catch (err) {
    if (!(err instanceof StartupError)) throw err;
    for (const line of err.problems) process.stderr.write(`${line}\n`);
    if (trailer !== undefined) process.stderr.write(`${trailer}\n`);
    return null;
  }
}
