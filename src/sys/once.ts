/** Bindings made on first use: importing a binding module loads no library. */

/** `make`, run on the first call of the returned function only; later calls return its result. */
export function onFirstUse<T>(make: () => T): () => T {
  let made: { readonly value: T } | undefined;
  return () => (made ??= { value: make() }).value;
}
