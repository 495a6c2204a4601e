/**
 * Writing events into a broker, as the ingress does and as a source whose sink is a broker does:
 * the broker must exist and be ready, each event is admitted (knativebrokerttl, DESIGN.md section
 * 5) and stamped with its arrival time, and the call resolves only once every event is durable.
 */
import type { BrokerRef, EventLog } from '../backends/contracts.js';
import {
  approximateSize,
  BrokerExtensions,
  withAttribute,
  type CloudEvent,
} from '../core/event.js';
import { isTributaryError, TributaryError } from '../core/errors.js';
import { admitTtl } from '../core/ttl.js';
import type { ControlPlane } from './control-plane.js';
import type { EventOrigin, ObserverHub } from './observer.js';

export interface BrokerWriterOptions {
  readonly eventLog: EventLog;
  readonly controlPlane: Pick<ControlPlane, 'readyBroker' | 'countTtlExhausted'>;
  /** knativebrokerttl given to events that arrive without one. */
  readonly maxTtl: number;
  readonly onStoreError: (error: unknown) => void;
  /** Told of every write that became durable. */
  readonly observers?: ObserverHub;
  /**
   * Bytes of events that may wait for the event store at once (0: no limit). A write that would
   * pass it is refused with OVERLOADED (503, Retry-After) instead of queueing: when the store
   * cannot keep up, clients back off and memory stays bounded. A write is always admitted when
   * nothing waits, so one event larger than the limit still gets through.
   */
  readonly maxPendingBytes?: number;
  /**
   * Told when shedding starts (the first refusal) and when it ends (a write completed with less
   * than half the limit waiting and no refusal for SHEDDING_QUIET_MS), with the writes refused
   * meanwhile: one log line per episode, not one per refusal.
   */
  readonly onShedding?: { started(): void; ended(refused: number): void };
}

/** What waits for the event store now, and how many writes were shed so far. */
export interface PendingWrites {
  readonly bytes: number;
  readonly writes: number;
  readonly shed: number;
}

const INGRESS: EventOrigin = { kind: 'ingress' };

/** An episode of shedding ends once this long passed without a refusal (and room is back). */
export const SHEDDING_QUIET_MS = 1000;

function brokerNotFound(namespace: string, broker: string): TributaryError {
  return new TributaryError(
    'BROKER_NOT_FOUND',
    `Broker "${broker}" does not exist in namespace "${namespace}"`,
  );
}

export class BrokerWriter {
  private pendingBytes = 0;
  private pendingWrites = 0;
  private shed = 0;
  /** `shed` when the current episode of shedding began; undefined while not shedding. */
  private shedFrom: number | undefined;
  private lastShedAt = 0;

  constructor(private readonly options: BrokerWriterOptions) {}

  pending(): PendingWrites {
    return { bytes: this.pendingBytes, writes: this.pendingWrites, shed: this.shed };
  }

  /** The broker, if it exists and is ready; BROKER_NOT_FOUND otherwise. */
  requireBroker(namespace: string, broker: string): BrokerRef {
    const ref = this.options.controlPlane.readyBroker(namespace, broker);
    if (ref === undefined) throw brokerNotFound(namespace, broker);
    return ref;
  }

  /**
   * Stores `events` in the broker; BROKER_NOT_FOUND when it does not exist (or is not ready yet),
   * INVALID_EVENT when an event has no hop left, OVERLOADED when too much waits for the store
   * already, BACKEND_UNAVAILABLE when the store fails.
   */
  async write(
    namespace: string,
    broker: string,
    events: readonly CloudEvent[],
    origin: EventOrigin = INGRESS,
  ): Promise<void> {
    const { controlPlane, maxTtl, maxPendingBytes = 0 } = this.options;
    const ref = this.requireBroker(namespace, broker);
    if (events.length === 0) return;
    const arrival = new Date().toISOString();
    const stamped = events.map((event, i) => {
      const admitted = admitTtl(event, maxTtl);
      if (!admitted.ok) {
        controlPlane.countTtlExhausted(namespace, broker);
        const field = events.length > 1 ? `[${i}].${BrokerExtensions.ttl}` : BrokerExtensions.ttl;
        throw new TributaryError('INVALID_EVENT', admitted.reason, {
          problems: [{ field, message: admitted.reason }],
        });
      }
      return withAttribute(admitted.event, BrokerExtensions.arrivalTime, arrival);
    });
    let size = 0;
    for (const event of events) size += approximateSize(event);
    if (
      maxPendingBytes > 0 &&
      this.pendingWrites > 0 &&
      this.pendingBytes + size > maxPendingBytes
    ) {
      this.shed++;
      this.lastShedAt = Date.now();
      if (this.shedFrom === undefined) {
        this.shedFrom = this.shed - 1;
        this.options.onShedding?.started();
      }
      throw new TributaryError(
        'OVERLOADED',
        `The event store is not keeping up: ${this.pendingBytes} bytes of events wait for it`,
        { retryAfter: 1 },
      );
    }
    this.pendingBytes += size;
    this.pendingWrites++;
    try {
      await this.options.eventLog.append(ref, stamped);
    } catch (error) {
      // The store has no log for a broker the control plane holds ready: either it was deleted a
      // moment ago (the control plane will know soon) or the store is not itself yet (a NATS
      // server just restarted answers "no responders" until JetStream is up). A 404 would make
      // the client drop the events; a 503 makes it retry, and the retry gets the 404 if the
      // broker is really gone.
      if (isTributaryError(error) && error.code === 'NOT_FOUND') {
        if (controlPlane.readyBroker(namespace, broker) === undefined) {
          throw brokerNotFound(namespace, broker);
        }
        throw new TributaryError('BACKEND_UNAVAILABLE', error.message, {
          cause: error,
          retryAfter: 1,
        });
      }
      // The backend's own message limit (NATS max_payload, Kafka max.message.bytes).
      if (isTributaryError(error) && error.code === 'PAYLOAD_TOO_LARGE') throw error;
      this.options.onStoreError(error);
      throw new TributaryError('BACKEND_UNAVAILABLE', undefined, { cause: error, retryAfter: 1 });
    } finally {
      this.pendingBytes -= size;
      this.pendingWrites--;
      if (
        this.shedFrom !== undefined &&
        this.pendingBytes * 2 < maxPendingBytes &&
        Date.now() - this.lastShedAt >= SHEDDING_QUIET_MS
      ) {
        const refused = this.shed - this.shedFrom;
        this.shedFrom = undefined;
        this.options.onShedding?.ended(refused);
      }
    }
    this.options.observers?.eventsStored({ namespace, broker, origin, events: stamped });
  }
}
