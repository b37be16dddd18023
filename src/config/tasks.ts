// The `tasks` section: per-task credentials (transaction tokens) and where task state lives.

import { resolve } from 'node:path';
import { ConfigError, expectObject, readInteger, readString } from './fields.js';

export type TaskStoreConfig = { readonly kind: 'memory' } | { readonly kind: 'redis'; readonly url: string; readonly keyPrefix: string; readonly timeoutMs: number };
/** An issuer whose JWTs may name the subject a task acts for (RFC 8693 subject_token). */
export interface SubjectIssuerConfig {
  readonly issuer: string;
  /** Absolute path of its JWKS (JSON). */
  readonly jwks: string;
  /** The token's aud must contain this. */
  readonly audience: string;
}

export type TenantSource = { readonly header: string } | { readonly param: string } | null;

export interface TasksConfig {
  /** `iss` of issued tokens. */
  readonly issuer: string;
  /** `aud` of issued tokens: the trust domain (IETF transaction tokens draft §4.2). */
  readonly audience: string;
  readonly keyFile: string;
  readonly tokenTtlSeconds: number;
  readonly maxTaskTtlSeconds: number;
  /** Task lifetime when StartTask asks for none. */
  readonly defaultTaskTtlSeconds: number;
  readonly keyOverlapSeconds: number;
  readonly maxApprovalTtlSeconds: number;
  readonly store: TaskStoreConfig;
  /** Issuers whose JWTs may name a task's subject; none: StartTask sets no subject. */
  readonly subjectIssuers: readonly SubjectIssuerConfig[];
  /** How far back a workload's history (context.workload.history) reaches, across its tasks. */
  readonly workloadHistorySeconds: number;
  /** Where a request names the tenant it targets; compared with the task's tenant. */
  readonly tenantFrom: TenantSource;
}

export const TASK_DEFAULTS = Object.freeze({
  issuer: 'mandate',
  keyFile: '.mandate/task-keys.json',
  tokenTtlSeconds: 300,
  maxTaskTtlSeconds: 3600,
  defaultTaskTtlSeconds: 900,
  keyOverlapSeconds: 3600,
  maxApprovalTtlSeconds: 3600,
  redisKeyPrefix: 'mandate:',
  // Each task-store operation on the decision path gives up after this, well inside Envoy's
  // ext_authz timeout (250 ms in envoy/envoy.yaml): the caller gets the coded state_unavailable,
  // not Envoy's generic 403 for a decision point that timed out.
  storeTimeoutMs: 100,
  // A workload's history across its tasks: an hour covers an agent's working session, so a
  // fresh task does not launder what the workload read in the last one.
  workloadHistorySeconds: 3600,
});

export function parseTasksConfig(raw: unknown, baseDir: string, trustDomains: readonly string[]): TasksConfig | null {
  if (raw === undefined) return null;
  const f = 'config.tasks';
  const t = expectObject(raw, f, ['issuer', 'audience', 'keyFile', 'tokenTtlSeconds', 'maxTaskTtlSeconds', 'defaultTaskTtlSeconds', 'keyOverlapSeconds', 'maxApprovalTtlSeconds', 'store', 'tenantFrom', 'workloadHistorySeconds', 'subjectIssuers']);
  const audience = readString(t, 'audience', f, trustDomains[0] ?? '');
  if (audience === '') throw new ConfigError(`${f}.audience`, 'is required when trustDomains is empty');

  let store: TaskStoreConfig = { kind: 'memory' };
  const s = t['store'];
  if (s !== undefined && s !== 'memory') {
    const so = expectObject(s, `${f}.store`, ['redis', 'keyPrefix', 'timeoutMs']);
    const url = readString(so, 'redis', `${f}.store`, '');
    if (!/^rediss?:\/\//.test(url)) throw new ConfigError(`${f}.store.redis`, 'must be a redis:// or rediss:// URL');
    store = { kind: 'redis', url, keyPrefix: readString(so, 'keyPrefix', `${f}.store`, TASK_DEFAULTS.redisKeyPrefix), timeoutMs: readInteger(so, 'timeoutMs', `${f}.store`, TASK_DEFAULTS.storeTimeoutMs, 10, 10_000) };
  }

  let tenantFrom: TenantSource = null;
  if (t['tenantFrom'] !== undefined) {
    const tf = expectObject(t['tenantFrom'], `${f}.tenantFrom`, ['header', 'param']);
    const header = readString(tf, 'header', `${f}.tenantFrom`, null);
    const param = readString(tf, 'param', `${f}.tenantFrom`, null);
    if ((header === null) === (param === null)) throw new ConfigError(`${f}.tenantFrom`, 'needs exactly one of header or param');
    tenantFrom = header !== null ? { header: header.toLowerCase() } : { param: param as string };
  }

  const tokenTtlSeconds = readInteger(t, 'tokenTtlSeconds', f, TASK_DEFAULTS.tokenTtlSeconds, 10, 3600);
  const maxTaskTtlSeconds = readInteger(t, 'maxTaskTtlSeconds', f, TASK_DEFAULTS.maxTaskTtlSeconds, 10, 7 * 86_400);
  return Object.freeze({
    issuer: readString(t, 'issuer', f, TASK_DEFAULTS.issuer),
    audience,
    keyFile: resolve(baseDir, readString(t, 'keyFile', f, TASK_DEFAULTS.keyFile)),
    tokenTtlSeconds,
    maxTaskTtlSeconds,
    defaultTaskTtlSeconds: Math.min(readInteger(t, 'defaultTaskTtlSeconds', f, TASK_DEFAULTS.defaultTaskTtlSeconds, 10, 7 * 86_400), maxTaskTtlSeconds),
    keyOverlapSeconds: readInteger(t, 'keyOverlapSeconds', f, TASK_DEFAULTS.keyOverlapSeconds, 0, 30 * 86_400),
    maxApprovalTtlSeconds: readInteger(t, 'maxApprovalTtlSeconds', f, TASK_DEFAULTS.maxApprovalTtlSeconds, 10, 7 * 86_400),
    workloadHistorySeconds: readInteger(t, 'workloadHistorySeconds', f, TASK_DEFAULTS.workloadHistorySeconds, 60, 7 * 86_400),
    subjectIssuers: Object.freeze(parseSubjectIssuers(t['subjectIssuers'], `${f}.subjectIssuers`, baseDir)),
    store: Object.freeze(store),
    tenantFrom,
  });
}

function parseSubjectIssuers(raw: unknown, field: string, baseDir: string): SubjectIssuerConfig[] {
  if (raw === undefined) return [];
  if (!Array.isArray(raw)) throw new ConfigError(field, 'must be a list of { issuer, jwks, audience }');
  const seen = new Set<string>();
  return raw.map((item: unknown, i) => {
    const f = `${field}[${i}]`;
    const o = expectObject(item, f, ['issuer', 'jwks', 'audience']);
    const issuer = readString(o, 'issuer', f, '');
    const jwks = readString(o, 'jwks', f, '');
    const audience = readString(o, 'audience', f, '');
    if (issuer === '' || jwks === '' || audience === '') throw new ConfigError(f, 'needs issuer, jwks (a JWKS file) and audience');
    if (seen.has(issuer)) throw new ConfigError(`${f}.issuer`, `"${issuer}" is listed twice`);
    seen.add(issuer);
    return Object.freeze({ issuer, jwks: resolve(baseDir, jwks), audience });
  });
}
