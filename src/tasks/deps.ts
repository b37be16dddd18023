// What deciding within tasks needs, built once by the runtime (cli/runtime.ts): the task layer's
// parts, handed to the Check pipeline (check/task.ts) and to the task API (tasks/manager.ts).

import type { TasksConfig } from '../config/tasks.js';
import type { SubjectTokenVerifier } from '../identity/subject-token.js';
import type { KeyRing } from '../identity/task-keys.js';
import type { TxnTokenVerifier } from '../identity/txn-token.js';
import type { EndedTasks } from './ended.js';
import type { KeyedLock } from './keyed-lock.js';
import type { TaskStore } from './store.js';

export interface TaskDeps {
  readonly config: TasksConfig;
  readonly keys: KeyRing;
  readonly store: TaskStore;
  readonly ended: EndedTasks;
  readonly verifier: TxnTokenVerifier;
  /** One decision at a time per task on this replica (keyed-lock.ts). */
  readonly locks: KeyedLock;
  /** Verifies StartTask's subject tokens; null when no tasks.subjectIssuers are configured. */
  readonly subjects: SubjectTokenVerifier | null;
}
