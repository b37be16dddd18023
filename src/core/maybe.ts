// A result now or later. The Check path answers from memory most of the time (token caches, the
// memory task store, compiled evaluation): those steps return their value as it is, and only a
// step that waits for I/O (a token verified for the first time, Redis, the worker pool) returns a
// promise. An async function's answer and each `await` are a promise and a turn of the microtask
// queue even for a value at hand (~25 promises per Check before; docs/performance.md).

export type MaybePromise<T> = T | Promise<T>;

/** `f` applied to the value: at once when it is here, once it is when it is a promise. */
export function andThen<T, U>(value: MaybePromise<T>, f: (v: T) => MaybePromise<U>): MaybePromise<U> {
  return value instanceof Promise ? value.then(f) : f(value);
}
