/**
 * Polls `probe` until it returns something truthy, and returns that. Errors thrown by the probe
 * count as "not yet"; the last one is named when time runs out, with `describe()`'s answer (the
 * state the test was waiting on) when given, so a timeout says what was seen instead.
 */
export async function until<T>(
  what: string,
  probe: () => Promise<T | undefined | false | null>,
  ms = 20_000,
  describe?: () => Promise<unknown>,
): Promise<T> {
  const end = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) {
      const seen = describe ? `: ${JSON.stringify(await describe().catch((e: Error) => e.message))}` : "";
      throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ""}${seen}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
