// The one import point of cedar-wasm. Its V8 flags (cedar-flags.ts) are set first: a module's
// imports are evaluated in the order they are written.

import './cedar-flags.js';
import { schemaToJsonWithResolvedTypes as resolveSchemaText } from '@cedar-policy/cedar-wasm/nodejs';

export * from '@cedar-policy/cedar-wasm/nodejs';
export type * from '@cedar-policy/cedar-wasm/nodejs';

const resolvedSchemas = new Map<string, ReturnType<typeof resolveSchemaText>>();

/**
 * cedar-wasm's schemaToJsonWithResolvedTypes, remembered per schema text: loading a version
 * asks for the same schema's JSON from five analyses, ~25-40 ms each (the schema is parsed in
 * wasm every time). Callers only read the answer (projection-plan.ts clones before changing).
 */
export function schemaToJsonWithResolvedTypes(schemaText: string): ReturnType<typeof resolveSchemaText> {
  let answer = resolvedSchemas.get(schemaText);
  if (answer === undefined) {
    answer = resolveSchemaText(schemaText);
    if (resolvedSchemas.size >= 4) resolvedSchemas.delete(resolvedSchemas.keys().next().value as string);
    resolvedSchemas.set(schemaText, answer);
  }
  return answer;
}
