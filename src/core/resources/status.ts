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

/** Sources are stored now; their adapters arrive in their own issues. */
export function sourceStatus(source: Resource): Record<string, unknown> {
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
