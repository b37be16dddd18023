// Polls until a condition holds, for things that happen asynchronously (a file watch, a stream
// update, a reload); fails the test with what was awaited when it does not within timeoutMs.

import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';

export async function waitFor(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await condition()) return;
    await sleep(25);
  }
  assert.fail(`timed out waiting until ${what}`);
}
