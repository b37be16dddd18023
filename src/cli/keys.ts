// mandate keys rotate|jwks: the task-token signing keys in the configured key file. A running
// server picks up a rotation on SIGHUP; the previous key keeps verifying for the overlap.

import { parseArgs } from 'node:util';
import { UsageError } from './usage.js';
import { loadConfig } from '../config/load.js';
import { ConfigError } from '../config/fields.js';
import { KeyFileError, KeyRing } from '../identity/task-keys.js';

export async function runKeys(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const { values } = parseArgs({ args: rest, strict: true, options: { config: { type: 'string' }, overlap: { type: 'string' } } });
  if (sub !== 'rotate' && sub !== 'jwks') throw new UsageError(sub === undefined ? 'rotate or jwks?' : `unknown subcommand "${sub}"`);
  try {
    const config = loadConfig({ file: values.config ?? null });
    if (config.tasks === null) {
      process.stderr.write('mandate keys: the config has no tasks section\n');
      return 1;
    }
    // Only rotate writes: jwks reads the key file as it is (an absent one has no keys).
    const ring = KeyRing.open(config.tasks.keyFile, { create: sub === 'rotate' });
    if (sub === 'rotate') {
      const overlap = values.overlap === undefined ? config.tasks.keyOverlapSeconds : Number(values.overlap);
      if (!Number.isInteger(overlap) || overlap < 0) {
        process.stderr.write('mandate keys rotate: --overlap must be a number of seconds\n');
        return 1;
      }
      const kid = ring.rotate(overlap);
      process.stdout.write(`${JSON.stringify({ keyFile: config.tasks.keyFile, newKid: kid, previousKeyVerifiesForSeconds: overlap })}\n`);
      process.stderr.write('send SIGHUP to running servers so they sign with the new key\n');
      return 0;
    }
    if (sub === 'jwks') {
      process.stdout.write(`${JSON.stringify(ring.jwks(), null, 2)}\n`);
      return 0;
    }
    return 1;
  } catch (err) {
    if (err instanceof ConfigError || err instanceof KeyFileError) {
      process.stderr.write(`${err.message}\n`);
      return 1;
    }
    throw err;
  }
}
