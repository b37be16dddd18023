// mandate.tasks.v1.Tasks over gRPC. The caller is identified by the same identify stage as a
// Check: its JWT-SVID in the `authorization` metadata. Every refusal is a gRPC status whose
// details start with the reason code ("policy_denied: ...").

import { X509Certificate } from 'node:crypto';
import type { ServerCall, UnaryCallback, ServiceImplementation } from './grpc-server.js';
import type { DecodedRequest } from '../check/decode.js';
import type { Identifier } from '../check/identify.js';
import { REASONS, type Denial, type Outcome } from '../core/reasons.js';
import type { KeyRing } from '../identity/task-keys.js';
import type { TaskManager } from '../tasks/manager.js';
import type { TaskState } from '../tasks/store.js';
import type { Logger } from '../telemetry/log.js';
import type { Telemetry } from '../telemetry/telemetry.js';
import { uriSans } from '../identity/x509.js';
import type { Identity } from '../core/identity.js';

type Call = ServerCall<Record<string, unknown>>;

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

/**
 * The caller as the identify stage sees a Check: the TLS client certificate (verified against
 * tls.clientCa during the handshake) as the mTLS peer, reported the way Envoy reports one (its
 * first URI SAN as principal, the leaf as URL-encoded PEM, so it gets the full X.509-SVID
 * checks), and the JWT-SVID from the metadata.
 */
function asRequest(call: Call, now: number): DecodedRequest {
  const headers = new Map<string, string>();
  const auth = call.metadata.get('authorization');
  if (auth.length === 1 && typeof auth[0] === 'string') headers.set('authorization', auth[0]);
  const empty = { address: '', port: 0, principal: '', certificate: '' };
  let source = empty;
  const peer = call.getAuthContext().sslPeerCertificate;
  if (peer?.raw !== undefined) {
    const cert = new X509Certificate(peer.raw);
    source = { ...empty, principal: uriSans(cert.subjectAltName)[0] ?? '', certificate: encodeURIComponent(cert.toString()) };
  }
  return { method: 'POST', path: '/', normalizedPath: '/', query: '', normalizedQuery: '', host: '', scheme: '', headers, body: null, source, destination: empty, extensions: {}, epochSeconds: now };
}

function metadataTraceHeaders(call: Call): Map<string, string> {
  const out = new Map<string, string>();
  for (const key of ['traceparent', 'tracestate', 'b3']) {
    const v = call.metadata.get(key);
    if (v.length === 1 && typeof v[0] === 'string') out.set(key, v[0]);
  }
  return out;
}

function fail(callback: UnaryCallback<unknown>, denial: Denial): void {
  callback({ code: REASONS[denial.code].grpcCode, details: `${denial.code}: ${denial.message ?? REASONS[denial.code].message}` });
}

function taskMessage(s: TaskState): Record<string, unknown> {
  const r = s.record;
  return {
    taskId: r.id, purpose: r.purpose, tenant: r.tenant, tools: r.tools, subject: r.subject ?? '', parentTaskId: r.parent ?? '',
    workload: r.workload, maxCalls: r.maxCalls ?? 0, calls: s.calls, createdAt: r.createdAt, expiresAt: r.expiresAt, endedAt: s.endedAt ?? 0,
    approvals: s.approvals.map((a) => ({ approvalId: a.id, taskId: a.taskId, scope: a.scope, approver: a.approver, expiresAt: a.expiresAt, argumentsDigest: a.argumentsDigest ?? '', uses: a.uses ?? 0 })),
    historyTools: s.history.tools,
    historyLabels: s.history.labels,
    historyEgress: s.history.egress,
    historyCounts: s.history.counts,
  };
}

export function tasksImplementation(manager: TaskManager, identifier: Identifier, keys: KeyRing, logger: Logger, telemetry: Telemetry | null = null): ServiceImplementation {
  /** Identifies the caller, runs the handler, maps the outcome; never lets an error escape. */
  const handle = <T>(name: string, run: (caller: Identity, req: Record<string, unknown>, now: number) => Promise<Outcome<T>>, toMessage: (v: T) => unknown) =>
    async (call: Call, callback: UnaryCallback<unknown>): Promise<void> => {
      const span = telemetry?.startTaskCall(name, metadataTraceHeaders(call)) ?? null;
      let code = 'internal_error';
      try {
        const now = nowSeconds();
        const caller = await identifier.identify(asRequest(call, now), now);
        if (!caller.ok) {
          code = caller.code;
          return fail(callback, caller);
        }
        const result = await run(caller.value, call.request, now);
        if (!result.ok) {
          code = result.code;
          return fail(callback, result);
        }
        code = 'ok';
        callback(null, toMessage(result.value));
        logger.info(`task api: ${name}`, { caller: caller.value.kind === 'anonymous' ? null : caller.value.spiffe.id });
      } catch (err) {
        logger.error(`task api: ${name} failed`, { error: String(err) });
        fail(callback, { ok: false, code: 'internal_error' });
      } finally {
        telemetry?.recordTaskCall(name, code, span);
      }
    };
  const str = (v: unknown): string => (typeof v === 'string' ? v : '');
  const num = (v: unknown): number => (typeof v === 'number' ? v : Number(v ?? 0));

  return {
    StartTask: handle(
      'StartTask',
      (caller, req, now) =>
        manager.start(caller, {
          purpose: str(req['purpose']),
          tenant: str(req['tenant']),
          tools: Array.isArray(req['tools']) ? (req['tools'] as string[]) : [],
          ttlSeconds: num(req['ttlSeconds']),
          maxCalls: num(req['maxCalls']) > 0 ? num(req['maxCalls']) : null,
          subject: str(req['subject']) || null,
          subjectToken: str(req['subjectToken']) || null,
          parentTaskId: str(req['parentTaskId']) || null,
          parentToken: str(req['parentToken']) || null,
        }, now),
      (s) => ({ token: s.token, expiresAt: s.expiresAt, taskId: s.task.id, grantedTools: s.task.tools, deniedTools: s.deniedTools, taskExpiresAt: s.task.expiresAt }),
    ),
    RenewToken: handle('RenewToken', (caller, req, now) => manager.renew(caller, str(req['taskId']), now), (t) => t),
    EndTask: handle('EndTask', (caller, req, now) => manager.end(caller, str(req['taskId']), now), () => ({})),
    GetTask: handle('GetTask', (caller, req, now) => manager.get(caller, str(req['taskId']), now), taskMessage),
    GrantApproval: handle(
      'GrantApproval',
      (caller, req, now) =>
        manager.grantApproval(caller, { taskId: str(req['taskId']), scope: str(req['scope']), ttlSeconds: num(req['ttlSeconds']), argumentsDigest: str(req['argumentsDigest']) || null, uses: num(req['uses']) > 0 ? num(req['uses']) : null }, now),
      (a) => ({ approvalId: a.id, taskId: a.taskId, scope: a.scope, approver: a.approver, expiresAt: a.expiresAt, argumentsDigest: a.argumentsDigest ?? '', uses: a.uses ?? 0 }),
    ),
    RevokeApproval: handle('RevokeApproval', (caller, req, now) => manager.revokeApproval(caller, str(req['taskId']), str(req['approvalId']), now), () => ({})),
    GetJwks: (_call: Call, callback: UnaryCallback<unknown>) => callback(null, { json: JSON.stringify(keys.jwks()) }),
  };
}
