// Everything a decision needs, loaded once and checked: config, routes, policies. Shared by
// serve, check and validate so the three can never disagree about what is loaded.

import { RouteTable } from '../check/routes.js';
import { createDecisionState, type DecisionState } from '../check/pipeline.js';
import { ConfigError, loadConfig } from '../config/load.js';
import type { MandateConfig } from '../config/types.js';
import { PolicyLoadError } from '../policy/loader.js';
import { PolicyStore } from '../policy/store.js';
import { Identifier } from '../check/identify.js';
import { BundleError, BundleSet } from '../identity/bundles.js';
import { WorkloadGroups } from '../identity/groups.js';

export interface Runtime {
  readonly config: MandateConfig;
  readonly routes: RouteTable;
  readonly store: PolicyStore;
  readonly bundles: BundleSet;
  readonly identifier: Identifier;
  readonly groups: WorkloadGroups;
  state(): DecisionState;
}

/** Problems as lines for the user: `field: message` or `file:line: message`. */
export class StartupError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(problems.join('\n'));
    this.name = 'StartupError';
  }
}

export function loadRuntime(file: string | null, listen?: string): Runtime {
  try {
    const config = loadConfig({ file, listen });
    const routes = new RouteTable(config.routes, config.application);
    const store = PolicyStore.open(config);
    const bundles = BundleSet.open(config.identity.bundles);
    const identifier = new Identifier(config, bundles);
    const groups = new WorkloadGroups(config.identity.groups);
    return { config, routes, store, bundles, identifier, groups, state: () => createDecisionState(config, routes, store.current, identifier, groups) };
  } catch (err) {
    if (err instanceof ConfigError) throw new StartupError([err.message]);
    if (err instanceof PolicyLoadError) throw new StartupError(err.problems);
    if (err instanceof BundleError) throw new StartupError([err.message]);
    throw err;
  }
}
