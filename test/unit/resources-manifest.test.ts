import { describe, expect, it } from 'vitest';
import {
  collectionOfKind,
  defaultApiVersion,
  SOURCE_KINDS,
} from '../../src/core/resources/manifest.js';

describe('manifest kinds', () => {
  it('lists the source kinds', () => {
    expect(SOURCE_KINDS).toEqual([
      'GitHubSource',
      'GitLabSource',
      'ApiServerSource',
      'KafkaSource',
      'MnsSource',
      'RocketMQSource',
    ]);
    expect(Object.isFrozen(SOURCE_KINDS)).toBe(true);
  });

  it.each([
    ['Broker', 'brokers', 'eventing.knative.dev/v1'],
    ['Trigger', 'triggers', 'eventing.knative.dev/v1'],
    ['GitHubSource', 'sources', 'sources.knative.dev/v1alpha1'],
    ['GitLabSource', 'sources', 'sources.knative.dev/v1alpha1'],
    ['ApiServerSource', 'sources', 'sources.knative.dev/v1'],
    ['KafkaSource', 'sources', 'sources.knative.dev/v1beta1'],
    ['MnsSource', 'sources', 'sources.tributary.dev/v1alpha1'],
    ['RocketMQSource', 'sources', 'sources.tributary.dev/v1alpha1'],
  ])('%s lives in %s with apiVersion %s', (kind, collection, apiVersion) => {
    expect(collectionOfKind(kind)).toBe(collection);
    expect(defaultApiVersion(kind)).toBe(apiVersion);
  });

  it.each(['broker', 'PingSource', 'Service', '', 'toString', 'constructor', '__proto__'])(
    '%j is unknown',
    (kind) => {
      expect(collectionOfKind(kind)).toBeUndefined();
      expect(defaultApiVersion(kind)).toBeUndefined();
    },
  );
});
