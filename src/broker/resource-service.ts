/**
 * Creating, replacing and deleting resources: validation with field paths, server-owned metadata,
 * compare-and-set against concurrent writers, and waiting until this replica's control plane has
 * acted on the change (so a trigger answered 200 already receives every later event).
 */
import { randomUUID } from 'node:crypto';
import type { ResourceStore, StoredResource } from '../backends/contracts.js';
import { assertNoProblems, TributaryError, type FieldProblem } from '../core/errors.js';
import { prepareWrite, withRequestDefaults } from '../core/resources/lifecycle.js';
import { collectionOfKind } from '../core/resources/manifest.js';
import {
  REDACTED,
  restoreSecrets,
  secretAt,
  SECRET_SPEC_FIELDS,
} from '../core/resources/secrets.js';
import {
  validateBroker,
  validateOutbound,
  validateSource,
  validateTrigger,
} from '../core/resources/validate.js';
import { OutboundPolicy } from '../core/outbound.js';
import type { ApiCollection, Resource, ResourceKey } from '../core/resources/types.js';
import type { ControlPlane } from './control-plane.js';

export type ApplyAction = 'created' | 'configured' | 'unchanged';

export interface ApplyResult {
  readonly stored: StoredResource;
  readonly action: ApplyAction;
}

const VALIDATORS: Record<ApiCollection, (resource: unknown) => FieldProblem[]> = {
  brokers: validateBroker,
  triggers: validateTrigger,
  sources: validateSource,
};

const CAS_ATTEMPTS = 5;

function prefixed(problems: FieldProblem[], prefix: string): FieldProblem[] {
  return problems.map((p) => ({ field: `${prefix}${p.field}`, message: p.message }));
}

export class ResourceService {
  constructor(
    private readonly store: ResourceStore,
    private readonly controlPlane: ControlPlane,
    /** Refuses destination URIs that name a refused address (docs/outbound.md). */
    private readonly outbound: OutboundPolicy = new OutboundPolicy(),
  ) {}

  /**
   * Checks a request body for `PUT /v1/namespaces/{namespace}/{collection}/{name}`, returning the
   * resource with its defaults filled in, or every problem.
   */
  check(
    body: unknown,
    collection: ApiCollection,
    namespace: string | undefined,
    name?: string,
  ): { resource?: Resource; problems: FieldProblem[] } {
    const resource = withRequestDefaults(body, collection, namespace, name) as Resource;
    const problems = VALIDATORS[collection](resource);
    problems.push(...validateOutbound(resource, this.outbound));
    // A body of `null` or `metadata: null` (reported by the validators already) has no names.
    const meta = (resource as { metadata?: unknown } | null)?.metadata as
      Record<string, unknown> | undefined;
    if (meta !== undefined && meta !== null && typeof meta === 'object') {
      if (name !== undefined && meta.name !== name) {
        problems.push({
          field: 'metadata.name',
          message: `must be "${name}", the name in the URL`,
        });
      }
      if (namespace !== undefined && meta.namespace !== namespace) {
        problems.push({
          field: 'metadata.namespace',
          message: `must be "${namespace}", the namespace in the URL`,
        });
      }
    }
    return problems.length > 0 ? { problems } : { resource, problems };
  }

  /**
   * Checks every document of an apply request before any is written (all or nothing for
   * validation); documents without a namespace go to `default`.
   */
  checkAll(documents: unknown[]): {
    resources?: { collection: ApiCollection; resource: Resource }[];
    problems: FieldProblem[];
  } {
    const problems: FieldProblem[] = [];
    const resources: { collection: ApiCollection; resource: Resource }[] = [];
    documents.forEach((doc, i) => {
      const prefix = `[${i}].`;
      const kind = (doc as { kind?: unknown } | null)?.kind;
      const collection = typeof kind === 'string' ? collectionOfKind(kind) : undefined;
      if (collection === undefined) {
        problems.push({
          field: `${prefix}kind`,
          message:
            typeof kind === 'string'
              ? `${kind} is not a kind Tributary manages (Broker, Trigger, or a source kind)`
              : 'required',
        });
        return;
      }
      const meta = (doc as { metadata?: { namespace?: unknown } }).metadata;
      const namespace = typeof meta?.namespace === 'string' ? undefined : 'default';
      const checked = this.check(doc, collection, namespace);
      if (checked.resource === undefined) problems.push(...prefixed(checked.problems, prefix));
      else resources.push({ collection, resource: checked.resource });
    });
    return problems.length > 0 ? { problems } : { resources, problems };
  }

  /** Creates or replaces a checked resource. */
  async put(collection: ApiCollection, resource: Resource): Promise<ApplyResult> {
    const key: ResourceKey = {
      collection,
      namespace: resource.metadata.namespace,
      name: resource.metadata.name,
    };
    for (let attempt = 1; ; attempt++) {
      const existing = await this.store.get(key);
      const incoming = restoreSecrets(resource, existing?.resource);
      assertNoProblems(
        SECRET_SPEC_FIELDS.filter(
          (field) => secretAt(incoming.spec, field)?.value === REDACTED,
        ).map((field) => ({
          field: `spec.${field}.value`,
          message: `${REDACTED} stands for the stored secret of an existing ${resource.kind}; give the secret itself`,
        })),
      );
      const prepared = prepareWrite(incoming, existing?.resource, new Date(), randomUUID);
      assertNoProblems(prepared.problems);
      if (existing !== undefined && !prepared.changed) {
        await this.controlPlane.awaitReconciled(key, existing.revision);
        return { stored: existing, action: 'unchanged' };
      }
      try {
        const stored =
          existing === undefined
            ? await this.store.create(key, prepared.resource)
            : await this.store.update(key, prepared.resource, existing.revision);
        await this.controlPlane.awaitReconciled(key, stored.revision);
        return { stored, action: existing === undefined ? 'created' : 'configured' };
      } catch (error) {
        if (
          !(error instanceof TributaryError && error.code === 'CONFLICT') ||
          attempt >= CAS_ATTEMPTS
        )
          throw error;
      }
    }
  }

  async delete(key: ResourceKey): Promise<StoredResource | undefined> {
    for (let attempt = 1; ; attempt++) {
      const existing = await this.store.get(key);
      if (existing === undefined) return undefined;
      try {
        if (!(await this.store.delete(key, existing.revision))) return undefined;
        await this.controlPlane.awaitDeleted(key, existing.revision);
        return existing;
      } catch (error) {
        if (
          !(error instanceof TributaryError && error.code === 'CONFLICT') ||
          attempt >= CAS_ATTEMPTS
        )
          throw error;
      }
    }
  }

  get(key: ResourceKey): Promise<StoredResource | undefined> {
    return this.store.get(key);
  }

  list(collection: ApiCollection, namespace?: string): Promise<StoredResource[]> {
    return this.store.list(collection, namespace);
  }
}
