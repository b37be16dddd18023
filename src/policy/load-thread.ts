// Loading a policy version in a short-lived thread (load-worker.ts), for two reasons measured
// at 10,000 policies: the load takes ~9 s (a reload done on the main thread stalls every
// decision that long), and the wasm memory it grows (~95 MB) is never given back by the
// thread that used it. The thread ends after one load and takes that memory with it.
//
// Startup is synchronous (nothing is served yet): it blocks on Atomics.wait. Small versions are
// loaded in place at startup, where a thread's ~70 ms start would cost more than it saves.

import { statSync } from 'node:fs';
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import { internStrings } from './intern.js';
import { listPolicyFiles, loadPolicyVersion, PolicyLoadError, type PolicyPaths, type PolicyVersion } from './loader.js';

export type LoadReply = { readonly ok: true; readonly version: PolicyVersion } | { readonly ok: false; readonly problems: readonly string[] };

/** Versions whose files add up to at least this many bytes are loaded in a thread at startup. */
export const THREAD_LOAD_MIN_BYTES = 256 * 1024;
/** A load that has not answered by then is abandoned (the thread is stopped). */
const LOAD_TIMEOUT_MS = 10 * 60_000;

const WORKER_URL = new URL('./load-worker.js', import.meta.url);

function start(paths: PolicyPaths): { worker: Worker; port: MessagePort; done: Int32Array } {
  const { port1, port2 } = new MessageChannel();
  const done = new Int32Array(new SharedArrayBuffer(4));
  // Plain fields only: the paths object may carry the whole config.
  const plain: PolicyPaths = { policies: paths.policies, schema: paths.schema, entities: paths.entities, allowEmptyPolicies: paths.allowEmptyPolicies === true, routeNeeds: paths.routeNeeds ?? [] };
  const worker = new Worker(WORKER_URL, { workerData: { paths: plain, port: port2, done }, transferList: [port2] });
  return { worker, port: port1, done };
}

function unwrap(reply: LoadReply): PolicyVersion {
  if (!reply.ok) throw new PolicyLoadError(reply.problems);
  // Structured clone does not carry Object.freeze, nor the sharing of equal strings.
  const v = internStrings(reply.version);
  return Object.freeze({ ...v, policies: Object.freeze(v.policies), entities: Object.freeze(v.entities) });
}

/** Total size of the files a version is loaded from (what decides thread or not at startup). */
export function versionBytes(paths: PolicyPaths): number {
  const files = [...listPolicyFiles(paths.policies, []), paths.schema, paths.entities];
  let total = 0;
  for (const file of files) {
    if (file === null) continue;
    try {
      total += statSync(file).size;
    } catch {
      // A missing file is the loader's to report.
    }
  }
  return total;
}

/** Loads in a thread and blocks until it answers. Throws PolicyLoadError like loadPolicyVersion. */
export function loadPolicyVersionBlocking(paths: PolicyPaths): PolicyVersion {
  const { worker, port, done } = start(paths);
  try {
    if (Atomics.wait(done, 0, 0, LOAD_TIMEOUT_MS) === 'timed-out') throw new PolicyLoadError([`policy load did not finish within ${LOAD_TIMEOUT_MS / 1000} s`]);
    const received = receiveMessageOnPort(port);
    if (received === undefined) throw new PolicyLoadError(['policy load thread ended without an answer']);
    return unwrap(received.message as LoadReply);
  } finally {
    port.close();
    void worker.terminate();
  }
}

/** Loads in a thread without blocking the event loop (reloads while serving). */
export function loadPolicyVersionInThread(paths: PolicyPaths): Promise<PolicyVersion> {
  const { worker, port } = start(paths);
  // A reload still loading must not hold a draining server open: at exit it is dropped.
  worker.unref();
  port.unref();
  return new Promise<PolicyVersion>((resolve, reject) => {
    let settled = false;
    const timer = setTimeout(() => finish(() => reject(new PolicyLoadError([`policy load did not finish within ${LOAD_TIMEOUT_MS / 1000} s`]))), LOAD_TIMEOUT_MS);
    timer.unref();
    const finish = (settle: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      port.close();
      void worker.terminate();
      settle();
    };
    port.once('message', (reply: LoadReply) =>
      finish(() => {
        try {
          resolve(unwrap(reply));
        } catch (err) {
          reject(err);
        }
      }),
    );
    worker.once('error', (err) => finish(() => reject(new PolicyLoadError([`policy load thread failed: ${err.message}`]))));
    worker.once('exit', (code) => {
      // The answer is posted before the thread ends; give it a turn to arrive.
      setImmediate(() => finish(() => reject(new PolicyLoadError([`policy load thread ended (exit code ${code}) without an answer`]))));
    });
  });
}

/** At startup: in place for small versions, in a thread for large ones. */
export function loadPolicyVersionAtStartup(paths: PolicyPaths, threadMinBytes = THREAD_LOAD_MIN_BYTES): PolicyVersion {
  return versionBytes(paths) >= threadMinBytes ? loadPolicyVersionBlocking(paths) : loadPolicyVersion(paths);
}
