/**
 * Writing events into a broker, as the ingress does and as a source whose sink is a broker does:
 * the broker must exist and be ready, each event is admitted (knativebrokerttl, DESIGN.md section
 * 5) and stamped with its arrival time, and the call resolves only once every event is durable.
 */
import type { BrokerRef, EventLog } from '../backends/contracts.js';
import { BrokerExtensions, withAttribute, type CloudEvent } from '../core/event.js';
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
}

const INGRESS: EventOrigin = { kind: 'ingress' };

function brokerNotFound(namespace: string, broker: string): TributaryError {
  return new TributaryError(
    'BROKER_NOT_FOUND',
    `Broker "${broker}" does not exist in namespace "${namespace}"`,
  );
}

export class BrokerWriter {
  constructor(private readonly options: BrokerWriterOptions) {}

  /** The broker, if it exists and is ready; BROKER_NOT_FOUND otherwise. */
  requireBroker(namespace: string, broker: string): BrokerRef {
    const ref = this.options.controlPlane.readyBroker(namespace, broker);
    if (ref === undefined) throw brokerNotFound(namespace, broker);
    return ref;
  }

  /**
   * Stores `events` in the broker; BROKER_NOT_FOUND when it does not exist (or is not ready yet),
   * INVALID_EVENT when an event has no hop left, BACKEND_UNAVAILABLE when the store fails.
   */
  async write(
    namespace: string,
    broker: string,
    events: readonly CloudEvent[],
    origin: EventOrigin = INGRESS,
  ): Promise<void> {
    const { controlPlane, maxTtl } = this.options;
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
    try {
      await this.options.eventLog.append(ref, stamped);
    } catch (error) {
      if (isTributaryError(error) && error.code === 'NOT_FOUND') {
        throw brokerNotFound(namespace, broker);
      }
      // The backend's own message limit (NATS max_payload, Kafka max.message.bytes).
      if (isTributaryError(error) && error.code === 'PAYLOAD_TOO_LARGE') throw error;
      this.options.onStoreError(error);
      throw new TributaryError('BACKEND_UNAVAILABLE', undefined, { cause: error, retryAfter: 1 });
    }
    this.options.observers?.eventsStored({ namespace, broker, origin, events: stamped });
  }
}
