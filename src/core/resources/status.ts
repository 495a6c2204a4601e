/**
 * Status of each kind, computed from what the control plane knows (Knative's *_lifecycle.go):
 * status is derived when a resource is read, never stored.
 */
import type { Broker, Condition, Resource, Trigger } from './types.js';

function condition(
  type: string,
  ok: boolean | undefined,
  reason?: string,
  message?: string,
): Condition {
  const c: Condition = { type, status: ok === undefined ? 'Unknown' : ok ? 'True' : 'False' };
  if (reason !== undefined) c.reason = reason;
  if (message !== undefined) c.message = message;
  return c;
}

export interface BrokerFacts {
  /** The broker's event log exists and its ingress accepts events. */
  readonly ready: boolean;
  /** Base URL of this server, e.g. http://127.0.0.1:8080. */
  readonly baseUrl: string;
}

export function brokerStatus(broker: Broker, facts: BrokerFacts): Record<string, unknown> {
  const { namespace, name } = broker.metadata;
  const status: Record<string, unknown> = {
    observedGeneration: broker.metadata.generation,
    address: { url: `${facts.baseUrl}/${namespace}/${name}` },
    conditions: [
      condition('Addressable', true),
      condition(
        'Ready',
        facts.ready,
        facts.ready ? undefined : 'NotReconciled',
        facts.ready ? undefined : 'the event log is being created',
      ),
    ],
  };
  const dls = broker.spec.delivery?.deadLetterSink?.uri;
  if (dls !== undefined) status.deadLetterSinkUri = dls;
  return status;
}

export interface TriggerFacts {
  readonly brokerExists: boolean;
  readonly brokerReady: boolean;
  /** The trigger's subscription exists, so it receives every event from now on. */
  readonly subscribed: boolean;
  /** The delivery spec in force (the trigger's, else the broker's). */
  readonly deadLetterSinkUri: string | undefined;
}

export function triggerStatus(trigger: Trigger, facts: TriggerFacts): Record<string, unknown> {
  const brokerReady = facts.brokerExists && facts.brokerReady;
  const brokerCondition = facts.brokerExists
    ? condition('BrokerReady', facts.brokerReady, facts.brokerReady ? undefined : 'BrokerNotReady')
    : condition(
        'BrokerReady',
        false,
        'BrokerDoesNotExist',
        `Broker "${trigger.spec.broker}" does not exist`,
      );
  const subscribed = brokerReady && facts.subscribed;
  const status: Record<string, unknown> = {
    observedGeneration: trigger.metadata.generation,
    subscriberUri: trigger.spec.subscriber.uri,
    conditions: [
      brokerCondition,
      condition('SubscriberResolved', true),
      condition('SubscriptionReady', subscribed, subscribed ? undefined : 'NotSubscribed'),
      condition(
        'Ready',
        subscribed,
        subscribed ? undefined : (brokerCondition.reason ?? 'NotSubscribed'),
        subscribed ? undefined : brokerCondition.message,
      ),
    ],
  };
  if (facts.deadLetterSinkUri !== undefined) status.deadLetterSinkUri = facts.deadLetterSinkUri;
  return status;
}

export interface SourceFacts {
  /** This version of Tributary runs the source's adapter. */
  readonly adapter: boolean;
  /** Where the sender posts deliveries (webhook sources). */
  readonly webhookUrl?: string;
  /** The resolved sink: the broker's address or the service's URI. */
  readonly sinkUri?: string;
  /** The sink can take events (a broker exists and is ready; a URI always). */
  readonly sinkReady: boolean;
  readonly sinkMessage?: string;
  /** Why the source's secrets cannot be read; undefined when they can (or there are none). */
  readonly secretsProblem?: string;
  readonly hasSecrets: boolean;
  /** A pulling source's upstream: connected, not yet (undefined), or failing and why. */
  readonly upstream?: UpstreamFacts;
  /** Why a pulling source's sink refused its last event, while it does. */
  readonly sinkRefusal?: string;
}

/** The `Connected` reason of a replica whose exclusive source another replica runs. */
export const STANDBY = 'Standby';

export interface UpstreamFacts {
  readonly connected: boolean | undefined;
  readonly reason?: string;
  readonly message?: string;
}

/** A source's status, with the conditions of Knative's sources (SinkProvided, Ready). */
export function sourceStatus(source: Resource, facts: SourceFacts): Record<string, unknown> {
  if (!facts.adapter) {
    return {
      observedGeneration: source.metadata.generation,
      conditions: [
        condition(
          'Ready',
          false,
          'AdapterUnavailable',
          `this version of Tributary stores ${source.kind} resources but does not run their adapter yet`,
        ),
      ],
    };
  }
  const conditions = [
    condition(
      'SinkProvided',
      facts.sinkReady,
      facts.sinkReady ? undefined : 'SinkNotReady',
      facts.sinkMessage,
    ),
  ];
  if (facts.hasSecrets) {
    const ok = facts.secretsProblem === undefined;
    conditions.push(
      condition('SecretsProvided', ok, ok ? undefined : 'SecretNotFound', facts.secretsProblem),
    );
  }
  const upstream = facts.upstream;
  if (upstream !== undefined) {
    conditions.push(
      condition(
        'Connected',
        upstream.connected,
        upstream.connected === true ? undefined : (upstream.reason ?? 'Connecting'),
        upstream.connected === true ? undefined : upstream.message,
      ),
    );
    const refused = facts.sinkRefusal;
    conditions.push(
      condition(
        'SinkAccepting',
        refused === undefined,
        refused === undefined ? undefined : 'SinkRefused',
        refused === undefined ? undefined : `${refused} (consumption paused; trying again)`,
      ),
    );
  }
  // A replica on standby (another runs the exclusive source) is no failure of the source.
  const failed = conditions.find((c) => c.status !== 'True' && c.reason !== STANDBY);
  conditions.push(condition('Ready', failed === undefined, failed?.reason, failed?.message));
  const status: Record<string, unknown> = {
    observedGeneration: source.metadata.generation,
    conditions,
  };
  if (facts.webhookUrl !== undefined) status.webhookUrl = facts.webhookUrl;
  if (facts.sinkUri !== undefined) status.sinkUri = facts.sinkUri;
  return status;
}
