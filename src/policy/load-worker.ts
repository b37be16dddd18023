// A short-lived thread that loads one policy version (load-thread.ts starts it). cedar-wasm's
// memory only ever grows: parsing and validating 10,000 policies leaves ~95 MB of wasm memory
// behind in whichever thread did it. Done here, that memory goes away with the thread.
//
// The caller may be blocked in Atomics.wait until this answers, so every way this can fail,
// loading the loader (and cedar-wasm) included, ends in an answer.

import { workerData, type MessagePort } from 'node:worker_threads';
import type { PolicyPaths } from './loader.js';
import type { LoadReply } from './load-thread.js';

const { paths, port, done } = workerData as { paths: PolicyPaths; port: MessagePort; done: Int32Array };

let reply: LoadReply;
try {
  const { loadPolicyVersion } = await import('./loader.js');
  reply = { ok: true, version: loadPolicyVersion(paths) };
} catch (err) {
  const problems = (err as { problems?: unknown })?.problems;
  reply = Array.isArray(problems) ? { ok: false, problems: problems as string[] } : { ok: false, problems: [`policy load failed: ${(err as Error)?.message ?? String(err)}`] };
}
port.postMessage(reply);
port.close();
// The message is queued before the blocked caller wakes.
Atomics.store(done, 0, 1);
Atomics.notify(done, 0);
