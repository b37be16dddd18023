// The one import point of cedar-wasm. Node 20's V8 (11.3) can abort the whole process with
// "Fatal error ... unreachable code" in Deoptimizer::DoComputeBuiltinContinuation when a
// TurboFan-optimized caller that inlined a JS->Wasm call deoptimizes. Measured here: the
// in-process benchmark (about 30,000 evaluations interleaved with other code) aborted in 3 of
// 6 runs by default and in 0 of 6 with the inlining off. A decision point must not crash, so
// the inlining is turned off before any caller of cedar-wasm is optimized (the flag exists in
// Node 20 and 22; a V8 without it would print one warning and go on).

import { setFlagsFromString } from 'node:v8';

setFlagsFromString('--no-turbo-inline-js-wasm-calls');

export * from '@cedar-policy/cedar-wasm/nodejs';
export type * from '@cedar-policy/cedar-wasm/nodejs';
