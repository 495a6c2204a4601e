/**
 * Prometheus metrics of the mesh (docs/observability.md): a registry of its own (never
 * prom-client's global one), fed by the observer hub and by the ingress hooks of the metrics
 * plugin. Knative's names where Knative has the metric (`event_count`,
 * `event_dispatch_latencies`, `event_processing_latencies`, with its label names); the others
 * start with `tributary_`.
 *
 * Every label is bounded: namespaces, brokers, triggers and sources are resources, event types
 * are capped (the first MAX_LABEL_VALUES distinct ones, then "other"), and names a client made up
 * (a request to a broker that does not exist) are capped the same way.
 */
import { performance } from 'node:perf_hooks';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { BrokerExtensions } from '../core/event.js';
import type { PendingWrites } from '../broker/broker-writer.js';
import type {
  AttemptEnd,
  DeliveryDestination,
  Dispatch,
  DispatchWatch,
  EventsStored,
  MeshObserver,
  SourceProblem,
} from '../broker/observer.js';

/** How long one scrape waits for the backlog of the triggers; the ones not read by then are left out. */
export const BACKLOG_SCRAPE_LIMIT_MS = 2_000;
/** Backlog look-ups of one scrape in progress at once. */
const BACKLOG_CONCURRENCY = 16;

/** A trigger this replica delivers, and its subscription in the event log. */
export interface BacklogTrigger {
  readonly namespace: string;
  readonly name: string;
  readonly broker: string;
  /** The subscription id (the trigger's uid). */
  readonly id: string;
}

/** Where the backlog gauge reads from at each scrape (the control plane and the event log). */
export interface BacklogSource {
  triggers(): readonly BacklogTrigger[];
  backlog(
    id: string,
    broker: { readonly namespace: string; readonly name: string },
  ): Promise<number | undefined>;
}

/** Distinct values a capped label takes before the rest become "other". */
export const MAX_LABEL_VALUES = 1000;
export const OTHER = 'other';

/** Knative's latency buckets, in milliseconds. */
const LATENCY_BUCKETS_MS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000];

/** Keeps a label to its first `cap` distinct values; later ones are reported as "other". */
class CappedLabel {
  private readonly seen = new Set<string>();
  constructor(private readonly cap = MAX_LABEL_VALUES) {}

  value(raw: string): string {
    if (this.seen.has(raw)) return raw;
    if (this.seen.size >= this.cap) return OTHER;
    this.seen.add(raw);
    return raw;
  }
}

/** `2xx`, `4xx`...; a request that got no answer is `timeout` or `error` (with code 0). */
function codeLabels(end: AttemptEnd): { response_code: string; response_code_class: string } {
  if (end.kind === 'response') {
    return {
      response_code: String(end.status),
      response_code_class: `${Math.floor(end.status / 100)}xx`,
    };
  }
  return { response_code: '0', response_code_class: end.kind === 'timeout' ? 'timeout' : 'error' };
}

type TriggerLabels = { namespace_name: string; broker_name: string; trigger_name: string };

export class MeshMetrics implements MeshObserver {
  readonly registry = new Registry();
  private readonly eventTypes = new CappedLabel();
  /** `namespace/broker` pairs named by ingress requests (unknown brokers included). */
  private readonly ingressBrokers = new CappedLabel();

  private readonly eventCount = new Counter({
    name: 'event_count',
    help: 'Events the broker ingress answered, by response code (an accepted batch counts each event)',
    labelNames: [
      'namespace_name',
      'broker_name',
      'event_type',
      'response_code',
      'response_code_class',
    ] as const,
    registers: [this.registry],
  });
  private readonly stored = new Counter({
    name: 'tributary_events_stored_total',
    help: 'Events stored durably in a broker, by where they came from (ingress, reply, source)',
    labelNames: ['namespace_name', 'broker_name', 'origin'] as const,
    registers: [this.registry],
  });
  private readonly dispatchLatency = new Histogram({
    name: 'event_dispatch_latencies',
    help: "Time of one delivery attempt to a trigger's subscriber, until its answer (ms)",
    labelNames: [
      'namespace_name',
      'broker_name',
      'trigger_name',
      'response_code',
      'response_code_class',
    ] as const,
    buckets: LATENCY_BUCKETS_MS,
    registers: [this.registry],
  });
  private readonly processingLatency = new Histogram({
    name: 'event_processing_latencies',
    help: "Time from an event's arrival in the broker to its first hand-over to a trigger (ms)",
    labelNames: ['namespace_name', 'broker_name', 'trigger_name'] as const,
    buckets: LATENCY_BUCKETS_MS,
    registers: [this.registry],
  });
  private readonly attempts = new Counter({
    name: 'tributary_delivery_attempts_total',
    help: 'Delivery attempts of a trigger, by destination and response code class',
    labelNames: [
      'namespace_name',
      'broker_name',
      'trigger_name',
      'destination',
      'response_code_class',
    ] as const,
    registers: [this.registry],
  });
  private readonly outcomes = new Counter({
    name: 'tributary_delivery_outcomes_total',
    help: 'How hand-overs to a trigger settled: delivered, retried, dead_lettered (the dead-letter sink took it) or kept (a dead letter of the trigger)',
    labelNames: ['namespace_name', 'broker_name', 'trigger_name', 'outcome'] as const,
    registers: [this.registry],
  });
  private readonly retries = new Counter({
    name: 'tributary_delivery_retries_total',
    help: 'Failed delivery attempts scheduled again, by the destination that failed',
    labelNames: ['namespace_name', 'broker_name', 'trigger_name', 'destination'] as const,
    registers: [this.registry],
  });
  private readonly deadLetters = new Counter({
    name: 'tributary_dead_letters_total',
    help: 'Events the subscriber did not take for good: sent to the dead-letter sink, or kept as dead letters of the trigger',
    labelNames: ['namespace_name', 'broker_name', 'trigger_name', 'where'] as const,
    registers: [this.registry],
  });
  private readonly inFlight = new Gauge({
    name: 'tributary_trigger_in_flight',
    help: 'Events a trigger has taken and not settled yet on this replica (attempts and their settlement)',
    labelNames: ['namespace_name', 'broker_name', 'trigger_name'] as const,
    registers: [this.registry],
  });
  private backlogSource: BacklogSource | undefined;
  private backlogLimitMs = BACKLOG_SCRAPE_LIMIT_MS;
  private readonly backlog: Gauge<'namespace_name' | 'broker_name' | 'trigger_name'> = new Gauge({
    name: 'tributary_trigger_backlog',
    help: 'Events of the broker a trigger has not finished: not handed out yet, handed out and not settled, or waiting for a retry (read from the backend at each scrape; see docs/observability.md for what each backend counts)',
    labelNames: ['namespace_name', 'broker_name', 'trigger_name'] as const,
    registers: [this.registry],
    collect: () => this.collectBacklog(),
  });
  private pendingSource: (() => PendingWrites) | undefined;
  private readonly pendingBytes: Gauge = new Gauge({
    name: 'tributary_store_pending_bytes',
    help: 'Bytes of events this replica is waiting for the event store to acknowledge; at --max-pending-size the ingress sheds load',
    registers: [this.registry],
    collect: (): void => this.pendingBytes.set(this.pendingSource?.().bytes ?? 0),
  });
  private readonly shedWrites: Counter = new Counter({
    name: 'tributary_store_shed_writes_total',
    help: 'Writes refused with OVERLOADED because too many bytes of events waited for the event store',
    registers: [this.registry],
    collect: (): void => {
      this.shedWrites.reset();
      this.shedWrites.inc(this.pendingSource?.().shed ?? 0);
    },
  });
  private readonly sourceEvents = new Counter({
    name: 'tributary_source_events_total',
    help: 'Events a source delivered to its sink (stored in the broker, or taken by the service)',
    labelNames: ['namespace_name', 'source_name', 'source_kind'] as const,
    registers: [this.registry],
  });
  private readonly sourceErrors = new Counter({
    name: 'tributary_source_errors_total',
    help: 'Problems of a source: rejected webhook deliveries, events the sink did not take, upstream errors',
    labelNames: ['namespace_name', 'source_name', 'source_kind', 'reason'] as const,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }

  /** Reads `tributary_store_pending_bytes` and `tributary_store_shed_writes_total` at each scrape. */
  watchPending(source: () => PendingWrites): void {
    this.pendingSource = source;
  }

  /** Reads `tributary_trigger_backlog` from `source` at each scrape. */
  watchBacklog(source: BacklogSource, limitMs = BACKLOG_SCRAPE_LIMIT_MS): void {
    this.backlogSource = source;
    this.backlogLimitMs = limitMs;
  }

  /**
   * One series per trigger whose backlog the backend told within the time limit; a trigger whose
   * look-up failed or was too slow is left out of this scrape (never a stale value).
   */
  private async collectBacklog(): Promise<void> {
    const source = this.backlogSource;
    const triggers = source?.triggers() ?? [];
    const values = new Map<BacklogTrigger, number>();
    let timedOut = false;
    let next = 0;
    const worker = async (): Promise<void> => {
      while (!timedOut && next < triggers.length) {
        const trigger = triggers[next++]!;
        const value = await source!
          .backlog(trigger.id, { namespace: trigger.namespace, name: trigger.broker })
          .catch(() => undefined);
        if (value !== undefined && !timedOut) values.set(trigger, value);
      }
    };
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        timedOut = true;
        resolve();
      }, this.backlogLimitMs);
      timer.unref();
    });
    const workers = Array.from({ length: Math.min(BACKLOG_CONCURRENCY, triggers.length) }, worker);
    await Promise.race([Promise.all(workers), limit]);
    clearTimeout(timer);
    timedOut = true;
    // Set in one step, so that overlapping scrapes do not mix their series.
    this.backlog.reset();
    for (const [trigger, value] of values) {
      this.backlog.set(
        {
          namespace_name: trigger.namespace,
          broker_name: trigger.broker,
          trigger_name: trigger.name,
        },
        value,
      );
    }
  }

  /** The exposition of every metric, and its content type. */
  async exposition(): Promise<{ contentType: string; text: string }> {
    return { contentType: this.registry.contentType, text: await this.registry.metrics() };
  }

  /**
   * The ingress answered a request without storing events (anything but 202); `eventType` is the
   * binary-mode `ce-type` header, when there is one.
   */
  ingressRefused(
    namespace: string,
    broker: string,
    eventType: string | undefined,
    status: number,
  ): void {
    const pair = this.ingressBrokers.value(`${namespace}/${broker}`);
    this.eventCount.inc({
      namespace_name: pair === OTHER ? OTHER : namespace,
      broker_name: pair === OTHER ? OTHER : broker,
      event_type: eventType === undefined ? 'unknown' : this.eventTypes.value(eventType),
      ...codeLabels({ kind: 'response', status }),
    });
  }

  eventsStored(stored: EventsStored): void {
    const namespace_name = stored.namespace;
    const { origin, events } = stored;
    if (stored.broker !== undefined) {
      this.stored.inc(
        { namespace_name, broker_name: stored.broker, origin: origin.kind },
        events.length,
      );
    }
    if (origin.kind === 'source') {
      this.sourceEvents.inc(
        { namespace_name, source_name: origin.source, source_kind: origin.sourceKind },
        events.length,
      );
    } else if (origin.kind === 'ingress' && stored.broker !== undefined) {
      // Stored by the ingress: it answers 202 next.
      this.ingressBrokers.value(`${namespace_name}/${stored.broker}`);
      const byType = new Map<string, number>();
      for (const event of events) {
        const type = this.eventTypes.value(String(event.attributes.type));
        byType.set(type, (byType.get(type) ?? 0) + 1);
      }
      for (const [event_type, count] of byType) {
        this.eventCount.inc(
          {
            namespace_name,
            broker_name: stored.broker,
            event_type,
            response_code: '202',
            response_code_class: '2xx',
          },
          count,
        );
      }
    }
  }

  dispatchStarted(dispatch: Dispatch): DispatchWatch {
    const labels: TriggerLabels = {
      namespace_name: dispatch.namespace,
      broker_name: dispatch.broker,
      trigger_name: dispatch.trigger,
    };
    this.inFlight.inc(labels);
    if (dispatch.handOver === 1 && !dispatch.deadLetterPhase) {
      const arrival = dispatch.event.attributes[BrokerExtensions.arrivalTime];
      const arrived = typeof arrival === 'string' ? Date.parse(arrival) : NaN;
      if (Number.isFinite(arrived)) {
        this.processingLatency.observe(labels, Math.max(0, Date.now() - arrived));
      }
    }
    let last: DeliveryDestination = dispatch.deadLetterPhase ? 'dead_letter_sink' : 'subscriber';
    return {
      attempt: (destination) => {
        last = destination;
        const started = performance.now();
        return {
          ended: (end) => {
            const codes = codeLabels(end);
            if (destination === 'subscriber') {
              this.dispatchLatency.observe({ ...labels, ...codes }, performance.now() - started);
            }
            this.attempts.inc({
              ...labels,
              destination,
              response_code_class: codes.response_code_class,
            });
          },
        };
      },
      settled: (outcome) => {
        this.outcomes.inc({ ...labels, outcome });
        if (outcome === 'retried') this.retries.inc({ ...labels, destination: last });
        else if (outcome === 'dead_lettered') {
          this.deadLetters.inc({ ...labels, where: 'dead_letter_sink' });
        } else if (outcome === 'kept') this.deadLetters.inc({ ...labels, where: 'kept' });
      },
      finished: () => this.inFlight.dec(labels),
    };
  }

  sourceProblem(problem: SourceProblem): void {
    this.sourceErrors.inc({
      namespace_name: problem.namespace,
      source_name: problem.source,
      source_kind: problem.sourceKind,
      reason: problem.reason,
    });
  }
}
