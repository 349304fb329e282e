/**
 * The one worker pool: FN over ITEMS, at most LIMIT at a time, items handed out in their order
 * (`be install`'s fetches, the hunt's runs). A failure stops the handing out; the calls already
 * running finish (nothing is left working behind the caller's back), then the first failure is
 * thrown. `stopped()` turning true stops the handing out too, without an error.
 */
export async function runPool<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
  opts: { stopped?: () => boolean } = {},
): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (next < items.length && !failure && !opts.stopped?.()) {
      const k = next++;
      try {
        results[k] = await fn(items[k], k);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  const workers = Math.max(1, Math.min(Math.floor(limit) || 1, items.length));
  await Promise.all(Array.from({ length: workers }, worker));
  if (failure) throw failure.error;
  return results;
}
