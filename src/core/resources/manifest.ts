/**
 * Manifest kinds: which collection each kind lives in and the apiVersion it gets by default
 * (Knative's apiVersions for the kinds Knative defines, `sources.tributary.dev` for the rest).
 */

import type { ApiCollection } from './types.js';

const KINDS = {
  Broker: { collection: 'brokers', apiVersion: 'eventing.knative.dev/v1' },
  Trigger: { collection: 'triggers', apiVersion: 'eventing.knative.dev/v1' },
  GitHubSource: { collection: 'sources', apiVersion: 'sources.knative.dev/v1alpha1' },
  GitLabSource: { collection: 'sources', apiVersion: 'sources.knative.dev/v1alpha1' },
  ApiServerSource: { collection: 'sources', apiVersion: 'sources.knative.dev/v1' },
  KafkaSource: { collection: 'sources', apiVersion: 'sources.knative.dev/v1beta1' },
  MnsSource: { collection: 'sources', apiVersion: 'sources.tributary.dev/v1alpha1' },
  RocketMQSource: { collection: 'sources', apiVersion: 'sources.tributary.dev/v1alpha1' },
} as const satisfies Record<string, { collection: ApiCollection; apiVersion: string }>;

type Kind = keyof typeof KINDS;

function isKind(kind: string): kind is Kind {
  return Object.hasOwn(KINDS, kind);
}

/** The source kinds Tributary knows, in the order DESIGN.md lists them. */
export const SOURCE_KINDS: readonly string[] = Object.freeze([
  'GitHubSource',
  'GitLabSource',
  'ApiServerSource',
  'KafkaSource',
  'MnsSource',
  'RocketMQSource',
]);

/** Which collection a manifest kind belongs to (Broker->brokers, Trigger->triggers, *Source kinds->sources), undefined for unknown kinds. */
export function collectionOfKind(kind: string): ApiCollection | undefined {
  return isKind(kind) ? KINDS[kind].collection : undefined;
}

/** Default apiVersion per kind, undefined for unknown kinds. */
export function defaultApiVersion(kind: string): string | undefined {
  return isKind(kind) ? KINDS[kind].apiVersion : undefined;
}
