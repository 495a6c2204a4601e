/**
 * Which deliveries a replica has already forwarded, so that a redelivery (GitHub's and GitLab's
 * "Redeliver" button, or a sender retrying after a timeout) is not stored twice. Bounded in time
 * and in count: the oldest entries go first. An id being forwarded right now counts as seen, so
 * two copies sent at once are forwarded once; if forwarding fails, the id is forgotten again.
 */
export interface RecentIdsOptions {
  /** How long an id is remembered, in ms. */
  readonly windowMs: number;
  /** At most this many ids are remembered. */
  readonly capacity: number;
}

export class RecentIds {
  /** id -> when it stops counting (epoch ms); Map order is insertion order, oldest first. */
  private readonly ids = new Map<string, number>();

  constructor(private readonly options: RecentIdsOptions) {}

  /** False when `id` was seen within the window; otherwise records it and returns true. */
  claim(id: string, now = Date.now()): boolean {
    this.expire(now);
    if (this.ids.has(id)) return false;
    this.ids.set(id, now + this.options.windowMs);
    while (this.ids.size > this.options.capacity) {
      this.ids.delete(this.ids.keys().next().value as string);
    }
    return true;
  }

  /** Forgets `id` (its forwarding failed, so a redelivery must go through). */
  release(id: string): void {
    this.ids.delete(id);
  }

  get size(): number {
    return this.ids.size;
  }

  private expire(now: number): void {
    for (const [id, until] of this.ids) {
      if (until > now) return;
      this.ids.delete(id);
    }
  }
}
