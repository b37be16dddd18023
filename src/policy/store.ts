// Holds the live policy version and replaces it whole on reload. A reload loads and validates
// the new version in a thread of its own (load-thread.ts: the event loop keeps deciding),
// preparses it beside the old one, then swaps one reference; a bad version is rejected and the
// previous one keeps deciding.

import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import { PolicyEngine } from './engine.js';
import { PolicyLoadError, type PolicyPaths, type PolicyVersion } from './loader.js';
import { loadPolicyVersionAtStartup, loadPolicyVersionInThread } from './load-thread.js';

export type ReloadResult =
  | { readonly ok: true; readonly version: string; readonly changed: boolean }
  | { readonly ok: false; readonly problems: readonly string[] };

// cedar-wasm's preparse cache is per wasm instance, i.e. per thread: ids must not collide
// between stores in one process (tests, shadow policy sets).
let storeCount = 0;

export class PolicyStore {
  private slot = 0;
  private readonly storeId: number;
  private listeners: ((engine: PolicyEngine) => void)[] = [];
  /** The reload running now, and the one asked for while it runs (files may have changed since it read them). */
  private running: Promise<ReloadResult> | null = null;
  private queued: Promise<ReloadResult> | null = null;

  private constructor(
    private readonly paths: PolicyPaths,
    private engine: PolicyEngine,
    storeId: number,
    private readonly actions: readonly string[],
  ) {
    this.storeId = storeId;
  }

  /** Loads the first version; throws PolicyLoadError with file:line problems. */
  /** actions: the Cedar actions requests can carry, for slicing when there is no schema. */
  static open(paths: PolicyPaths, actions: readonly string[] = []): PolicyStore {
    const storeId = ++storeCount;
    return new PolicyStore(paths, prepare(loadPolicyVersionAtStartup(paths), `${storeId}-0`, actions, paths.compiled !== false), storeId, actions);
  }

  get current(): PolicyEngine {
    return this.engine;
  }

  onSwap(listener: (engine: PolicyEngine) => void): void {
    this.listeners.push(listener);
  }

  /**
   * Loads the files again; one reload at a time, and one more if asked while one runs. The load
   * thread does not keep the process alive (a draining server does not wait for it).
   */
  reload(): Promise<ReloadResult> {
    if (this.running === null) {
      this.running = this.load().finally(() => (this.running = null));
      return this.running;
    }
    const next = (): Promise<ReloadResult> => {
      this.queued = null;
      return this.reload();
    };
    this.queued ??= this.running.then(next, next);
    return this.queued;
  }

  private async load(): Promise<ReloadResult> {
    let version: PolicyVersion;
    try {
      version = await loadPolicyVersionInThread(this.paths);
    } catch (err) {
      return { ok: false, problems: problemsOf(err) };
    }
    if (version.version === this.engine.version.version) return { ok: true, version: version.version, changed: false };
    const nextSlot = this.slot ^ 1;
    let next: PolicyEngine;
    try {
      next = prepare(version, `${this.storeId}-${nextSlot}`, this.actions, this.paths.compiled !== false);
    } catch (err) {
      return { ok: false, problems: problemsOf(err) };
    }
    this.slot = nextSlot;
    this.engine = next;
    // The swap has happened: a listener that throws must not turn it into a failed reload.
    for (const listener of this.listeners) {
      try {
        listener(next);
      } catch {
        // Listeners (the server's state, the pool's push) handle their own failures.
      }
    }
    return { ok: true, version: next.version.version, changed: true };
  }

  /**
   * Reloads when the policy directory, schema or entities file changes. Editors write files in
   * several steps, so changes are debounced. Returns a function that stops watching.
   */
  watch(onResult: (result: ReloadResult) => void, debounceMs = 150): () => void {
    const watchers: FSWatcher[] = [];
    let timer: NodeJS.Timeout | undefined;
    const trigger = (): void => {
      clearTimeout(timer);
      timer = setTimeout(() => void this.reload().then(onResult), debounceMs);
      timer.unref();
    };
    const add = (target: string, filter?: string): void => {
      try {
        // A ConfigMap volume swaps every file at once by renaming its `..data` link.
        const w = watch(target, { persistent: false }, (_event, name) => {
          if (filter === undefined || name === null || name === filter || name === '..data') trigger();
        });
        w.on('error', () => trigger());
        watchers.push(w);
      } catch {
        // A path that cannot be watched (e.g. removed) is still reloaded on SIGHUP.
      }
    };
    add(this.paths.policies);
    // Watch the parent directory for single files: editors replace files by rename.
    for (const file of [this.paths.schema, this.paths.entities]) if (file !== null) add(dirname(file), basename(file));
    return () => {
      clearTimeout(timer);
      for (const w of watchers) w.close();
    };
  }
}

function prepare(version: PolicyVersion, slot: string, actions: readonly string[], compiled: boolean): PolicyEngine {
  const engine = PolicyEngine.prepare(version, slot, { actions, compiled });
  if (!engine.ok) throw new PolicyLoadError([`cedar-wasm refused the policy set: ${engine.message ?? engine.code}`]);
  return engine.value;
}

function problemsOf(err: unknown): readonly string[] {
  return err instanceof PolicyLoadError ? err.problems : [String((err as Error)?.message ?? err)];
}
