import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, it } from 'node:test';
import { REASONS, REASON_CODES } from '../../src/core/reasons.js';
import { kPackageRoot } from '../../src/package-root.js';

describe('the reason-code catalogue', () => {
  const doc = readFileSync(resolve(kPackageRoot, 'docs/decision-model.md'), 'utf8');

  for (const code of REASON_CODES) {
    it(`documents ${code} with the status the code uses`, () => {
      const row = new RegExp(`^\\| \`${code}\` \\| (\\d+) \\| [A-Z_]+ \\((\\d+)\\) \\|`, 'm').exec(doc);
      assert.ok(row, `docs/decision-model.md has a row for ${code}`);
      assert.equal(Number(row[1]), REASONS[code].httpStatus);
      assert.equal(Number(row[2]), REASONS[code].grpcCode);
    });
  }

  it('never answers a deny with gRPC OK or an HTTP success status', () => {
    for (const code of REASON_CODES) {
      assert.notEqual(REASONS[code].grpcCode, 0, code);
      assert.ok(REASONS[code].httpStatus >= 400, code);
    }
  });
});
