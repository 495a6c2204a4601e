/**
 * The dispatcher of one trigger: it joins the trigger's subscription in the event log, delivers
 * each matching event to the subscriber over HTTP, and settles it: ack on success, nak with the
 * backoff delay while retries remain, dead letter otherwise. Each trigger has its own subscription
 * and in-flight limit, so a slow or failing subscriber never delays another trigger.
 */
import { setMaxListeners } from 'node:events';
import type { EventLog, LogMessage, SubscriptionHandle } from '../backends/contracts.js';
import { encodeBinary, encodeStructured } from '../core/codec/index.js';
import { nextStep, type ResolvedDelivery } from '../core/delivery.js';
import { isTributaryError } from '../core/errors.js';
import type { CompiledFilter } from '../core/filters.js';
import { send, type SendOutcome } from './http-sender.js';

/** What the dispatcher needs to know about its trigger; replaced as a whole on every change. */
export interface TriggerTarget {
  readonly namespace: string;
  readonly name: string;
  readonly uid: string;
  readonly broker: string;
  readonly subscriber: URL;
  readonly filter: CompiledFilter;
  readonly delivery: ResolvedDelivery;
}

export interface DispatcherOptions {
  readonly eventLog: EventLog;
  readonly maxInFlight: number;
  /** Largest response body read from a subscriber. */
  readonly maxResponseBytes: number;
  readonly onError: (error: unknown, context: Record<string, unknown>) => void;
}

const SETTLE_RETRY_MIN_MS = 100;
const SETTLE_RETRY_MAX_MS = 5000;

/** Bytes of a failed response kept with a dead letter (Knative's knativeerrordata limit). */
const ERROR_DATA_LIMIT = 1024;

export class TriggerDispatcher {
  private target: TriggerTarget;
  private handle: SubscriptionHandle | undefined;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly abort = new AbortController();
  private stopped = false;

  constructor(
    target: TriggerTarget,
    private readonly options: DispatcherOptions,
  ) {
    this.target = target;
    // Every delivery in flight listens for the shutdown abort: up to maxInFlight listeners.
    setMaxListeners(0, this.abort.signal);
  }

  get ready(): boolean {
    return this.handle !== undefined && !this.stopped;
  }

  async start(): Promise<void> {
    const t = this.target;
    this.handle = await this.options.eventLog.subscribe(
      {
        id: t.uid,
        broker: { namespace: t.namespace, name: t.broker },
        start: { from: 'latest' },
        maxInFlight: this.options.maxInFlight,
        filter: t.filter,
      },
      (message) => this.track(this.deliver(message)),
    );
    if (this.stopped) await this.handle.close();
  }

  /** Applies a changed trigger in place: filter, subscriber and delivery take effect for the next event. */
  update(target: TriggerTarget): void {
    const filterChanged = target.filter !== this.target.filter;
    this.target = target;
    if (filterChanged) this.handle?.setFilter(target.filter);
  }

  /**
   * Stops taking events, then waits for in-flight deliveries until `deadline` (epoch ms). Those
   * still running then are abandoned unsettled, so the event log hands them over again later.
   */
  async stop(deadline: number): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.handle?.close();
    const remaining = deadline - Date.now();
    if (this.inFlight.size > 0 && remaining > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.allSettled([...this.inFlight]),
        new Promise((resolve) => (timer = setTimeout(resolve, remaining))),
      ]);
      clearTimeout(timer);
    }
    this.abort.abort();
  }

  private track(work: Promise<void>): void {
    this.inFlight.add(work);
    void work.finally(() => this.inFlight.delete(work));
  }

  private async deliver(message: LogMessage): Promise<void> {
    const target = this.target;
    try {
      const encoded =
        target.delivery.format === 'json'
          ? encodeStructured(message.event)
          : encodeBinary(message.event);
      const headers = { ...encoded.headers, prefer: 'reply', 'kn-namespace': target.namespace };
      const outcome = await send(target.subscriber, headers, encoded.body, {
        timeoutMs: target.delivery.timeoutMs,
        maxBodyBytes: this.options.maxResponseBytes,
        signal: this.abort.signal,
      });
      if (this.abort.signal.aborted) return; // abandoned at shutdown: left unsettled on purpose
      const step = nextStep(target.delivery, message.attempt, outcome.result, Date.now());
      await this.settle(() => {
        switch (step.action) {
          case 'done':
            return message.ack();
          case 'retry':
            return message.nak(step.delayMs);
          case 'dead-letter':
            return message.deadLetter({
              reason: describe(outcome),
              attempts: message.attempt,
              destination: target.subscriber.href,
              ...(outcome.response === undefined ? {} : { lastStatus: outcome.response.status }),
            });
        }
      });
    } catch (error) {
      // Settling failed for good (shutdown): the message stays unsettled and is handed over again
      // later; nothing is lost.
      this.options.onError(error, {
        trigger: `${target.namespace}/${target.name}`,
        position: message.position,
      });
    }
  }

  /**
   * Settles a message, trying again while the store is unavailable (a full disk, say) so that the
   * outcome of a delivery is not forgotten; gives up only at shutdown or on a final error.
   */
  private async settle(operation: () => Promise<void>): Promise<void> {
    for (let delay = SETTLE_RETRY_MIN_MS; ; delay = Math.min(delay * 2, SETTLE_RETRY_MAX_MS)) {
      try {
        await operation();
        return;
      } catch (error) {
        const transient = isTributaryError(error) && error.code === 'BACKEND_UNAVAILABLE';
        if (!transient || this.abort.signal.aborted) throw error;
        this.options.onError(error, {
          trigger: `${this.target.namespace}/${this.target.name}`,
          retryInMs: delay,
        });
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }
}

function describe(outcome: SendOutcome): string {
  switch (outcome.result.kind) {
    case 'timeout':
      return 'the subscriber did not answer in time';
    case 'network':
      return `request failed: ${outcome.result.message}`;
    case 'response': {
      const body = (outcome.response?.body ?? Buffer.alloc(0))
        .subarray(0, ERROR_DATA_LIMIT)
        .toString('utf8');
      return `the subscriber answered ${outcome.result.status}${body === '' ? '' : `: ${body}`}`;
    }
  }
}
