// The YAML a reader copies from the docs: every ```yaml block in docs/, envoy/README.md and
// README.md parses, and each block that is Mandate config (its top-level keys are config keys)
// is accepted by the config loader on top of a minimal config. A documented key that was
// renamed, or a snippet that is not valid YAML (an unquoted `{id}` in a flow map), fails here.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { parseConfig, TOP_KEYS } from '../../src/config/load.js';
import { kPackageRoot } from '../../src/package-root.js';

const FILES = [...readdirSync(join(kPackageRoot, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`), 'envoy/README.md', 'README.md'];
const MINIMAL = { policies: './policies', routes: [{ method: 'GET', path: '/' }], trustDomains: ['example.org'] };

function blocks(file: string): { line: number; text: string }[] {
  const text = readFileSync(join(kPackageRoot, file), 'utf8');
  return [...text.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => ({ line: text.slice(0, m.index).split('\n').length, text: m[1] as string }));
}

describe('YAML in the docs', () => {
  let configs = 0;
  for (const file of FILES) {
    for (const { line, text } of blocks(file)) {
      it(`${file}:${line} parses`, () => {
        const doc = parse(text) as Record<string, unknown>;
        assert.equal(typeof doc, 'object');
        const keys = Object.keys(doc ?? {});
        if (keys.length === 0 || !keys.every((k) => (TOP_KEYS as readonly string[]).includes(k))) return; // Envoy, Istio or Kubernetes YAML
        // Routes importing an OpenAPI file need the file: the rest of such a block is still read.
        const routes = Array.isArray(doc['routes']) ? (doc['routes'] as Record<string, unknown>[]).filter((r) => !('openapi' in r)) : undefined;
        const merged = { ...MINIMAL, ...doc, ...(routes === undefined ? {} : { routes: routes.length > 0 ? routes : MINIMAL.routes }) };
        // Relative to the example, whose files (the pinned tool list) a block may name.
        parseConfig(merged, join(kPackageRoot, 'examples/agent-gateway'), null, undefined, undefined, 'unix:///run/spire/sockets/agent.sock');
        configs++;
      });
    }
  }
  it('found Mandate config among them', () => assert.ok(configs >= 8, `${configs} config blocks`));
});
