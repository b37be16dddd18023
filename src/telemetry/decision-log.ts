// The decision log: one JSON line per decision, for review after the fact. Lines are queued
// and written asynchronously; when the sink falls behind and the queue holds more than
// maxBufferBytes, new lines are dropped and counted, never waited for: a slow disk or a slow
// reader of stdout must not delay a decision.
//
// What a line holds is chosen here, from the decision, not from the request: no headers, no
// body, no certificate, so no credential can reach the log by this path.

import { createWriteStream, type WriteStream } from 'node:fs';
import type { Decision } from '../check/pipeline.js';

export interface DecisionLogStats {
  written: number;
  dropped: number;
  failed: number;
}

export interface DecisionLogLine {
  decisionId: string;
  time: string;
  decision: 'allow' | 'deny';
  code: string | null;
  workload: string | null;
  task: string | null;
  action: string | null;
  resource: string | null;
  determiningPolicies: readonly string[];
  errors: readonly string[];
  message?: string;
  latencyUs: number;
  policyVersion: string;
}

export function toLogLine(decision: Decision, latencyUs: number, now = Date.now()): DecisionLogLine {
  const line: DecisionLogLine = {
    decisionId: decision.decisionId,
    time: new Date(now).toISOString(),
    decision: decision.allowed ? 'allow' : 'deny',
    code: decision.code,
    workload: decision.identity !== null && decision.identity.kind !== 'anonymous' ? decision.identity.spiffe.id : null,
    task: decision.taskId,
    action: decision.action,
    resource: decision.resource,
    determiningPolicies: decision.determining,
    errors: decision.errors,
    latencyUs: Math.round(latencyUs),
    policyVersion: decision.policyVersion,
  };
  if (decision.message !== null) line.message = decision.message;
  return line;
}

export class DecisionLog {
  readonly stats: DecisionLogStats = { written: 0, dropped: 0, failed: 0 };
  private queue: string[] = [];
  private queuedBytes = 0;
  private writing = false;
  private closed = false;

  private constructor(
    private readonly stream: WriteStream,
    private readonly maxBufferBytes: number,
  ) {
    stream.on('error', () => {
      this.stats.failed++;
    });
  }

  /** sink: 'stdout' or a file path (appended to). */
  static open(sink: string, maxBufferBytes: number): DecisionLog {
    const stream = sink === 'stdout' ? createWriteStream('', { fd: 1, autoClose: false }) : createWriteStream(sink, { flags: 'a', mode: 0o600 });
    return new DecisionLog(stream, maxBufferBytes);
  }

  record(decision: Decision, latencyUs: number): void {
    if (this.closed) return;
    const text = `${JSON.stringify(toLogLine(decision, latencyUs))}\n`;
    if (this.queuedBytes + text.length > this.maxBufferBytes) {
      this.stats.dropped++;
      return;
    }
    this.queue.push(text);
    this.queuedBytes += text.length;
    if (!this.writing) {
      this.writing = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    if (this.queue.length === 0) {
      this.writing = false;
      return;
    }
    const batch = this.queue.join('');
    const count = this.queue.length;
    this.queue = [];
    this.stream.write(batch, (err) => {
      this.queuedBytes -= batch.length;
      if (err) this.stats.failed += count;
      else this.stats.written += count;
      this.flush();
    });
  }

  /** Writes what is queued, then closes the sink. */
  close(): Promise<void> {
    this.closed = true;
    return new Promise((resolveClose) => {
      const wait = (): void => {
        if (this.writing) setTimeout(wait, 5);
        else this.stream.end(() => resolveClose());
      };
      wait();
    });
  }
}
