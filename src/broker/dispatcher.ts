/**
 * The dispatcher of one trigger: it joins the trigger's subscription in the event log, delivers
 * each matching event to the subscriber over HTTP, and settles it (DESIGN.md section 5):
 * - a 2xx answer is done; if its body is a CloudEvent, that reply goes back into the broker (one
 *   hop less of TTL); a non-empty body that is not a CloudEvent is a failed delivery;
 * - a retryable failure is tried again after the backoff, as long as retries remain;
 * - then the dead-letter sink gets the event with Knative's error extensions, retried the same way;
 * - an event that fails everywhere, or has no dead-letter sink, is kept as a dead letter of the
 *   trigger (listed and redriven through the API), never dropped.
 * Each trigger has its own subscription and in-flight limit, so a slow or failing subscriber never
 * delays another trigger.
 */
import { setMaxListeners } from 'node:events';
import type { EventLog, LogMessage, SubscriptionHandle } from '../backends/contracts.js';
import { decodeHttpMessage, looksLikeCloudEvent } from '../core/codec/index.js';
import {
  deadLetterEvent,
  ERROR_DATA_LIMIT,
  nextStep,
  type FailedAttempt,
  type ResolvedDelivery,
} from '../core/delivery.js';
import { BrokerExtensions, withAttribute, type CloudEvent } from '../core/event.js';
import { isTributaryError } from '../core/errors.js';
import type { CompiledFilter } from '../core/filters.js';
import { forDelivery, replyTtl } from '../core/ttl.js';
import { failureOf, postEvent, type Failure } from './attempts.js';
import type { SendOutcome } from './http-sender.js';
import type { DeliveryDestination, DispatchWatch, ObserverHub } from './observer.js';

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
  /** Largest response body read from a subscriber (a reply is an event: the event size limit). */
  readonly maxResponseBytes: number;
  /** Hops a reply may have at most (the broker's knativebrokerttl maximum). */
  readonly maxTtl: number;
  /** A reply to an event of `target` was dropped because its TTL ran out (a loop). */
  readonly onTtlExhausted: (target: TriggerTarget) => void;
  readonly onError: (error: unknown, context: Record<string, unknown>) => void;
  /**
   * The trigger's member left its subscription on a backend error the backend does not get over
   * by itself, or joining it again failed: it joins again in REJOIN_MS.
   */
  readonly onLost?: (target: TriggerTarget, error: unknown) => void;
  /** Told of the replies stored in the broker. */
  readonly observers?: ObserverHub;
}

/** What a trigger's deliveries did since this replica started. */
export interface TriggerCounters {
  /** Accepted by the subscriber. */
  delivered: number;
  /** Attempts that failed and were scheduled again (to the subscriber or the dead-letter sink). */
  retried: number;
  /** Accepted by the dead-letter sink. */
  deadLettered: number;
  /** Kept as dead letters of the trigger because every destination failed. */
  kept: number;
  lastError?: { message: string; time: string };
}

/** Rides with a retry (LogMessage.note): the event is being sent to the dead-letter sink. */
interface DeadLetterPhase {
  /** Attempt number at the dead-letter sink, from 1. */
  readonly attempt: number;
  /** The subscriber's last failure, for the error extensions. */
  readonly status?: number;
  readonly body?: string;
}

const SETTLE_RETRY_MIN_MS = 100;
const SETTLE_RETRY_MAX_MS = 5000;
/** How long after losing its subscription a trigger joins it again. */
export const REJOIN_MS = 5_000;

function readNote(note: string | undefined): DeadLetterPhase | undefined {
  if (note === undefined) return undefined;
  try {
    const parsed = JSON.parse(note) as { dls?: DeadLetterPhase };
    return parsed.dls;
  } catch {
    return undefined;
  }
}

function writeNote(phase: DeadLetterPhase): string {
  return JSON.stringify({ dls: phase });
}

/** Knative's broker answers 502 when a subscriber's reply is unusable; so do we, internally. */
function badReply(reason: string): Failure {
  return {
    result: { kind: 'response', status: 502 },
    reason,
    response: { status: 502, body: new Uint8Array(0) },
  };
}

export class TriggerDispatcher {
  private target: TriggerTarget;
  private handle: SubscriptionHandle | undefined;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly abort = new AbortController();
  private stopped = false;
  private rejoinTimer: NodeJS.Timeout | undefined;
  readonly counters: TriggerCounters = { delivered: 0, retried: 0, deadLettered: 0, kept: 0 };

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
    await this.join();
  }

  private async join(): Promise<void> {
    const t = this.target;
    // The handle is known once subscribe() resolves; a loss reported before cannot be this one's.
    const joined: { handle?: SubscriptionHandle } = {};
    const handle = await this.options.eventLog.subscribe(
      {
        id: t.uid,
        broker: { namespace: t.namespace, name: t.broker },
        start: { from: 'latest' },
        maxInFlight: this.options.maxInFlight,
        filter: t.filter,
        ordered: t.delivery.ordered,
        onLost: (error) => {
          if (joined.handle !== undefined) this.lost(joined.handle, error);
        },
      },
      (message) => this.track(this.deliver(message)),
    );
    joined.handle = handle;
    this.handle = handle;
    if (this.stopped) await handle.close();
  }

  /** The member left its subscription for good: it is closed, and the trigger joins again. */
  private lost(handle: SubscriptionHandle, error: unknown): void {
    if (this.stopped || handle !== this.handle) return;
    this.handle = undefined;
    this.options.onLost?.(this.target, error);
    void handle.close().catch(() => {});
    this.rejoinLater();
  }

  private rejoinLater(): void {
    this.rejoinTimer = setTimeout(() => {
      this.rejoinTimer = undefined;
      if (this.stopped || this.handle !== undefined) return;
      this.join().catch((error: unknown) => {
        this.options.onLost?.(this.target, error);
        this.rejoinLater();
      });
    }, REJOIN_MS);
    this.rejoinTimer.unref();
  }

  /**
   * Applies a changed trigger in place: filter, subscriber and delivery take effect for the next
   * event; a change of ordering joins the subscription again with the new mode.
   */
  async update(target: TriggerTarget): Promise<void> {
    const previous = this.target;
    this.target = target;
    if (target.delivery.ordered !== previous.delivery.ordered) {
      const old = this.handle;
      this.handle = undefined;
      await old?.close();
      await this.join();
      return;
    }
    if (target.filter !== previous.filter) this.handle?.setFilter(target.filter);
  }

  /**
   * Stops taking events, then waits for in-flight deliveries until `deadline` (epoch ms). Those
   * still running then are abandoned unsettled, so the event log hands them over again later.
   */
  async stop(deadline: number): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.rejoinTimer);
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
    const phase = readNote(message.note);
    // Metrics and tracing follow the hand-over; undefined (and free) when nobody watches.
    const watch = this.options.observers?.dispatchStarted({
      namespace: target.namespace,
      broker: target.broker,
      trigger: target.name,
      event: message.event,
      handOver: message.attempt,
      deadLetterPhase: phase !== undefined,
    });
    try {
      if (phase !== undefined) await this.toDeadLetterSink(message, target, phase, watch);
      else await this.toSubscriber(message, target, watch);
    } catch (error) {
      // Settling failed for good (shutdown): the message stays unsettled and is handed over again
      // later; nothing is lost.
      this.options.onError(error, {
        trigger: `${target.namespace}/${target.name}`,
        position: message.position,
      });
    } finally {
      watch?.finished?.();
    }
  }

  private async post(
    url: URL,
    event: CloudEvent,
    target: TriggerTarget,
    watch: DispatchWatch | undefined,
    destination: DeliveryDestination,
  ): Promise<SendOutcome> {
    const attempt = watch?.attempt?.(destination, url);
    const outcome = await postEvent(url, event, {
      format: target.delivery.format,
      timeoutMs: target.delivery.timeoutMs,
      maxResponseBytes: this.options.maxResponseBytes,
      headers: { ...attempt?.headers, prefer: 'reply', 'kn-namespace': target.namespace },
      signal: this.abort.signal,
    });
    attempt?.ended(outcome.result);
    return outcome;
  }

  private async toSubscriber(
    message: LogMessage,
    target: TriggerTarget,
    watch: DispatchWatch | undefined,
  ): Promise<void> {
    const outcome = await this.post(
      target.subscriber,
      forDelivery(message.event),
      target,
      watch,
      'subscriber',
    );
    if (this.abort.signal.aborted) return; // abandoned at shutdown: left unsettled on purpose
    const failure =
      outcome.result.kind === 'response' &&
      outcome.result.status >= 200 &&
      outcome.result.status < 300
        ? await this.handleReply(message.event, outcome, target)
        : failureOf(outcome);
    if (failure === undefined) {
      await this.settle(() => message.ack());
      this.counters.delivered++;
      watch?.settled?.('delivered');
      return;
    }
    this.noteError(`subscriber ${target.subscriber.href} ${failure.reason}`);
    const step = nextStep(target.delivery, message.attempt, failure.result, Date.now());
    if (step.action === 'retry') {
      await this.settle(() => message.nak(step.delayMs));
      this.counters.retried++;
      watch?.settled?.('retried');
      return;
    }
    if (target.delivery.deadLetterSinkUri === undefined) {
      await this.keep(
        message,
        target,
        watch,
        `the subscriber ${failure.reason}; no dead-letter sink`,
        failure,
      );
      return;
    }
    const body = failure.response?.body.subarray(0, ERROR_DATA_LIMIT);
    await this.toDeadLetterSink(
      message,
      target,
      {
        attempt: 1,
        ...(failure.response === undefined ? {} : { status: failure.response.status }),
        ...(body === undefined || body.byteLength === 0
          ? {}
          : { body: Buffer.from(body).toString('base64') }),
      },
      watch,
    );
  }

  /**
   * A 2xx answer: a CloudEvent in its body is a reply, stored into the same broker; undefined when
   * the delivery succeeded, the failure otherwise (an unusable reply, or one that could not be
   * stored: the original is then delivered again).
   */
  private async handleReply(
    original: CloudEvent,
    outcome: SendOutcome,
    target: TriggerTarget,
  ): Promise<Failure | undefined> {
    const response = outcome.response;
    // 202 means accepted, never a reply (Knative's data-plane contract). An empty body is no reply,
    // unless it is a binary-mode event without data.
    if (response === undefined || response.status === 202) return undefined;
    if (response.body.byteLength === 0 && !looksLikeCloudEvent(response.headers)) return undefined;
    if (response.truncated) {
      return badReply(
        `replied with more than ${this.options.maxResponseBytes} bytes, the event size limit`,
      );
    }
    if (!looksLikeCloudEvent(response.headers)) {
      return badReply(`answered ${response.status} with a body that is not a CloudEvent`);
    }
    let replies: CloudEvent[];
    try {
      replies = decodeHttpMessage(response.headers, response.body).events;
    } catch (error) {
      return badReply(`replied with an invalid CloudEvent: ${(error as Error).message}`);
    }
    const arrival = new Date().toISOString();
    const stored: CloudEvent[] = [];
    for (const reply of replies) {
      const hop = replyTtl(reply, original, this.options.maxTtl);
      if (!hop.ok) {
        this.options.onTtlExhausted(target);
        this.noteError(`reply to ${String(original.attributes.id)} dropped: ${hop.reason}`);
        continue;
      }
      stored.push(withAttribute(hop.event, BrokerExtensions.arrivalTime, arrival));
    }
    if (stored.length === 0) return undefined;
    try {
      await this.options.eventLog.append(
        { namespace: target.namespace, name: target.broker },
        stored,
      );
      this.options.observers?.eventsStored({
        namespace: target.namespace,
        broker: target.broker,
        origin: { kind: 'reply', trigger: target.name },
        events: stored,
      });
      return undefined;
    } catch (error) {
      return {
        result: { kind: 'network', message: 'reply not stored' },
        reason: `replied, but the reply could not be stored: ${(error as Error).message}`,
      };
    }
  }

  private async toDeadLetterSink(
    message: LogMessage,
    target: TriggerTarget,
    phase: DeadLetterPhase,
    watch: DispatchWatch | undefined,
  ): Promise<void> {
    const sink = target.delivery.deadLetterSinkUri;
    const subscriberFailure = phase.status === undefined ? 'failed' : `answered ${phase.status}`;
    if (sink === undefined) {
      // The dead-letter sink was removed from the trigger while this event waited for it.
      await this.keep(
        message,
        target,
        watch,
        `the subscriber ${subscriberFailure}; no dead-letter sink`,
      );
      return;
    }
    const failed: FailedAttempt = {
      destination: target.subscriber.href,
      ...(phase.status === undefined ? {} : { status: phase.status }),
      ...(phase.body === undefined ? {} : { body: Buffer.from(phase.body, 'base64') }),
    };
    const url = new URL(sink);
    const outcome = await this.post(
      url,
      deadLetterEvent(forDelivery(message.event), failed),
      target,
      watch,
      'dead_letter_sink',
    );
    if (this.abort.signal.aborted) return;
    if (
      outcome.result.kind === 'response' &&
      outcome.result.status >= 200 &&
      outcome.result.status < 300
    ) {
      await this.settle(() => message.ack());
      this.counters.deadLettered++;
      watch?.settled?.('dead_lettered');
      return;
    }
    const failure = failureOf(outcome);
    this.noteError(`dead-letter sink ${url.href} ${failure.reason}`);
    const step = nextStep(target.delivery, phase.attempt, failure.result, Date.now());
    if (step.action === 'retry') {
      await this.settle(() =>
        message.nak(step.delayMs, writeNote({ ...phase, attempt: phase.attempt + 1 })),
      );
      this.counters.retried++;
      watch?.settled?.('retried');
      return;
    }
    // The last subscriber attempt and the first sink attempt shared one hand-over.
    await this.keep(
      message,
      target,
      watch,
      `the subscriber ${subscriberFailure}, and the dead-letter sink ${failure.reason}`,
      failure,
      url.href,
      message.attempt + 1,
    );
  }

  /** Every destination failed: the event stays with the trigger as a dead letter. */
  private async keep(
    message: LogMessage,
    target: TriggerTarget,
    watch: DispatchWatch | undefined,
    reason: string,
    failure?: Failure,
    destination = target.subscriber.href,
    attempts = message.attempt,
  ): Promise<void> {
    await this.settle(() =>
      message.deadLetter({
        reason,
        attempts,
        destination,
        ...(failure?.response === undefined ? {} : { lastStatus: failure.response.status }),
      }),
    );
    this.counters.kept++;
    watch?.settled?.('kept');
  }

  private noteError(message: string): void {
    this.counters.lastError = { message, time: new Date().toISOString() };
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
