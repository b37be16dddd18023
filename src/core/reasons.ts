// The one catalogue of deny reasons. Every deny carries one of these codes; the table says
// how each is answered. Nothing else in the code base picks an HTTP or gRPC status for a deny,
// and nothing matches on message text.

// google.rpc.Code values (https://github.com/grpc/grpc/blob/master/doc/statuscodes.md).
export const GRPC_OK = 0;
export const GRPC_INVALID_ARGUMENT = 3;
export const GRPC_NOT_FOUND = 5;
export const GRPC_PERMISSION_DENIED = 7;
export const GRPC_RESOURCE_EXHAUSTED = 8;
export const GRPC_INTERNAL = 13;
export const GRPC_UNAVAILABLE = 14;
export const GRPC_UNAUTHENTICATED = 16;

export interface ReasonSpec {
  /** google.rpc.Code put in CheckResponse.status. Any non-zero code makes Envoy deny. */
  readonly grpcCode: number;
  /** HTTP status Envoy sends to the downstream client. */
  readonly httpStatus: number;
  /** Default message, safe to show to the caller (no secrets, no internals). */
  readonly message: string;
}

export const REASONS = {
  unauthenticated: {
    grpcCode: GRPC_UNAUTHENTICATED,
    httpStatus: 401,
    message: 'the request carries no workload identity and no policy permits anonymous access',
  },
  invalid_identity: {
    grpcCode: GRPC_UNAUTHENTICATED,
    httpStatus: 401,
    message: 'the peer identity is not a valid SPIFFE ID',
  },
  untrusted_domain: {
    grpcCode: GRPC_UNAUTHENTICATED,
    httpStatus: 401,
    message: 'the peer identity belongs to a trust domain this decision point does not trust',
  },
  invalid_token: {
    grpcCode: GRPC_UNAUTHENTICATED,
    httpStatus: 401,
    message: 'the workload token was refused',
  },
  token_expired: {
    grpcCode: GRPC_UNAUTHENTICATED,
    httpStatus: 401,
    message: 'the workload token has expired',
  },
  identity_conflict: {
    grpcCode: GRPC_UNAUTHENTICATED,
    httpStatus: 401,
    message: 'the request carries two identities that name different workloads',
  },
  no_route: {
    grpcCode: GRPC_PERMISSION_DENIED,
    httpStatus: 403,
    message: 'no route is configured for this method and path',
  },
  policy_denied: {
    grpcCode: GRPC_PERMISSION_DENIED,
    httpStatus: 403,
    message: 'denied by policy',
  },
  approval_required: {
    grpcCode: GRPC_PERMISSION_DENIED,
    httpStatus: 403,
    message: 'this call needs an approval; the deny says which one would unlock it',
  },
  task_required: {
    grpcCode: GRPC_PERMISSION_DENIED,
    httpStatus: 403,
    message: 'this route requires a task token (txn-token header)',
  },
  token_binding_mismatch: {
    grpcCode: GRPC_PERMISSION_DENIED,
    httpStatus: 403,
    message: 'the task token was issued to another workload',
  },
  task_revoked: {
    grpcCode: GRPC_PERMISSION_DENIED,
    httpStatus: 403,
    message: 'the task has ended, expired or is unknown',
  },
  tenant_mismatch: {
    grpcCode: GRPC_PERMISSION_DENIED,
    httpStatus: 403,
    message: 'the request targets a tenant other than the task\'s',
  },
  budget_exhausted: {
    grpcCode: GRPC_RESOURCE_EXHAUSTED,
    httpStatus: 429,
    message: 'the task has used all the calls it was granted',
  },
  not_found: {
    grpcCode: GRPC_NOT_FOUND,
    httpStatus: 404,
    message: 'no such task or approval',
  },
  state_unavailable: {
    grpcCode: GRPC_UNAVAILABLE,
    httpStatus: 503,
    message: 'task state cannot be read right now; the request is denied',
  },
  bad_request: {
    grpcCode: GRPC_INVALID_ARGUMENT,
    httpStatus: 400,
    message: 'the request cannot be decided as sent',
  },
  internal_error: {
    grpcCode: GRPC_INTERNAL,
    httpStatus: 500,
    message: 'the decision point failed to decide; the request is denied',
  },
  overloaded: {
    grpcCode: GRPC_UNAVAILABLE,
    httpStatus: 503,
    message: 'the decision point is overloaded or shutting down; the request is denied',
  },
} as const satisfies Record<string, ReasonSpec>;

export type ReasonCode = keyof typeof REASONS;

export const REASON_CODES = Object.freeze(Object.keys(REASONS) as ReasonCode[]);

/** A stage's result: a value, or a deny reason. Throwing is reserved for bugs. */
export type Outcome<T> = { readonly ok: true; readonly value: T } | Denial;

export interface Denial {
  readonly ok: false;
  readonly code: ReasonCode;
  /** Detail for the caller and the log; falls back to the catalogue's message. */
  readonly message?: string;
}

export function ok<T>(value: T): Outcome<T> {
  return { ok: true, value };
}

export function deny(code: ReasonCode, message?: string): Denial {
  return message === undefined ? { ok: false, code } : { ok: false, code, message };
}
