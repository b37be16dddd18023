// The decision pipeline: decode -> identify -> map -> evaluate. `respond` turns the result into
// a CheckResponse; the server and `mandate check` both call exactly this.

import { METHOD_OVERRIDE_HEADERS, type MandateConfig } from '../config/types.js';
import { TXN_TOKEN_HEADER } from '../identity/txn-token.js';
import { DECISION_ID_HEADER, DRY_RUN_HEADER } from './respond.js';
import { INLINE_EVALUATOR, type Evaluation, type Evaluator, type PolicyEngine } from '../policy/engine.js';
import { decodeCheckRequest, PATH_OVERRIDE_HEADERS, type CheckRequestMessage, type DecodeRules } from './decode.js';
import type { Identifier } from './identify.js';
import type { WorkloadGroups } from '../identity/groups.js';
import { mapRequest, type MappedCall } from './map.js';
import { MCP_HEADERS } from './mcp.js';
import type { Outcome, ReasonCode } from '../core/reasons.js';
import type { RouteTable } from './routes.js';
import { afterCall, afterSpending, approvalFor, checkTaskState, historyAfter, readTaskView, recordCalls, resolveTask, taskContext, workloadContext, type TaskView } from './task.js';
import type { TaskDeps } from '../tasks/deps.js';
import type { TaskState, ToolTouch, WorkloadHistory } from '../tasks/store.js';
import type { Decision, EvaluationPath } from '../core/decision.js';
import { randomId } from '../core/ids.js';
import { andThen, type MaybePromise } from '../core/maybe.js';

export interface DecisionState {
  readonly config: MandateConfig;
  readonly routes: RouteTable;
  readonly engine: PolicyEngine;
  readonly identifier: Identifier;
  readonly groups: WorkloadGroups;
  /** null when task tokens are not enabled. */
  readonly tasks: TaskDeps | null;
  /** Inline on the main thread, or the worker pool (config evaluation.mode). */
  readonly evaluator: Evaluator;
  /** decodeRulesFor(config). */
  readonly decodeRules: DecodeRules;
}


/** The registry's labels and egress flag for a tool (static entity Tool::"<tool>"), for the task history. */
function toolTouch(state: DecisionState, tool: string | null): ToolTouch | null {
  if (tool === null) return null;
  // Read once per tool and policy version (the static entities are the version's): frozen, shared.
  let touches = TOUCHES.get(state.engine);
  if (touches === undefined) TOUCHES.set(state.engine, (touches = new Map()));
  let touch = touches.get(tool);
  if (touch === undefined) {
    const attrs = state.engine.staticEntity({ type: 'Tool', id: tool })?.attrs ?? {};
    const labels = Array.isArray(attrs['labels']) ? attrs['labels'].filter((l): l is string => typeof l === 'string') : [];
    // Tools are the routes' and the MCP servers' (any name a client sends): bounded like the other per-version memos.
    if (touches.size >= TOUCHES_KEPT) touches.clear();
    touches.set(tool, (touch = Object.freeze({ tool, labels: Object.freeze(labels), egress: attrs['egress'] === true })));
  }
  return touch;
}

const TOUCHES = new WeakMap<PolicyEngine, Map<string, ToolTouch>>();
const TOUCHES_KEPT = 4096;

export function createDecisionState(
  config: MandateConfig,
  routes: RouteTable,
  engine: PolicyEngine,
  identifier: Identifier,
  groups: WorkloadGroups,
  tasks: TaskDeps | null,
  evaluator: Evaluator = INLINE_EVALUATOR,
): DecisionState {
  return Object.freeze({ config, routes, engine, identifier, groups, tasks, evaluator, decodeRules: decodeRulesFor(config) });
}

export function decodeRulesFor(config: MandateConfig): DecodeRules {
  return Object.freeze({ readHeaders: headerNamesRead(config), forwardedHost: config.forwardedHost });
}

/**
 * Every request header name Mandate reads, or sets on an allowed request, with this configuration:
 * decode refuses a lone header that an upstream reading "_" as "-" takes for one of them.
 */
export function headerNamesRead(config: MandateConfig): ReadonlySet<string> {
  const names = new Set<string>(['authorization', TXN_TOKEN_HEADER, 'x-forwarded-client-cert', 'content-type', 'content-length', 'content-encoding', ...MCP_HEADERS, ...METHOD_OVERRIDE_HEADERS, ...PATH_OVERRIDE_HEADERS, DECISION_ID_HEADER, DRY_RUN_HEADER]);
  for (const name of config.contextHeaders) names.add(name);
  if (config.principalHeader !== null) names.add(config.principalHeader);
  if (config.identity.jwtSvid !== null) names.add(config.identity.jwtSvid.header);
  const tenantFrom = config.tasks?.tenantFrom;
  if (tenantFrom != null && 'header' in tenantFrom) names.add(tenantFrom.header);
  if (config.forwardedHost === 'refuse') names.add('x-forwarded-host');
  return names;
}

/** `deadline`: epoch ms after which the caller (Envoy) has given up; Infinity when it set none. */
export function decide(message: CheckRequestMessage, state: DecisionState, nowMs = Date.now(), deadline = Infinity): Promise<Decision> {
  try {
    const decision = decideNow(message, state, nowMs, deadline);
    return decision instanceof Promise ? decision : Promise.resolve(decision);
  } catch (err) {
    return Promise.reject(err);
  }
}

type Denied = (code: ReasonCode, msg: string | undefined, partial?: Partial<Decision>) => Decision;

/**
 * decide(), answered at once when every step answers from memory (cached tokens, the memory task
 * store, inline evaluation), else a promise (core/maybe.ts): the server's Check takes both.
 */
export function decideNow(message: CheckRequestMessage, state: DecisionState, nowMs = Date.now(), deadline = Infinity): MaybePromise<Decision> {
  const decisionId = randomId();
  const policyVersion = state.engine.version.version;
  const denied: Denied = (code, msg, partial = {}) => ({
    decisionId, allowed: false, code, message: msg ?? null, identity: null, action: null, resource: null,
    determining: [], errors: [], policyVersion, cedar: null, rpc: null, approval: null, taskId: null, subject: null, evaluationUs: 0, evaluationPath: null, policyDecision: null, ...partial,
  });
  // A bug, not a decision: deny, and say so.
  const failed = (err: unknown): Decision => denied('internal_error', `unexpected error: ${(err as Error)?.message ?? String(err)}`);
  try {
    const decision = decideSteps(message, state, nowMs, deadline, decisionId, policyVersion, denied);
    return decision instanceof Promise ? decision.catch(failed) : decision;
  } catch (err) {
    return failed(err);
  }
}

function decideSteps(message: CheckRequestMessage, state: DecisionState, nowMs: number, deadline: number, decisionId: string, policyVersion: string, denied: Denied): MaybePromise<Decision> {
  const nowSeconds = Math.floor(nowMs / 1000);
  // 1. decode
  const decoded = decodeCheckRequest(message, state.config.limits, nowSeconds, state.decodeRules);
  if (!decoded.ok) return denied(decoded.code, decoded.message);
  // 2. identify
  return andThen(state.identifier.identify(decoded.value, nowSeconds), (identity): MaybePromise<Decision> => {
    if (!identity.ok) return denied(identity.code, identity.message);
    // 3. map (an MCP body may hold several calls: each is decided, all must be allowed)
    const mapped = mapRequest(decoded.value, identity.value, state);
    if (!mapped.ok) {
      const rpc = 'rpcCode' in mapped && mapped.rpcCode !== undefined ? { id: mapped.rpcId ?? null, errorCode: mapped.rpcCode, denyStatus: 400 as const } : null;
      return denied(mapped.code, mapped.message, { identity: identity.value, rpc });
    }
    const { cedar, calls, route } = mapped.value;
    const rpc = route.mcp === null ? null : { id: mapped.value.rpcId, errorCode: null, denyStatus: route.mcp.denyStatus };
    const about = { identity: identity.value, action: cedar.action.id, resource: `${cedar.resource.type}::"${cedar.resource.id}"`, cedar, rpc, taskId: null as string | null, subject: null as string | null, evaluationUs: 0, evaluationPath: null as EvaluationPath | null };
    // 4. task: the task token, its binding and the task's state
    // Whether the policies of these calls read what recorded calls change (history-reads.ts):
    // then the workload's history is fetched too, and the calls are recorded by compare-and-record.
    const dependent = calls.some((c) => state.engine.history.dependsOnHistory(c.cedar.action.id));
    const anonymous = identity.value.kind === 'anonymous';
    // An allow, field by field (every Check that is allowed builds one: a spread of `about` copied it generically).
    const verdict = (outcome: CallsOutcome): Decision => (outcome.ok
      ? {
          decisionId, allowed: true, code: null, message: null, identity: about.identity, action: about.action, resource: about.resource, cedar: about.cedar, rpc: about.rpc,
          taskId: about.taskId, subject: about.subject, evaluationUs: about.evaluationUs, evaluationPath: about.evaluationPath, determining: outcome.determining, errors: outcome.errors, policyVersion, approval: null, policyDecision: 'allow',
        }
      : denied(outcome.code, outcome.message, { ...about, ...outcome.about }));
    return andThen(resolveTask(decoded.value, identity.value, mapped.value.requiresTask, state.tasks, nowSeconds, dependent), (task): MaybePromise<Decision> => {
      if (!task.ok) return denied(task.code, task.message, { ...about, taskId: task.taskId ?? null });
      if (task.value === null || state.tasks === null) return andThen(evaluateCalls(state, calls, null, about, deadline, anonymous), verdict);
      // 5. evaluate every call in order, each against the task as the calls before it left it,
      // 6. then record them all at once against the state they were decided on. One decision at a
      //    time per task here; a conflict (another replica recorded calls meanwhile) decides again.
      const deps = state.tasks;
      const first = task.value;
      const taskId = first.task.record.id;
      about.taskId = taskId;
      about.subject = first.task.record.subject;
      // One attempt: live checks, every call in order, then one record of them all. null: another
      // call changed the task since (compare-and-record said so): decide again on the new state.
      const attempt = (view: TaskView, compare: boolean): MaybePromise<Decision | null> => {
        const live = checkTaskState(view.task, decoded.value, mapped.value.match, deps, nowSeconds);
        if (!live.ok) return denied(live.code, live.message, about);
        return andThen(evaluateCalls(state, calls, view, about, deadline, anonymous), (outcome): MaybePromise<Decision | null> => {
          if (!outcome.ok) return verdict(outcome);
          return andThen(recordCalls(deps.store, view.task, view.workload, nowSeconds, outcome.touches, outcome.spend, compare), (recorded): Decision | null => {
            if (recorded.ok) return verdict(outcome);
            if (recorded.code === 'conflict') return null;
            return denied(recorded.code, recorded.message, { ...about, determining: outcome.determining, errors: outcome.errors, policyDecision: 'allow' });
          });
        });
      };
      // Decided again, one decision of this task at a time, on the task as it is now.
      const serialized = (): Promise<Decision> => deps.locks.run(taskId, async (waited) => {
        // What resolveTask read is stale if another decision of this task ran meanwhile.
        let view = first;
        for (let n = 0; n < MAX_RECORD_ATTEMPTS; n++) {
          if (n > 0 || waited) {
            const reread = await readTaskView(deps.store, taskId, first.task.record.workload, nowSeconds, dependent);
            if (!reread.ok) return denied(reread.code, reread.message, about);
            view = reread.value;
          }
          const decided = await attempt(view, true);
          if (decided !== null) return decided;
          // Another replica recorded calls of this task since: after a short random pause, so that
          // two replicas do not keep colliding in step.
          await new Promise((r) => setTimeout(r, Math.random() * Math.min(n + 1, 5)));
        }
        return denied('state_unavailable', `the task's state changed under ${MAX_RECORD_ATTEMPTS} decisions in a row`, about);
      });
      // A decision that reads nothing recorded calls change (history-reads.ts) is recorded as it
      // is, in parallel with the task's other calls: the store keeps maxCalls and spends exact. Its
      // only conflict is a single-use approval another call spent meanwhile: decided again below.
      if (dependent) return serialized();
      return andThen(attempt(first, false), (decided) => decided ?? serialized());
    });
  });
}

/** A decision taken again this many times in a row because other replicas kept recording calls
 *  of the same task is refused (state_unavailable) rather than retried without end. */
const MAX_RECORD_ATTEMPTS = 32;

type CallsOutcome =
  | { readonly ok: true; readonly determining: readonly string[]; readonly errors: readonly string[]; readonly touches: readonly (ToolTouch | null)[]; readonly spend: readonly string[] }
  | { readonly ok: false; readonly code: ReasonCode; readonly message?: string | undefined; readonly about: Partial<Decision> };

/**
 * Decides the calls of one request in order; all must be allowed. Within a task each call sees
 * the task as the calls before it would leave it (afterCall): its budget, its history, its
 * per-tool counts. Nothing is recorded here. At once when every evaluation is (inline).
 */
function evaluateCalls(state: DecisionState, calls: readonly MappedCall[], within: TaskView | null, about: { evaluationUs: number; evaluationPath: EvaluationPath | null }, deadline: number, anonymous: boolean): MaybePromise<CallsOutcome> {
  const run: CallsRun = { state, calls, about, deadline, anonymous, determining: [], errors: [], touches: [], spend: [], sim: within?.task ?? null, workload: within?.workload ?? null };
  return callsFrom(run, 0);
}

/** One request's calls being decided: what evaluateCalls carries from one call to the next. */
interface CallsRun {
  readonly state: DecisionState;
  readonly calls: readonly MappedCall[];
  readonly about: { evaluationUs: number; evaluationPath: EvaluationPath | null };
  readonly deadline: number;
  readonly anonymous: boolean;
  determining: readonly string[];
  errors: readonly string[];
  readonly touches: (ToolTouch | null)[];
  readonly spend: string[];
  sim: TaskState | null;
  workload: WorkloadHistory | null;
}

/** The calls from `from` on; waits only for an evaluation that answers with a promise (the pool). */
function callsFrom(run: CallsRun, from: number): MaybePromise<CallsOutcome> {
  const { state, calls } = run;
  for (let i = from; i < calls.length; i++) {
    const call = calls[i] as MappedCall;
    const context = call.cedar.context as Record<string, unknown>;
    const sim = run.sim;
    if (sim !== null) {
      if (sim.record.maxCalls !== null && sim.calls >= sim.record.maxCalls) return { ok: false, code: 'budget_exhausted', about: callAbout(call) };
      context['task'] = taskContext(sim, call.tool);
      // Only when a policy of the call reads it (else it was not fetched): history-reads.ts.
      if (run.workload !== null) context['workload'] = workloadContext(run.workload, call.tool);
      if (context['mcp'] !== undefined) (context['mcp'] as Record<string, unknown>)['approved'] = approvalFor(sim, call.tool, call.argumentsDigest) !== null;
    }
    const evalStarted = process.hrtime.bigint();
    const evaluated = state.evaluator.evaluate(state.engine, call.cedar, run.deadline);
    if (evaluated instanceof Promise) {
      return evaluated.then((e) => {
        const stop = afterEvaluation(run, i, e, evalStarted);
        return stop ?? callsFrom(run, i + 1);
      });
    }
    const stop = afterEvaluation(run, i, evaluated, evalStarted);
    if (stop !== null) return stop;
  }
  return { ok: true, determining: run.determining, errors: run.errors, touches: run.touches, spend: run.spend };
}

const callAbout = (call: MappedCall): Partial<Decision> => ({ action: call.cedar.action.id, resource: `${call.cedar.resource.type}::"${call.cedar.resource.id}"`, cedar: call.cedar });

/** Call `i`'s evaluation taken into the run: a deny ends it (returned), an allow moves the task on (null). */
function afterEvaluation(run: CallsRun, i: number, evaluated: Outcome<Evaluation>, evalStarted: bigint): CallsOutcome | null {
  const { state, calls, about } = run;
  const call = calls[i] as MappedCall;
  about.evaluationUs += Number(process.hrtime.bigint() - evalStarted) / 1000;
  if (!evaluated.ok) return { ok: false, code: evaluated.code, message: evaluated.message, about: callAbout(call) };
  about.evaluationPath = evaluated.value.path;
  const { determining, errors } = evaluated.value;
  run.determining = determining;
  run.errors = errors;
  if (evaluated.value.decision !== 'allow') {
    const deniedAbout = { ...callAbout(call), determining, errors, policyDecision: 'deny' as const };
    // Every forbid that decided this deny is annotated @approval("..."): an approval would
    // unlock it, so say which. If any other policy also forbids it, an approval would not help.
    if (determining.length > 0 && determining.every((id) => state.engine.annotation(id, 'approval') !== undefined)) {
      const approval = { task: run.sim?.record.id ?? null, tool: call.tool ?? call.cedar.action.id, argumentsDigest: call.argumentsDigest };
      return { ok: false, code: 'approval_required', about: { ...deniedAbout, approval } };
    }
    return { ok: false, code: run.anonymous ? 'unauthenticated' : 'policy_denied', about: deniedAbout };
  }
  // What the task looks like after this call is only needed by the calls after it.
  const more = i < calls.length - 1;
  const touch = toolTouch(state, call.tool);
  run.touches.push(touch);
  const sim = run.sim;
  if (sim !== null) {
    // An allowed call that a counted approval covers spends one use of it (single-use approvals).
    const approval = approvalFor(sim, call.tool, call.argumentsDigest);
    if (approval !== null && approval.uses !== null) {
      run.spend.push(approval.id);
      if (more) run.sim = afterSpending(sim, approval);
    }
    if (more) run.sim = afterCall(run.sim as TaskState, touch);
  }
  if (run.workload !== null && more) run.workload = historyAfter(run.workload, touch);
  return null;
}
