// V8 flags for cedar-wasm, set before its module is compiled (cedar.ts imports this first).
//
// 1. Node 20's V8 (11.3) can abort the whole process with "Fatal error ... unreachable code" in
//    Deoptimizer::DoComputeBuiltinContinuation when a TurboFan-optimized caller that inlined a
//    JS->Wasm call deoptimizes. Measured here: the in-process benchmark (about 30,000
//    evaluations interleaved with other code) aborted in 3 of 6 runs by default and in 0 of 6
//    with the inlining off. A decision point must not crash, so the inlining is off.
// 2. Loading policies calls cedar-wasm's parser, validator and schema functions a few thousand
//    times in a burst, and V8's dynamic tiering sends each of those functions to TurboFan on
//    the way: ~500 of the ~900 ms loading the example took were optimizing compilations of code
//    that runs once. A 100x tiering budget lets that burst run on Liftoff (the example loads in
//    ~450 ms); code that stays hot (cedar-wasm evaluations in the pool, for policies that are
//    not compiled) still tiers up, after more calls: evaluating the example on cedar-wasm in a
//    loop, the first 500 calls are ~2x faster than with the default budget and calls 4,500 to
//    5,000 ~10% slower (180 against 165 us), converging after.
// A V8 without one of these flags prints one warning and goes on.

import { setFlagsFromString } from 'node:v8';

setFlagsFromString('--no-turbo-inline-js-wasm-calls');
setFlagsFromString('--wasm-tiering-budget=180000000');
