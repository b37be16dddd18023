// SPIFFE ID parsing against the rules of the SPIFFE-ID standard (§2.1 trust domain, §2.2 path,
// §2.3 lengths). Each row names the rule it exercises.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseSpiffeId } from '../../src/core/spiffe-id.js';

const td255 = `${'a'.repeat(251)}.org`;
const longPath = `/${'p'.repeat(2048 - 'spiffe://example.org/'.length)}`;

const VALID: [string, string, string, string][] = [
  // [id, trust domain, path, rule]
  ['spiffe://example.org', 'example.org', '', 'trust domain alone, no path'],
  ['spiffe://example.org/workload', 'example.org', '/workload', 'one segment'],
  ['spiffe://example.org/ns/prod/sa/api', 'example.org', '/ns/prod/sa/api', 'Kubernetes-style path'],
  ['spiffe://cluster.local/ns/default/sa/default', 'cluster.local', '/ns/default/sa/default', 'Istio default identity'],
  ['spiffe://a', 'a', '', 'one-character trust domain'],
  ['spiffe://example-domain_1.org/x', 'example-domain_1.org', '/x', 'trust domain with "-" and "_"'],
  ['spiffe://127.0.0.1/x', '127.0.0.1', '/x', 'dotted-quad IPv4 trust domain'],
  ['spiffe://example.org/Upper/Case', 'example.org', '/Upper/Case', 'upper case is allowed in the path'],
  ['spiffe://example.org/a.b-c_d', 'example.org', '/a.b-c_d', 'path segment with ".", "-", "_"'],
  ['spiffe://example.org/...', 'example.org', '/...', 'three dots is an ordinary segment'],
  ['spiffe://example.org/.hidden', 'example.org', '/.hidden', 'segment starting with a dot'],
  ['spiffe://example.org/..x', 'example.org', '/..x', 'segment starting with two dots'],
  ['spiffe://example.org/0/1/2', 'example.org', '/0/1/2', 'digit segments'],
  ['spiffe://.', '.', '', 'trust domain of a single dot (allowed characters only)'],
  ['spiffe://x-/y', 'x-', '/y', 'trust domain ending in "-"'],
  [`spiffe://${td255}`, td255, '', '255-byte trust domain is the maximum'],
  [`spiffe://example.org${longPath}`, 'example.org', longPath, '2048-byte ID is the maximum'],
];

const INVALID: [string, string][] = [
  // [id, rule]
  ['', 'empty string'],
  ['spiffe://', 'empty trust domain'],
  ['spiffe:///path', 'empty trust domain before a path'],
  ['http://example.org/x', 'wrong scheme'],
  ['SPIFFE://example.org/x', 'scheme is case-sensitive lower case'],
  ['spiffe:/example.org/x', 'missing "//"'],
  ['spiffe:example.org', 'missing "//" entirely'],
  ['example.org/x', 'no scheme'],
  ['spiffe://Example.org/x', 'upper case in trust domain'],
  ['spiffe://example.org:8080/x', 'port in trust domain'],
  ['spiffe://user@example.org/x', 'userinfo in trust domain'],
  ['spiffe://user:pass@example.org', 'userinfo with password'],
  ['spiffe://[::1]/x', 'IPv6 literal trust domain'],
  ['spiffe://exa mple.org', 'space in trust domain'],
  ['spiffe://example%2eorg', 'percent-encoding in trust domain'],
  ['spiffe://exämple.org', 'non-ASCII trust domain'],
  ['spiffe://example.org/', 'trailing slash on the trust domain'],
  ['spiffe://example.org/x/', 'trailing slash after a segment'],
  ['spiffe://example.org//x', 'empty segment'],
  ['spiffe://example.org/x//y', 'empty segment in the middle'],
  ['spiffe://example.org/.', 'dot segment'],
  ['spiffe://example.org/..', 'dot-dot segment'],
  ['spiffe://example.org/x/./y', 'dot segment in the middle'],
  ['spiffe://example.org/x/../y', 'dot-dot segment in the middle'],
  ['spiffe://example.org/x%20y', 'percent-encoding in the path'],
  ['spiffe://example.org/x?y=1', 'query'],
  ['spiffe://example.org/x#frag', 'fragment'],
  ['spiffe://example.org?x', 'query right after the trust domain'],
  ['spiffe://example.org#x', 'fragment right after the trust domain'],
  ['spiffe://example.org/x y', 'space in the path'],
  ['spiffe://example.org/x:y', 'colon in the path'],
  ['spiffe://example.org/x@y', 'at sign in the path'],
  ['spiffe://example.org/wörkload', 'non-ASCII path'],
  ['spiffe://example.org/x\\y', 'backslash in the path'],
  [' spiffe://example.org/x', 'leading space'],
  ['spiffe://example.org/x ', 'trailing space'],
  ['spiffe://example.org/x\n', 'trailing newline'],
  [`spiffe://${'a'.repeat(252)}.org`, '256-byte trust domain is too long'],
  [`spiffe://example.org${longPath}x`, '2049-byte ID is too long'],
];

describe('parseSpiffeId', () => {
  it('has a table of at least 40 IDs', () => {
    assert.ok(VALID.length + INVALID.length >= 40);
  });

  for (const [id, trustDomain, path, rule] of VALID) {
    it(`accepts ${rule}`, () => {
      const parsed = parseSpiffeId(id);
      assert.deepEqual(parsed, { ok: true, value: { id, trustDomain, path } });
    });
  }

  for (const [id, rule] of INVALID) {
    it(`refuses ${rule}`, () => {
      const parsed = parseSpiffeId(id);
      assert.equal(parsed.ok, false);
      assert.equal(!parsed.ok && parsed.code, 'invalid_identity');
    });
  }
});
