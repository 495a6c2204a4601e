/**
 * What an ApiServerSource makes of a Kubernetes object's change, pure (docs/sources.md), exactly
 * as Knative's adapter (reference/knative.md 4.1):
 *
 * - type `dev.knative.apiserver.resource.{add,update,delete}` with the whole object as data
 *   (mode Resource), or `dev.knative.apiserver.ref.{add,update,delete}` with an ObjectReference
 *   `{kind, namespace, name, apiVersion}` (mode Reference, the default);
 * - source = the API server's URL, subject = `/apis/<apiVersion>/namespaces/<namespace>/<plural>/<name>`
 *   (Knative's self-link form, the plural guessed from the kind as Kubernetes' UnsafeGuessKindToResource
 *   does, even for core and cluster-scoped kinds), extensions `kind`, `apiversion`, `name`,
 *   `namespace`, `datacontenttype: application/json`;
 * - the `owner` filter keeps only objects whose controller (the owner reference with
 *   `controller: true`) has the given apiVersion and kind.
 *
 * Knative gives each event a random id; ours is `<uid>/<resourceVersion>/<add|update|delete>`, the
 * same for the same change, so that a consumer can tell a repeated event (after a restart) from a
 * new one. The source's `ceOverrides.extensions` are set last.
 */
import type { AttributeValue, CloudEvent } from '../../core/event.js';
import { withOverrides } from '../carried-event.js';

export type Change = 'add' | 'update' | 'delete';
export type EventMode = 'Reference' | 'Resource';

export const APISERVER_EVENT_TYPES: Readonly<Record<EventMode, Readonly<Record<Change, string>>>> =
  {
    Resource: {
      add: 'dev.knative.apiserver.resource.add',
      update: 'dev.knative.apiserver.resource.update',
      delete: 'dev.knative.apiserver.resource.delete',
    },
    Reference: {
      add: 'dev.knative.apiserver.ref.add',
      update: 'dev.knative.apiserver.ref.update',
      delete: 'dev.knative.apiserver.ref.delete',
    },
  };

export interface OwnerReference {
  readonly apiVersion?: string;
  readonly kind?: string;
  readonly name?: string;
  readonly uid?: string;
  readonly controller?: boolean;
}

/** A Kubernetes object as the API gives it (JSON). */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: {
    name?: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    labels?: Record<string, string>;
    ownerReferences?: OwnerReference[];
    [key: string]: unknown;
  };
  [key: string]: unknown;
}

export interface EventOrigin {
  /** The API server's URL. */
  readonly source: string;
  readonly mode: EventMode;
  readonly overrides: Readonly<Record<string, string>>;
}

/** Kubernetes' guess of a kind's plural resource name (`Ingress` -> `ingresses`, `Policy` -> `policies`). */
export function guessPlural(kind: string): string {
  const singular = kind.toLowerCase();
  if (singular.endsWith('s')) return `${singular}es`;
  if (singular.endsWith('y')) return `${singular.slice(0, -1)}ies`;
  return `${singular}s`;
}

/** Knative's subject: the object's self-link as it guesses it. */
export function selfLink(
  apiVersion: string,
  kind: string,
  namespace: string,
  name: string,
): string {
  // A group without a version ("serving.knative.dev") gets "/versionUnknown", as Knative does.
  const version =
    apiVersion.includes('.') && !apiVersion.includes('/')
      ? `${apiVersion}/versionUnknown`
      : apiVersion;
  return `/apis/${version}/namespaces/${namespace}/${guessPlural(kind)}/${name}`;
}

/** Whether the object's controller matches the owner filter (Knative's controllerFilter). */
export function ownedBy(
  object: KubeObject,
  owner: { readonly apiVersion?: string; readonly kind?: string },
): boolean {
  const controller = object.metadata?.ownerReferences?.find((ref) => ref.controller === true);
  if (controller === undefined) return false;
  if (owner.apiVersion !== undefined && owner.apiVersion !== '') {
    if (controller.apiVersion !== owner.apiVersion) return false;
  }
  if (owner.kind !== undefined && owner.kind !== '' && controller.kind !== owner.kind) return false;
  return true;
}

/** The CloudEvent for one change of `object` (see the module comment). */
export function changeEvent(change: Change, object: KubeObject, origin: EventOrigin): CloudEvent {
  const apiVersion = object.apiVersion ?? '';
  const kind = object.kind ?? '';
  const metadata = object.metadata ?? {};
  const name = metadata.name ?? '';
  const namespace = metadata.namespace ?? '';
  // Go's ObjectReference, its fields in Go's order, the empty ones left out.
  const data =
    origin.mode === 'Resource'
      ? object
      : {
          ...(kind === '' ? {} : { kind }),
          ...(namespace === '' ? {} : { namespace }),
          ...(name === '' ? {} : { name }),
          ...(apiVersion === '' ? {} : { apiVersion }),
        };
  const attributes: Record<string, AttributeValue> = {
    specversion: '1.0',
    id: `${metadata.uid ?? name}/${metadata.resourceVersion ?? ''}/${change}`,
    source: origin.source,
    type: APISERVER_EVENT_TYPES[origin.mode][change],
    subject: selfLink(apiVersion, kind, namespace, name),
    datacontenttype: 'application/json',
    kind,
    apiversion: apiVersion,
    name,
    namespace,
  };
  const event: CloudEvent = {
    attributes,
    data: { kind: 'bytes', bytes: Buffer.from(JSON.stringify(data), 'utf8') },
  };
  return withOverrides(event, origin.overrides);
}

interface LabelSelectorRequirement {
  readonly key: string;
  readonly operator: string;
  readonly values?: readonly string[];
}

/** A LabelSelector (`matchLabels`, `matchExpressions`) as the API's `labelSelector` parameter. */
export function selectorString(selector: {
  readonly matchLabels?: Readonly<Record<string, string>>;
  readonly matchExpressions?: readonly LabelSelectorRequirement[];
}): string {
  const parts = Object.entries(selector.matchLabels ?? {}).map(([key, value]) => `${key}=${value}`);
  for (const { key, operator, values = [] } of selector.matchExpressions ?? []) {
    switch (operator) {
      case 'In':
        parts.push(`${key} in (${values.join(',')})`);
        break;
      case 'NotIn':
        parts.push(`${key} notin (${values.join(',')})`);
        break;
      case 'Exists':
        parts.push(key);
        break;
      case 'DoesNotExist':
        parts.push(`!${key}`);
        break;
    }
  }
  return parts.join(',');
}
