/**
 * Collects what a callback receives so a test can await it instead of sleeping:
 * `await collector.next()`, `await collector.count(5)`, `await collector.until(...)`. Each wait has
 * a timeout that fails the test with a message saying what was missing; the timeout is a bound on
 * liveness, never a timing assertion.
 */

export const DEFAULT_WAIT_MS = 10_000;

interface Waiter<T> {
  readonly ready: (items: readonly T[]) => boolean;
  readonly resolve: () => void;
}

export class Collector<T> {
  readonly items: T[] = [];
  private taken = 0;
  private readonly waiters = new Set<Waiter<T>>();

  constructor(
    private readonly label = 'items',
    private readonly timeoutMs = DEFAULT_WAIT_MS,
  ) {}

  /** The callback to hand to the code under test. */
  readonly push = (item: T): void => {
    this.items.push(item);
    for (const waiter of [...this.waiters]) {
      if (waiter.ready(this.items)) {
        this.waiters.delete(waiter);
        waiter.resolve();
      }
    }
  };

  get length(): number {
    return this.items.length;
  }

  /** Resolves when `ready(items)` holds; rejects after the timeout, describing `what`. */
  until(
    ready: (items: readonly T[]) => boolean,
    what: string,
    timeoutMs = this.timeoutMs,
  ): Promise<void> {
    if (ready(this.items)) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter<T> = {
        ready,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(
          new Error(
            `${this.label}: timed out after ${timeoutMs} ms waiting for ${what} (have ${this.items.length})`,
          ),
        );
      }, timeoutMs);
      this.waiters.add(waiter);
    });
  }

  /** The next item that no earlier `next()` returned. */
  async next(timeoutMs = this.timeoutMs): Promise<T> {
    const index = this.taken;
    this.taken++;
    await this.until((items) => items.length > index, `item #${index + 1}`, timeoutMs);
    return this.items[index]!;
  }

  /** Resolves with the first `n` items once there are at least `n`. */
  async count(n: number, timeoutMs = this.timeoutMs): Promise<T[]> {
    await this.until((items) => items.length >= n, `${n} items`, timeoutMs);
    this.taken = Math.max(this.taken, n);
    return this.items.slice(0, n);
  }
}
