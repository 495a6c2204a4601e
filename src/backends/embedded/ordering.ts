/**
 * Ordered delivery's bookkeeping for one subscription (`SubscriptionOptions.ordered`).
 *
 * A *unit* is something the subscription still has to deliver, named by its seq in the
 * subscription (see subscription.ts): a first attempt read from the log, a retry, a redriven dead
 * letter. Each unit has a group (the string form of its `partitionkey`, or NO_KEY) and a log
 * position. Per group, the units wait in a min-heap by position, and `out` counts those handed to a
 * member and not settled. A unit may go out only when nothing of its group is out and it has the
 * lowest position of its group: one at a time per key, in log order, and a unit waiting for its
 * retry holds back the later events of its key (it stays in the heap until it is acked,
 * dead-lettered or filtered out). An event read from the log after a lower-positioned unit of its
 * key (a replay after a seek, a duplicate after a crash) still goes first when it is lower.
 *
 * Only the units the subscription has read or scheduled are here: how many first attempts may wait
 * in memory is bounded by the subscription (MAX_HELD), not here.
 */
import { attributeString, type CloudEvent } from '../../core/event.js';
import { MinHeap } from './heap.js';

/** The group of the events that have no `partitionkey`. */
export const NO_KEY: unique symbol = Symbol('no partitionkey');
export type GroupKey = string | typeof NO_KEY;

export function groupKeyOf(event: CloudEvent): GroupKey {
  return attributeString(event, 'partitionkey') ?? NO_KEY;
}

/**
 * The group of a stored event from its `partitionkey` as SQLite's `attrs -> '$.partitionkey'` gives
 * it: the value's JSON text (parsed as the whole attributes would be), or null when absent.
 */
export function groupKeyOfJson(json: string | null): GroupKey {
  if (json === null) return NO_KEY;
  return String(JSON.parse(json) as string | number | boolean);
}

interface Entry {
  readonly seq: number;
  readonly position: number;
  readonly queue: KeyQueue;
}

class KeyQueue {
  /** Units of this group handed to a member and not settled yet. */
  out = 0;
  /** The group's units not settled for good, by position; entries no longer live are skipped. */
  readonly heap = new MinHeap<Entry>((entry) => entry.position);

  constructor(readonly key: GroupKey) {}
}

export class KeyOrder {
  private readonly queues = new Map<GroupKey, KeyQueue>();
  /** Seq of each tracked unit to its heap entry: an entry not in here is stale. */
  private readonly live = new Map<number, Entry>();

  /** Starts tracking a unit (no-op when it already is). */
  track(seq: number, position: number, key: GroupKey): void {
    if (this.live.has(seq)) return;
    const queue = this.queue(key);
    const entry: Entry = { seq, position, queue };
    queue.heap.push(entry);
    this.live.set(seq, entry);
  }

  /** The unit is done (acked, dead-lettered, filtered out, gone); returns its group. */
  untrack(seq: number): GroupKey | undefined {
    const entry = this.live.get(seq);
    if (entry === undefined) return undefined;
    this.live.delete(seq);
    this.head(entry.queue);
    return entry.queue.key;
  }

  /** A unit of `key` was handed to a member. */
  out(key: GroupKey): void {
    this.queue(key).out++;
  }

  /** A unit of `key` is no longer with a member (settled, or its member closed). */
  back(key: GroupKey): void {
    const queue = this.queues.get(key);
    if (queue === undefined) return;
    queue.out = Math.max(0, queue.out - 1);
    this.head(queue);
  }

  /** Whether the tracked unit `seq` may go out now. */
  mayGo(seq: number): boolean {
    const entry = this.live.get(seq);
    if (entry === undefined) return true;
    return entry.queue.out === 0 && this.head(entry.queue) === entry;
  }

  /** The seq of the unit of `key` that may go out now, if there is one. */
  next(key: GroupKey): number | undefined {
    const queue = this.queues.get(key);
    if (queue === undefined || queue.out > 0) return undefined;
    return this.head(queue)?.seq;
  }

  private queue(key: GroupKey): KeyQueue {
    let queue = this.queues.get(key);
    if (queue === undefined) {
      queue = new KeyQueue(key);
      this.queues.set(key, queue);
    }
    return queue;
  }

  /** The lowest live entry of the queue; forgets the queue once it is empty. */
  private head(queue: KeyQueue): Entry | undefined {
    let top = queue.heap.peek();
    while (top !== undefined && this.live.get(top.seq) !== top) {
      queue.heap.pop();
      top = queue.heap.peek();
    }
    if (top === undefined && queue.out === 0 && this.queues.get(queue.key) === queue) {
      this.queues.delete(queue.key);
    }
    return top;
  }
}
