/**
 * How the tests of a service (Kafka, RocketMQ) decide to run: the service is set up once per test
 * process (a failed setup is tried again by the next caller), and when it cannot be had, the run
 * fails under CI=true and the file is skipped otherwise, saying why.
 */

/** `setup`, run once and shared; a failure is forgotten, so the next call tries again. */
export function once<T>(setup: () => Promise<T>): () => Promise<T> {
  let pending: Promise<T> | undefined;
  return () => {
    pending ??= setup();
    pending.catch(() => (pending = undefined));
    return pending;
  };
}

export function reasonOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The run fails under CI=true (this throws); otherwise says on the console that `what` is skipped. */
export function unavailable(what: string, problem: string): false {
  if (process.env.CI === 'true') throw new Error(`${what}: ${problem} (CI=true)`);
  console.warn(`Skipping ${what}: ${problem}`);
  return false;
}
