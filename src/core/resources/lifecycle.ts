/**
 * What happens to a resource between the request and the store: server-owned metadata, defaults,
 * generation, and immutable fields (Knative's defaulting and validation webhooks, in one place).
 */
import type { FieldProblem } from '../errors.js';
import { defaultApiVersion } from './manifest.js';
import {
  DEFAULT_BROKER_DELIVERY,
  type Collection,
  type ObjectMeta,
  type Resource,
} from './types.js';

const KIND_OF_COLLECTION: Partial<Record<Collection, string>> = {
  brokers: 'Broker',
  triggers: 'Trigger',
};

export const BROKER_CLASS_ANNOTATION = 'eventing.knative.dev/broker.class';

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Fills what a user may leave out before validation: kind (for brokers and triggers), apiVersion,
 * and the namespace and name from the URL. Returns the input unchanged when it is not an object,
 * so that validation reports it.
 */
export function withRequestDefaults(
  body: unknown,
  collection: Collection,
  namespace: string | undefined,
  name?: string,
): unknown {
  if (!isObject(body)) return body;
  const kind = typeof body.kind === 'string' ? body.kind : KIND_OF_COLLECTION[collection];
  const apiVersion =
    typeof body.apiVersion === 'string'
      ? body.apiVersion
      : kind === undefined
        ? undefined
        : defaultApiVersion(kind);
  const metadata = isObject(body.metadata)
    ? { ...body.metadata }
    : body.metadata === undefined
      ? {}
      : body.metadata;
  if (isObject(metadata)) {
    if (metadata.namespace === undefined && namespace !== undefined) metadata.namespace = namespace;
    if (metadata.name === undefined && name !== undefined) metadata.name = name;
  }
  return {
    ...body,
    apiVersion,
    kind,
    metadata,
    spec: body.spec ?? (collection === 'brokers' ? {} : body.spec),
  };
}

/** JSON with sorted keys, so that equal values compare equal whatever their key order. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    isObject(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

export interface PreparedWrite {
  readonly resource: Resource;
  /** False when nothing a user can set differs from the stored resource. */
  readonly changed: boolean;
  readonly problems: FieldProblem[];
}

/**
 * Builds the resource to store from a validated request body and the stored resource, if any:
 * status and server-owned metadata are dropped from the request; uid and creationTimestamp are
 * kept; generation grows when spec changes; immutable fields are checked.
 */
export function prepareWrite(
  incoming: Resource,
  existing: Resource | undefined,
  now: Date,
  newUid: () => string,
): PreparedWrite {
  const meta = incoming.metadata;
  const metadata: ObjectMeta = { name: meta.name, namespace: meta.namespace };
  if (meta.labels !== undefined) metadata.labels = meta.labels;
  if (meta.annotations !== undefined) metadata.annotations = meta.annotations;
  const spec = { ...incoming.spec };
  if (incoming.kind === 'Broker' && spec.delivery === undefined)
    spec.delivery = { ...DEFAULT_BROKER_DELIVERY };
  const problems: FieldProblem[] = [];

  if (existing === undefined) {
    metadata.uid = newUid();
    metadata.generation = 1;
    metadata.creationTimestamp = now.toISOString();
    return {
      resource: { apiVersion: incoming.apiVersion, kind: incoming.kind, metadata, spec },
      changed: true,
      problems,
    };
  }

  const old = existing.metadata;
  if (existing.kind !== incoming.kind) {
    problems.push({
      field: 'kind',
      message: `immutable: the resource is a ${existing.kind}; delete it first to change its kind`,
    });
  }
  if (incoming.kind === 'Trigger' && existing.spec.broker !== spec.broker) {
    problems.push({
      field: 'spec.broker',
      message: 'immutable: a trigger cannot move to another broker',
    });
  }
  if (incoming.kind === 'Broker') {
    const before = old.annotations?.[BROKER_CLASS_ANNOTATION];
    const after = metadata.annotations?.[BROKER_CLASS_ANNOTATION];
    // Knative sets the class on create; a broker created without one may get it once, later.
    if (before !== undefined && after !== undefined && after !== before) {
      problems.push({
        field: `metadata.annotations["${BROKER_CLASS_ANNOTATION}"]`,
        message: 'immutable: the broker class cannot change',
      });
    }
    if (before !== undefined && after === undefined) {
      metadata.annotations = { ...metadata.annotations, [BROKER_CLASS_ANNOTATION]: before };
    }
  }
  const specChanged = canonicalJson(spec) !== canonicalJson(existing.spec);
  metadata.uid = old.uid;
  metadata.generation = (old.generation ?? 1) + (specChanged ? 1 : 0);
  metadata.creationTimestamp = old.creationTimestamp;
  const changed =
    specChanged ||
    incoming.apiVersion !== existing.apiVersion ||
    canonicalJson(metadata.labels ?? {}) !== canonicalJson(old.labels ?? {}) ||
    canonicalJson(metadata.annotations ?? {}) !== canonicalJson(old.annotations ?? {});
  return {
    resource: { apiVersion: incoming.apiVersion, kind: incoming.kind, metadata, spec },
    changed,
    problems,
  };
}
