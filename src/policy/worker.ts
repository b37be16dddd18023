// An evaluation worker (piscina): holds up to two policy versions preparsed in its own
// cedar-wasm instance, pushed by the main thread (pool.ts), and evaluates batches of Cedar
// requests against them. Synchronous, no timers, no file access.

import { deny } from '../core/reasons.js';
import { PolicyEngine } from './engine.js';
import { internStrings } from './intern.js';
import type { VersionPayload, WorkerRequest, WorkerResponse } from './pool-types.js';

/** The live version and the previous one (requests mapped just before a reload still name it). */
const engines = new Map<string, PolicyEngine>();
let nextSlot = 0;

function prepare(payload: VersionPayload): { ok: true; engine: PolicyEngine } | { ok: false; message: string } {
  const id = payload.version.version;
  const known = engines.get(id);
  if (known !== undefined) return { ok: true, engine: known };
  // Two slots, alternating: cedar-wasm replaces a preparsed set stored under a reused id.
  const slot = nextSlot;
  nextSlot ^= 1;
  // Prepared with the main thread's choices: they depend on the static entities, not sent here.
  const prepared = PolicyEngine.prepare(internStrings(payload.version), `worker-${slot}`, { actions: payload.actions, ...payload.derived });
  if (!prepared.ok) return { ok: false, message: prepared.message ?? prepared.code };
  for (const [versionId, engine] of engines) if (engine.slot === `worker-${slot}`) engines.delete(versionId);
  engines.set(id, prepared.value);
  return { ok: true, engine: prepared.value };
}

export default function handle(message: WorkerRequest): WorkerResponse {
  if (message.kind === 'prepare') {
    const out = prepare(message.payload);
    return out.ok ? { kind: 'prepared', versionId: message.payload.version.version, ok: true } : { kind: 'prepared', versionId: message.payload.version.version, ok: false, message: out.message };
  }
  let engine = engines.get(message.versionId);
  if (engine === undefined) {
    if (message.payload === undefined) return { kind: 'need-version', versionId: message.versionId };
    const out = prepare(message.payload);
    if (!out.ok) return { kind: 'evaluated', results: message.requests.map(() => deny('internal_error', `the evaluation worker cannot prepare the policy version: ${out.message}`)) };
    engine = out.engine;
  }
  const e = engine;
  return { kind: 'evaluated', results: message.requests.map((r) => e.evaluate(r)) };
}
