/**
 * What the source benchmarks' subscribers count in one measured phase: distinct event ids, the
 * times of the first and last, ids received again; `done` is called once every expected id came.
 */
export class ArrivalPhase {
  readonly seen = new Set<string>();
  duplicates = 0;
  firstAt = Number.NaN;
  lastAt = Number.NaN;

  constructor(
    readonly expected: number,
    private readonly done: () => void,
  ) {}

  /** Distinct ids received. */
  get received(): number {
    return this.seen.size;
  }

  /** Counts one delivery of `id`, received at `at` (ms). */
  record(id: string, at: number): void {
    if (this.seen.has(id)) {
      this.duplicates++;
      return;
    }
    this.seen.add(id);
    this.lastAt = at;
    if (this.seen.size === 1) this.firstAt = at;
    if (this.seen.size === this.expected) this.done();
  }
}
