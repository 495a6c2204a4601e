import { describe, expect, it } from 'vitest';
import { brokerStatus, sourceStatus, triggerStatus } from '../../src/core/resources/status.js';
import type { Broker, Resource, Trigger } from '../../src/core/resources/types.js';

function broker(generation = 3, spec: Broker['spec'] = {}): Broker {
  return {
    apiVersion: 'eventing.knative.dev/v1',
    kind: 'Broker',
    metadata: { name: 'orders', namespace: 'shop', uid: 'u-b', generation },
    spec,
  };
}

function trigger(generation = 4): Trigger {
  return {
    apiVersion: 'eventing.knative.dev/v1',
    kind: 'Trigger',
    metadata: { name: 'audit', namespace: 'shop', uid: 'u-t', generation },
    spec: { broker: 'orders', subscriber: { uri: 'http://audit.example/in' } },
  };
}

const READY = {
  brokerExists: true,
  brokerReady: true,
  subscribed: true,
  deadLetterSinkUri: undefined,
};

describe('brokerStatus', () => {
  it('a ready broker is Addressable and Ready at <baseUrl>/<namespace>/<name>', () => {
    expect(brokerStatus(broker(), { ready: true, baseUrl: 'http://127.0.0.1:8080' })).toEqual({
      observedGeneration: 3,
      address: { url: 'http://127.0.0.1:8080/shop/orders' },
      conditions: [
        { type: 'Addressable', status: 'True' },
        { type: 'Ready', status: 'True' },
      ],
    });
  });

  it('a broker whose log is not there yet is not Ready, and says why', () => {
    const status = brokerStatus(broker(7), { ready: false, baseUrl: 'http://h:9000' });
    expect(status).toEqual({
      observedGeneration: 7,
      address: { url: 'http://h:9000/shop/orders' },
      conditions: [
        { type: 'Addressable', status: 'True' },
        {
          type: 'Ready',
          status: 'False',
          reason: 'NotReconciled',
          message: 'the event log is being created',
        },
      ],
    });
  });

  it('reports the dead-letter sink uri of its delivery spec', () => {
    const b = broker(1, { delivery: { retry: 1, deadLetterSink: { uri: 'http://dls.example/' } } });
    const status = brokerStatus(b, { ready: true, baseUrl: 'http://h' });
    expect(status.deadLetterSinkUri).toBe('http://dls.example/');
  });

  it('has no deadLetterSinkUri without a dead-letter sink uri', () => {
    for (const spec of [{}, { delivery: { retry: 2 } }, { delivery: { deadLetterSink: {} } }]) {
      const status = brokerStatus(broker(1, spec), { ready: true, baseUrl: 'http://h' });
      expect('deadLetterSinkUri' in status).toBe(false);
    }
  });
});

describe('triggerStatus', () => {
  it('a fully ready trigger has every condition True and no reasons', () => {
    expect(triggerStatus(trigger(), READY)).toEqual({
      observedGeneration: 4,
      subscriberUri: 'http://audit.example/in',
      conditions: [
        { type: 'BrokerReady', status: 'True' },
        { type: 'SubscriberResolved', status: 'True' },
        { type: 'SubscriptionReady', status: 'True' },
        { type: 'Ready', status: 'True' },
      ],
    });
  });

  it('a trigger whose broker does not exist is not Ready: BrokerDoesNotExist', () => {
    const status = triggerStatus(trigger(), {
      brokerExists: false,
      brokerReady: false,
      subscribed: false,
      deadLetterSinkUri: undefined,
    });
    expect(status).toEqual({
      observedGeneration: 4,
      subscriberUri: 'http://audit.example/in',
      conditions: [
        {
          type: 'BrokerReady',
          status: 'False',
          reason: 'BrokerDoesNotExist',
          message: 'Broker "orders" does not exist',
        },
        { type: 'SubscriberResolved', status: 'True' },
        { type: 'SubscriptionReady', status: 'False', reason: 'NotSubscribed' },
        {
          type: 'Ready',
          status: 'False',
          reason: 'BrokerDoesNotExist',
          message: 'Broker "orders" does not exist',
        },
      ],
    });
  });

  it('a missing broker wins over facts that say ready and subscribed', () => {
    const status = triggerStatus(trigger(), { ...READY, brokerExists: false });
    const conditions = status.conditions as { type: string; status: string; reason?: string }[];
    expect(conditions.map((c) => [c.type, c.status, c.reason])).toEqual([
      ['BrokerReady', 'False', 'BrokerDoesNotExist'],
      ['SubscriberResolved', 'True', undefined],
      ['SubscriptionReady', 'False', 'NotSubscribed'],
      ['Ready', 'False', 'BrokerDoesNotExist'],
    ]);
  });

  it('a trigger whose broker is not ready is not Ready: BrokerNotReady', () => {
    const status = triggerStatus(trigger(), { ...READY, brokerReady: false });
    expect(status.conditions).toEqual([
      { type: 'BrokerReady', status: 'False', reason: 'BrokerNotReady' },
      { type: 'SubscriberResolved', status: 'True' },
      { type: 'SubscriptionReady', status: 'False', reason: 'NotSubscribed' },
      { type: 'Ready', status: 'False', reason: 'BrokerNotReady' },
    ]);
  });

  it('a trigger not yet subscribed is not Ready: NotSubscribed', () => {
    const status = triggerStatus(trigger(), { ...READY, subscribed: false });
    expect(status.conditions).toEqual([
      { type: 'BrokerReady', status: 'True' },
      { type: 'SubscriberResolved', status: 'True' },
      { type: 'SubscriptionReady', status: 'False', reason: 'NotSubscribed' },
      { type: 'Ready', status: 'False', reason: 'NotSubscribed' },
    ]);
  });

  it('reports the dead-letter sink uri only when given', () => {
    const withDls = triggerStatus(trigger(), { ...READY, deadLetterSinkUri: 'http://dls/' });
    expect(withDls.deadLetterSinkUri).toBe('http://dls/');
    const without = triggerStatus(trigger(), READY);
    expect('deadLetterSinkUri' in without).toBe(false);
  });

  it('observedGeneration follows metadata.generation', () => {
    expect(triggerStatus(trigger(1), READY).observedGeneration).toBe(1);
    expect(triggerStatus(trigger(12), READY).observedGeneration).toBe(12);
  });
});

describe('sourceStatus', () => {
  it('a source without an adapter is not Ready: AdapterUnavailable, naming its kind', () => {
    const source: Resource = {
      apiVersion: 'sources.knative.dev/v1beta1',
      kind: 'MnsSource',
      metadata: { name: 'gh', namespace: 'shop', generation: 2 },
      spec: { sink: { uri: 'http://x/' } },
    };
    expect(sourceStatus(source, { adapter: false, sinkReady: true, hasSecrets: false })).toEqual({
      observedGeneration: 2,
      conditions: [
        {
          type: 'Ready',
          status: 'False',
          reason: 'AdapterUnavailable',
          message:
            'this version of Tributary stores MnsSource resources but does not run their adapter yet',
        },
      ],
    });
  });

  const github: Resource = {
    apiVersion: 'sources.knative.dev/v1alpha1',
    kind: 'GitHubSource',
    metadata: { name: 'gh', namespace: 'shop', generation: 3 },
    spec: { ownerAndRepository: 'o/r', sink: { ref: { kind: 'Broker', name: 'default' } } },
  };

  it('a webhook source with a ready sink and readable secrets is Ready, with its URLs', () => {
    expect(
      sourceStatus(github, {
        adapter: true,
        webhookUrl: 'http://h/webhooks/shop/gh',
        sinkUri: 'http://h/shop/default',
        sinkReady: true,
        hasSecrets: true,
      }),
    ).toEqual({
      observedGeneration: 3,
      webhookUrl: 'http://h/webhooks/shop/gh',
      sinkUri: 'http://h/shop/default',
      conditions: [
        { type: 'SinkProvided', status: 'True' },
        { type: 'SecretsProvided', status: 'True' },
        { type: 'Ready', status: 'True' },
      ],
    });
  });

  it('names the first thing missing in Ready: the sink, then the secrets', () => {
    const noSink = sourceStatus(github, {
      adapter: true,
      sinkReady: false,
      sinkMessage: 'Broker "default" does not exist',
      hasSecrets: true,
      secretsProblem: 'spec.secretToken: the environment variable X is not set',
    });
    const conditions = noSink.conditions as { type: string; status: string; reason?: string }[];
    expect(conditions.map((c) => [c.type, c.status, c.reason])).toEqual([
      ['SinkProvided', 'False', 'SinkNotReady'],
      ['SecretsProvided', 'False', 'SecretNotFound'],
      ['Ready', 'False', 'SinkNotReady'],
    ]);
    const noSecret = sourceStatus(github, {
      adapter: true,
      sinkReady: true,
      hasSecrets: true,
      secretsProblem: 'spec.secretToken: the environment variable X is not set',
    });
    expect((noSecret.conditions as { type: string; message?: string }[]).at(-1)).toEqual({
      type: 'Ready',
      status: 'False',
      reason: 'SecretNotFound',
      message: 'spec.secretToken: the environment variable X is not set',
    });
  });
});
