/**
 * The control-plane resources, in Knative's shape (DESIGN.md section 2): a Knative Broker or
 * Trigger manifest is accepted as it is.
 */

/** The collection a resource lives in; it names the management route `/v1/namespaces/{ns}/{collection}`. */
/** The collections the management API serves. */
export const COLLECTIONS = ['brokers', 'triggers', 'sources'] as const;
export type ApiCollection = (typeof COLLECTIONS)[number];
/**
 * Those, and the replicas' own records, which the management API does not show: sources' leases
 * and the event type catalog (src/broker/event-types.ts).
 */
export type Collection = ApiCollection | 'leases' | 'eventtypes';

export interface ObjectMeta {
  name: string;
  namespace: string;
  /** Assigned on creation, never changes; a deleted and re-created resource gets a new one. */
  uid?: string;
  /** Incremented whenever `spec` changes. */
  generation?: number;
  creationTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason?: string;
  message?: string;
  lastTransitionTime?: string;
}

export interface Resource<Spec = Record<string, unknown>, Status = Record<string, unknown>> {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  spec: Spec;
  status?: Status;
}

export interface ResourceKey {
  readonly collection: Collection;
  readonly namespace: string;
  readonly name: string;
}

/** Where events go: a broker (`ref`) or an HTTP service (`uri`). */
export interface Destination {
  ref?: { apiVersion?: string; kind: string; name: string; namespace?: string };
  uri?: string;
  CACerts?: string;
  audience?: string;
}

export const BACKOFF_POLICIES = ['linear', 'exponential'] as const;
export type BackoffPolicy = (typeof BACKOFF_POLICIES)[number];

export const DELIVERY_FORMATS = ['json', 'binary'] as const;
export type DeliveryFormat = (typeof DELIVERY_FORMATS)[number];

export const DELIVERY_ORDERINGS = ['ordered', 'unordered'] as const;
export type DeliveryOrdering = (typeof DELIVERY_ORDERINGS)[number];

/** Knative's Kafka broker annotation for a trigger's ordering; an alias of `delivery.ordering`. */
export const DELIVERY_ORDER_ANNOTATION = 'kafka.eventing.knative.dev/delivery.order';

/** Knative's DeliverySpec, with its field names and ISO-8601 durations. */
export interface DeliverySpec {
  deadLetterSink?: Destination;
  retry?: number;
  backoffPolicy?: BackoffPolicy;
  backoffDelay?: string;
  timeout?: string;
  retryAfterMax?: string;
  format?: DeliveryFormat;
  /** Ours: `ordered` delivers one event at a time per `partitionkey`; default `unordered`. */
  ordering?: DeliveryOrdering;
}

export interface BrokerSpec {
  delivery?: DeliverySpec;
  /** Knative's backend configuration reference; accepted and kept, not used. */
  config?: Record<string, unknown>;
  /** Ours: how long events are kept for replay once delivered (a duration); default `--retention`. */
  retention?: string;
}

/** One Subscriptions API filter object: exactly one dialect is set. */
export interface SubscriptionsFilter {
  exact?: Record<string, string>;
  prefix?: Record<string, string>;
  suffix?: Record<string, string>;
  all?: SubscriptionsFilter[];
  any?: SubscriptionsFilter[];
  not?: SubscriptionsFilter;
  cesql?: string;
}

export interface TriggerSpec {
  broker: string;
  filter?: { attributes?: Record<string, string> };
  filters?: SubscriptionsFilter[];
  subscriber: Destination;
  delivery?: DeliverySpec;
}

export type Broker = Resource<BrokerSpec>;
export type Trigger = Resource<TriggerSpec>;
export type Source = Resource;

export const DEFAULT_NAMESPACE = 'default';
export const DEFAULT_BROKER = 'default';

/** Knative's broker default delivery (config-br-defaults): retry 10, exponential, PT0.2S. */
export const DEFAULT_BROKER_DELIVERY: Readonly<DeliverySpec> = Object.freeze({
  retry: 10,
  backoffPolicy: 'exponential',
  backoffDelay: 'PT0.2S',
});
