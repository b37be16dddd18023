import type { Decision } from '../../src/core/decision.js';
// One Decision to start from in tests that build responses or log lines by hand.


export function makeDecision(overrides: Partial<Decision> = {}): Decision {
  return {
    decisionId: '0b5e2f6c-2c55-4a4e-8a63-0e3f9b3f3d61',
    allowed: true,
    code: null,
    message: null,
    identity: { kind: 'x509', spiffe: { id: 'spiffe://example.org/ns/a', trustDomain: 'example.org', path: '/ns/a' }, jwt: null },
    action: 'GET /tickets/{id}',
    resource: 'Ticket::"1"',
    determining: ['support-read-tickets'],
    errors: [],
    policyVersion: 'sha256:0123456789abcdef',
    cedar: null,
    rpc: null,
    approval: null,
    taskId: null,
    evaluationPath: 'compiled',
    subject: null,
    evaluationUs: 0,
    policyDecision: null,
    ...overrides,
  };
}
