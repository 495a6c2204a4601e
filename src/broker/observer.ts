/**
 * What the mesh tells those who watch it (metrics, tracing, the event type catalog, live tails):
 * one hub the composition root creates and hands to the writer, the dispatchers and the sources.
 * An observer must not throw and must not block: it runs on the event path.
 */
import type { CloudEvent } from '../core/event.js';

/** Where events came from. */
export type EventOrigin =
  | { readonly kind: 'ingress' }
  | { readonly kind: 'reply'; readonly trigger: string }
  | { readonly kind: 'source'; readonly source: string; readonly sourceKind: string };

/** Events that are now durable in a broker, or accepted by a source's direct sink. */
export interface EventsStored {
  readonly namespace: string;
  /** The broker that stored them; absent when a source delivered straight to a service. */
  readonly broker?: string;
  readonly origin: EventOrigin;
  readonly events: readonly CloudEvent[];
}

/** One hand-over of a stored event to a trigger's dispatcher (first try, retry, or dead-letter phase). */
export interface Dispatch {
  readonly namespace: string;
  readonly broker: string;
  readonly trigger: string;
  /** The event as stored (with knativearrivaltime, and any distributed tracing extension). */
  readonly event: CloudEvent;
  /** 1 on the first hand-over, then one more per retry. */
  readonly handOver: number;
  /** Whether this hand-over is for the dead-letter sink (the subscriber already gave up). */
  readonly deadLetterPhase: boolean;
}

export type DeliveryDestination = 'subscriber' | 'dead_letter_sink';

/** How one HTTP delivery attempt ended: a status, or no answer at all. */
export type AttemptEnd =
  { readonly kind: 'response'; readonly status: number } | { readonly kind: 'timeout' | 'network' };

/** How a hand-over settled the event. */
export type DeliveryOutcome = 'delivered' | 'retried' | 'dead_lettered' | 'kept';

/** Watches one delivery attempt; `headers` are added to its HTTP request (e.g. `traceparent`). */
export interface AttemptWatch {
  readonly headers?: Readonly<Record<string, string>>;
  ended(end: AttemptEnd): void;
}

/** Watches one hand-over, from the dispatcher taking it to its settlement. */
export interface DispatchWatch {
  attempt?(destination: DeliveryDestination, url: URL): AttemptWatch | undefined;
  settled?(outcome: DeliveryOutcome): void;
  /** The hand-over is over (settled, or abandoned at shutdown). Called exactly once. */
  finished?(): void;
}

/** What went wrong with a source (beyond a sink that refused, which the source retries). */
export interface SourceProblem {
  readonly namespace: string;
  readonly source: string;
  readonly sourceKind: string;
  /** rejected: a webhook delivery refused; sink_failed: the sink did not take an event;
   * upstream: the pulling source's upstream failed. */
  readonly reason: 'rejected' | 'sink_failed' | 'upstream';
}

export interface MeshObserver {
  eventsStored?(stored: EventsStored): void;
  /** A dispatcher took an event; the watch returned (if any) follows it to its settlement. */
  dispatchStarted?(dispatch: Dispatch): DispatchWatch | undefined;
  sourceProblem?(problem: SourceProblem): void;
}

/** Fans every notification out to the observers added; a throwing observer is reported, not fatal. */
export class ObserverHub {
  private readonly observers = new Set<MeshObserver>();

  constructor(private readonly onError: (error: unknown) => void = () => {}) {}

  /** Adds `observer`; the function returned removes it. */
  add(observer: MeshObserver): () => void {
    this.observers.add(observer);
    return () => this.observers.delete(observer);
  }

  /**
   * Tells the observers that a dispatcher took an event. Undefined when no observer watches
   * dispatches, so that the dispatcher then does nothing more per event.
   */
  dispatchStarted(dispatch: Dispatch): DispatchWatch | undefined {
    let watches: DispatchWatch[] | undefined;
    for (const observer of this.observers) {
      if (observer.dispatchStarted === undefined) continue;
      try {
        const watch = observer.dispatchStarted(dispatch);
        if (watch !== undefined) (watches ??= []).push(watch);
      } catch (error) {
        this.onError(error);
      }
    }
    return watches === undefined ? undefined : this.combined(watches);
  }

  sourceProblem(problem: SourceProblem): void {
    for (const observer of this.observers) {
      try {
        observer.sourceProblem?.(problem);
      } catch (error) {
        this.onError(error);
      }
    }
  }

  /** One watch that calls each of `watches`, none of them throwing into the dispatcher. */
  private combined(watches: readonly DispatchWatch[]): DispatchWatch {
    const each = (call: (watch: DispatchWatch) => void): void => {
      for (const watch of watches) {
        try {
          call(watch);
        } catch (error) {
          this.onError(error);
        }
      }
    };
    return {
      attempt: (destination, url) => {
        const attempts: AttemptWatch[] = [];
        each((watch) => {
          const attempt = watch.attempt?.(destination, url);
          if (attempt !== undefined) attempts.push(attempt);
        });
        if (attempts.length === 0) return undefined;
        const headers = Object.assign({}, ...attempts.map((a) => a.headers)) as Record<
          string,
          string
        >;
        return {
          headers,
          ended: (end) => {
            for (const attempt of attempts) {
              try {
                attempt.ended(end);
              } catch (error) {
                this.onError(error);
              }
            }
          },
        };
      },
      settled: (outcome) => each((watch) => watch.settled?.(outcome)),
      finished: () => each((watch) => watch.finished?.()),
    };
  }

  eventsStored(stored: EventsStored): void {
    for (const observer of this.observers) {
      try {
        observer.eventsStored?.(stored);
      } catch (error) {
        this.onError(error);
      }
    }
  }
}
