import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RouteTable, splitSlash } from '../../src/check/routes.js';
import { ConfigError } from '../../src/config/fields.js';
import type { RouteConfig } from '../../src/config/types.js';

function route(method: RouteConfig['method'], path: string, resource: string | null = null): RouteConfig {
  return { method, path, resource, body: false, tool: null, requireTask: null, matrixParams: false, methodOverride: null, mcp: null, origin: `test ${method} ${path}` };
}

const table = new RouteTable(
  [
    route('GET', '/'),
    route('GET', '/tickets'),
    route('GET', '/tickets/{id}', 'Ticket::"{id}"'),
    route('GET', '/tickets/export'),
    route('POST', '/tickets/{id}/comments', 'Ticket::"{id}"'),
    route('GET', '/orgs/{org}/repos/{repo}', 'Repo::"{org}/{repo}"'),
  ],
  'gateway',
);

describe('RouteTable.match', () => {
  const cases: [string, string, string | null, Record<string, string>, string | null][] = [
    // method, path, expected action, params, expected resource
    ['GET', '/', 'GET /', {}, 'Application::gateway'],
    ['GET', '/tickets', 'GET /tickets', {}, 'Application::gateway'],
    ['GET', '/tickets/T-1', 'GET /tickets/{id}', { id: 'T-1' }, 'Ticket::T-1'],
    ['GET', '/tickets/export', 'GET /tickets/export', {}, 'Application::gateway'],
    ['POST', '/tickets/9/comments', 'POST /tickets/{id}/comments', { id: '9' }, 'Ticket::9'],
    ['GET', '/orgs/acme/repos/api', 'GET /orgs/{org}/repos/{repo}', { org: 'acme', repo: 'api' }, 'Repo::acme/api'],
    ['GET', '/tickets/a%20b', 'GET /tickets/{id}', { id: 'a b' }, 'Ticket::a b'],
    ['DELETE', '/tickets/1', null, {}, null],
    ['GET', '/tickets/1/comments', null, {}, null],
    ['GET', '/nope', null, {}, null],
    ['GET', '/tickets/', null, {}, null],
  ];
  for (const [method, path, action, params, resource] of cases) {
    it(`${method} ${path} -> ${action ?? 'no route'}`, () => {
      const m = table.match(method, path);
      assert.ok(m.ok);
      if (action === null) return assert.equal(m.value, null);
      assert.ok(m.value !== null);
      assert.equal(m.value.route.action, action);
      assert.deepEqual(m.value.params, params);
      assert.equal(`${m.value.route.resourceType}::${m.value.route.buildResourceId(m.value.params)}`, resource);
    });
  }

  const refused: [string, string][] = [
    ['/tickets//1', 'empty segment'],
    ['/tickets/./1', 'dot segment'],
    ['/tickets/../admin', 'dot-dot segment'],
    ['/tickets/a%2Fb', 'encoded slash in a parameter'],
    ['/tickets/a%5cb', 'encoded backslash in a parameter'],
    ['/tickets/%E0%A4%A', 'broken percent-encoding'],
    ['/tickets/%2e%2e', 'encoded dot-dot'],
    // Lookalikes of the literal segment "export" beside {id}: a router that compares segments
    // case-insensitively (Express by default, ASP.NET Core) or decoded (Go, Spring, Flask) runs
    // the export handler while a parameter match would have decided GET /tickets/{id}.
    ['/tickets/Export', 'another case of a literal segment'],
    ['/tickets/EXPORT', 'upper case of a literal segment'],
    ['/tickets/%65xport', 'an escaped letter of a literal segment'],
    ['/tickets/%45XPORT', 'an escaped letter and another case'],
    ['/tickets/export%C2%AD', 'a literal segment with an escaped soft hyphen'],
    ['/tickets/%EF%BD%85xport', 'a literal segment with an escaped fullwidth letter (NFKC)'],
    ['/tickets/e%E2%80%8Bxport', 'a literal segment with an escaped zero-width space'],
    ['/%74ickets/T-1', 'an escaped letter of a literal segment higher up'],
    ['/TICKETS/T-1', 'another case of a literal segment higher up'],
    ['/ORGS/acme/repos/api', 'another case of the first segment'],
    ['/orgs/acme/REPOS/api', 'another case of a literal segment between parameters'],
  ];
  for (const [path, why] of refused) {
    it(`refuses ${why} with bad_request`, () => {
      const m = table.match('GET', path);
      assert.equal(m.ok, false);
      assert.equal(!m.ok && m.code, 'bad_request');
    });
  }
});

describe('RouteTable construction', () => {
  const bad: [RouteConfig[], RegExp][] = [
    [[route('GET', '/a/{id}'), route('GET', '/a/{other}')], /matches the same requests/],
    [[route('GET', 'tickets')], /must start with "\/"/],
    [[route('GET', '/a/{id}x')], /invalid segment/],
    [[route('GET', '/a/{id}/{id}')], /repeats a parameter/],
    [[route('GET', '/a/{id}', 'Ticket::"{nope}"')], /not a parameter/],
    [[route('GET', '/a', 'not an entity')], /not a Cedar entity reference/],
    [[route('GET', '/a/export'), route('GET', '/a/Export')], /read as "export" of another route/],
    [[route('GET', '/a/b'), route('POST', '/a/x'), route('GET', '/a/%62')], /read as "b" of another route/],
  ];
  for (const [routes, message] of bad) {
    it(`rejects ${routes.map((r) => `${r.path} ${r.resource ?? ''}`).join(' + ')}`, () => {
      assert.throws(() => new RouteTable(routes, 'app'), (err: unknown) => err instanceof ConfigError && message.test(err.message));
    });
  }
});

describe('splitSlash', () => {
  it("splits as String.prototype.split('/') does, on every arrangement of slashes", () => {
    const cases = ['', '/', '//', 'a', '/a', 'a/', '/a/', '/a//b', '///a///', '/tickets/T-1042', '/a/b/c/d/e/f', 'é/\u{1F600}/x', '/%2F/;x/'];
    // Every string of up to five characters over "/", "a" and "b".
    const all = [''];
    for (let n = 0; n < 5; n++) for (const s of [...all]) for (const c of ['/', 'a', 'b']) if (s.length === n) all.push(s + c);
    for (const s of [...cases, ...all]) assert.deepEqual(splitSlash(s), s.split('/'), JSON.stringify(s));
  });
});
