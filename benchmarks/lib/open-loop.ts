/** The open-loop sender the raw baselines share: sends on schedule, never waiting for acks. */

export interface Sent {
  readonly sentAt: number;
  readonly acked: Promise<unknown>;
}

/**
 * Sends `total` events, one every `intervalMs`: every event due by now goes out at once, without
 * waiting for earlier acks. `onAck` gets each event's index and its ack time in ms.
 */
export function openLoop(options: {
  readonly total: number;
  readonly intervalMs: number;
  readonly send: (index: number) => Sent;
  readonly onAck: (index: number, ms: number) => void;
  readonly onError: () => void;
}): Promise<void> {
  const { total, intervalMs } = options;
  const t0 = performance.now();
  let due = 0;
  return new Promise<void>((resolve) => {
    const tick = (): void => {
      const upTo = Math.min(total, Math.floor((performance.now() - t0) / intervalMs) + 1);
      while (due < upTo) {
        const i = due++;
        const sent = options.send(i);
        sent.acked.then(() => options.onAck(i, performance.now() - sent.sentAt), options.onError);
      }
      if (due >= total) resolve();
      else setTimeout(tick, Math.max(0, t0 + due * intervalMs - performance.now()));
    };
    tick();
  });
}

/** True once `finished` resolves, false if `ms` pass first. */
export function drained(finished: Promise<unknown>, ms: number): Promise<boolean> {
  return Promise.race([
    finished.then(() => true),
    new Promise<boolean>((resolve) => setTimeout(() => resolve(false), ms)),
  ]);
}
