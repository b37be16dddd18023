// Holds the live policy version and replaces it whole on reload. A reload loads, validates and
// preparses the new version completely beside the old one, then swaps one reference; a bad
// version is rejected and the previous one keeps deciding.

import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import { PolicyEngine } from './engine.js';
import { loadPolicyVersion, PolicyLoadError, type PolicyPaths } from './loader.js';

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
    return new PolicyStore(paths, prepare(paths, `${storeId}-0`, actions), storeId, actions);
  }

  get current(): PolicyEngine {
    return this.engine;
  }

  onSwap(listener: (engine: PolicyEngine) => void): void {
    this.listeners.push(listener);
  }

  reload(): ReloadResult {
    const nextSlot = this.slot ^ 1;
    let next: PolicyEngine;
    try {
      next = prepare(this.paths, `${this.storeId}-${nextSlot}`, this.actions);
    } catch (err) {
      if (err instanceof PolicyLoadError) return { ok: false, problems: err.problems };
      return { ok: false, problems: [String((err as Error)?.message ?? err)] };
    }
    if (next.version.version === this.engine.version.version) return { ok: true, version: next.version.version, changed: false };
    this.slot = nextSlot;
    this.engine = next;
    for (const listener of this.listeners) listener(next);
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
      timer = setTimeout(() => onResult(this.reload()), debounceMs);
      timer.unref();
    };
    const add = (target: string, filter?: string): void => {
      try {
        const w = watch(target, { persistent: false }, (_event, name) => {
          if (filter === undefined || name === null || name === filter) trigger();
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

function prepare(paths: PolicyPaths, slot: string, actions: readonly string[]): PolicyEngine {
  const version = loadPolicyVersion(paths);
  const engine = PolicyEngine.prepare(version, slot, { actions });
  if (!engine.ok) throw new PolicyLoadError([`cedar-wasm refused the policy set: ${engine.message ?? engine.code}`]);
  return engine.value;
}
