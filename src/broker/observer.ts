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

export interface MeshObserver {
  eventsStored?(stored: EventsStored): void;
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
