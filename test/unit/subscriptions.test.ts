/**
 * The mapping between a CloudEvents Subscriptions API subscription and a Trigger
 * (src/core/resources/subscriptions.ts): what the trigger's filters become, that the filters match
 * the events the specification says, the way back, and problems with their field paths.
 */
import { describe, expect, it } from 'vitest';
import { compileTriggerFilter } from '../../src/core/filters.js';
import type { CloudEvent } from '../../src/core/event.js';
import {
  subscriptionToTrigger,
  triggerToSubscription,
  SUBSCRIPTION_ID_LABEL,
} from '../../src/core/resources/subscriptions.js';
import { validateTrigger } from '../../src/core/resources/validate.js';
import type { Trigger } from '../../src/core/resources/types.js';

const event = (attributes: Record<string, string>): CloudEvent => ({
  attributes: { specversion: '1.0', id: '1', source: '/s', type: 't', ...attributes },
});

function map(body: unknown, id = 'sub-1', idInUrl = false): Trigger {
  const mapped = subscriptionToTrigger(body, 'default', id, idInUrl);
  expect(mapped.problems).toEqual([]);
  return mapped.trigger!;
}

const fields = (body: unknown, idInUrl = false, id = 'sub-1'): string[] =>
  subscriptionToTrigger(body, 'default', id, idInUrl).problems.map((p) => p.field);

describe('subscription -> trigger', () => {
  it('maps source, types, filters (sql as cesql), sink and config.broker', () => {
    const trigger = map({
      source: '/orders',
      types: ['a', 'b'],
      config: { broker: 'shop' },
      filters: [{ not: { sql: "x = '1'" } }, { cesql: 'true' }],
      sink: 'https://example.com/hook',
      protocol: 'HTTP',
    });
    expect(trigger).toEqual({
      apiVersion: 'eventing.knative.dev/v1',
      kind: 'Trigger',
      metadata: {
        name: 'sub-1',
        namespace: 'default',
        labels: { [SUBSCRIPTION_ID_LABEL]: 'sub-1' },
        annotations: {
          'subscriptions.cloudevents.io/source': '/orders',
          'subscriptions.cloudevents.io/types': '["a","b"]',
        },
      },
      spec: {
        broker: 'shop',
        filters: [
          { exact: { source: '/orders' } },
          { any: [{ exact: { type: 'a' } }, { exact: { type: 'b' } }] },
          { not: { cesql: "x = '1'" } },
          { cesql: 'true' },
        ],
        subscriber: { uri: 'https://example.com/hook' },
      },
    });
    expect(validateTrigger(trigger)).toEqual([]);
  });

  it('defaults to the broker `default` and no filters', () => {
    const trigger = map({ sink: 'http://127.0.0.1:1/', protocol: 'HTTP' });
    expect(trigger.spec).toEqual({ broker: 'default', subscriber: { uri: 'http://127.0.0.1:1/' } });
  });

  it('gives a filter that passes exactly the events the subscription selects', () => {
    const trigger = map({
      source: '/orders',
      types: ['a', 'b'],
      filters: [{ prefix: { subject: 'eu/' } }, { sql: "priority <> 'low'" }],
      sink: 'http://x.example/',
      protocol: 'HTTP',
    });
    const matches = compileTriggerFilter(trigger.spec);
    const good = { source: '/orders', type: 'b', subject: 'eu/1', priority: 'high' };
    expect(matches(event(good))).toBe(true);
    expect(matches(event({ ...good, source: '/order' }))).toBe(false);
    expect(matches(event({ ...good, type: 'c' }))).toBe(false);
    expect(matches(event({ ...good, subject: 'us/1' }))).toBe(false);
    expect(matches(event({ ...good, priority: 'low' }))).toBe(false);
    // A missing attribute is no match for prefix, and an evaluation error is false for sql.
    const { subject: _s, ...noSubject } = good;
    expect(matches(event(noSubject))).toBe(false);
    const { priority: _p, ...noPriority } = good;
    expect(matches(event(noPriority))).toBe(false);
  });

  it('names every problem by its field path', () => {
    expect(
      fields({
        id: 5,
        source: 'has space',
        types: 'a',
        config: { broker: 'Bad_Name', region: 'eu' },
        filters: [{ exact: { type: 'x' } }, { prefix: { type: '' } }, { any: [] }, { sql: '(' }],
        sink: 'ftp://x',
        sinkcredential: {},
        protocol: 'KAFKA',
        protocolsettings: { topicname: 't', method: 'GET' },
        extra: true,
      }),
    ).toEqual(
      expect.arrayContaining([
        'extra',
        'source',
        'types',
        'config.region',
        'config.broker',
        'filters[1].prefix.type',
        'filters[2].any',
        'filters[3].sql',
        'sink',
        'sinkcredential',
        'protocol',
        'protocolsettings.topicname',
        'protocolsettings.method',
      ]),
    );
    // On create a body id is ignored, whatever it is.
    expect(fields({ id: 5, sink: 'http://x.example/', protocol: 'HTTP' })).toEqual([]);
    expect(fields(null)).toEqual(['body']);
    expect(fields({ sink: 'http://x.example/', protocol: 'HTTP', types: [] })).toEqual(['types']);
  });

  it('with the id in the URL: it must be a valid name, and a body id must equal it', () => {
    const body = { sink: 'http://x.example/', protocol: 'HTTP' };
    expect(fields({ ...body, id: 'other' }, true, 'mine')).toEqual(['id']);
    expect(fields(body, true, 'Not_A_Name')).toEqual(['id']);
    expect(fields({ ...body, id: 'mine' }, true, 'mine')).toEqual([]);
  });
});

describe('trigger -> subscription', () => {
  const body = {
    source: '/orders',
    types: ['a'],
    filters: [{ all: [{ sql: 'true' }, { suffix: { type: '.x' } }] }],
    sink: 'http://x.example/',
    protocol: 'HTTP',
  };

  it('gives back what was given, with its defaults and the id', () => {
    expect(triggerToSubscription(map(body))).toEqual({
      id: 'sub-1',
      ...body,
      config: { broker: 'default' },
    });
  });

  it('shows a trigger whose filters were edited with every filter under `filters`', () => {
    const trigger = map(body);
    trigger.spec.filters = [{ exact: { source: '/elsewhere' } }, ...trigger.spec.filters!.slice(1)];
    const subscription = triggerToSubscription(trigger);
    expect(subscription.source).toBeUndefined();
    expect(subscription.types).toBeUndefined();
    expect(subscription.filters).toEqual([
      { exact: { source: '/elsewhere' } },
      { exact: { type: 'a' } },
      { all: [{ sql: 'true' }, { suffix: { type: '.x' } }] },
    ]);
  });
});
