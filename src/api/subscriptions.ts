/**
 * The CloudEvents Subscriptions API (reference/cloudevents.md section 7, its OpenAPI paths and
 * status codes) under a namespace: `GET|POST /v1/namespaces/{ns}/subscriptions` and
 * `GET|PUT|DELETE /v1/namespaces/{ns}/subscriptions/{id}`. Each subscription is a Trigger named by
 * its id (src/core/resources/subscriptions.ts maps one onto the other); the management API shows
 * that Trigger like any other.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import type { ResourceService } from '../broker/resource-service.js';
import { assertNoProblems, TributaryError, type FieldProblem } from '../core/errors.js';
import {
  isSubscriptionTrigger,
  subscriptionToTrigger,
  SUBSCRIPTION_ID_LABEL,
  triggerToSubscription,
  type Subscription,
} from '../core/resources/subscriptions.js';
import type { ResourceKey, Trigger } from '../core/resources/types.js';
import { label } from './schemas.js';

export interface SubscriptionsOptions {
  readonly service: ResourceService;
}

// ---------------------------------------------------------------------------------------------
// Schemas (documentation for the OpenAPI document; responses are never filtered by them)

const namespace = label('Namespace');
const id = label('Id of the subscription (the name of its trigger)');

const attributes = {
  type: 'object',
  minProperties: 1,
  additionalProperties: { type: 'string', minLength: 1 },
};
const Filter = {
  type: 'object',
  description:
    'One dialect: exact, prefix, suffix (attribute -> string), all, any (lists of filters), not (a filter), sql (CESQL)',
  minProperties: 1,
  maxProperties: 1,
  properties: {
    exact: attributes,
    prefix: attributes,
    suffix: attributes,
    all: { type: 'array', minItems: 1, items: { type: 'object' } },
    any: { type: 'array', minItems: 1, items: { type: 'object' } },
    not: { type: 'object' },
    sql: { type: 'string', examples: ["type LIKE 'com.example.%'"] },
  },
};
const SubscriptionSchema = {
  type: 'object',
  required: ['id', 'sink', 'protocol'],
  properties: {
    id: { type: 'string', description: 'Assigned by the server on create' },
    source: { type: 'string', description: 'Only events with this source' },
    types: { type: 'array', items: { type: 'string' }, description: 'Only events of these types' },
    config: {
      type: 'object',
      properties: {
        broker: { type: 'string', description: 'The broker subscribed to; default `default`' },
      },
    },
    filters: { type: 'array', items: Filter, description: 'All must match' },
    sink: { type: 'string', format: 'uri', description: 'Where events are POSTed' },
    protocol: { type: 'string', enum: ['HTTP'] },
  },
};
const problem = (description: string): Record<string, unknown> => ({
  description,
  content: { 'application/problem+json': { schema: { type: 'object' } } },
});
const withLocation = (description: string): Record<string, unknown> => ({
  description,
  headers: { location: { type: 'string', description: 'URL of the subscription' } },
  ...SubscriptionSchema,
});

const tags = ['subscriptions'];
const listParams = { type: 'object', properties: { namespace }, required: ['namespace'] };
const itemParams = { type: 'object', properties: { namespace, id }, required: ['namespace', 'id'] };

const SCHEMAS = {
  list: {
    tags,
    operationId: 'listSubscriptions',
    summary: 'The subscriptions of a namespace',
    params: listParams,
    response: {
      200: { description: 'Every subscription', type: 'array', items: SubscriptionSchema },
    },
  },
  create: {
    tags,
    operationId: 'createSubscription',
    summary: 'Create a subscription (a trigger on the broker of config.broker, default `default`)',
    params: listParams,
    response: {
      201: withLocation('Created; the body is the subscription with its id'),
      400: problem('Not a valid subscription; every problem names its field (filters[1].prefix)'),
    },
  },
  get: {
    tags,
    operationId: 'getSubscription',
    summary: 'One subscription',
    params: itemParams,
    response: {
      200: { description: 'The subscription', ...SubscriptionSchema },
      404: problem('No such subscription'),
    },
  },
  put: {
    tags,
    operationId: 'putSubscription',
    summary: 'Replace a subscription, or create it with this id',
    params: itemParams,
    response: {
      200: { description: 'Replaced', ...SubscriptionSchema },
      201: withLocation('Created with the id of the URL'),
      400: problem('Not a valid subscription'),
      409: problem('A trigger with this name exists and is not a subscription'),
    },
  },
  delete: {
    tags,
    operationId: 'deleteSubscription',
    summary: 'Delete a subscription (and its trigger)',
    params: itemParams,
    response: {
      200: { description: 'The subscription deleted', ...SubscriptionSchema },
      404: problem('No such subscription'),
    },
  },
  options: (params: Record<string, unknown>, operationId: string): Record<string, unknown> => ({
    tags,
    operationId,
    summary: 'The methods allowed here',
    params,
    response: {
      204: {
        description: 'No body; the Allow header lists the methods',
        headers: { allow: { type: 'string' } },
        type: 'null',
      },
    },
  }),
} satisfies Record<string, unknown>;

// ---------------------------------------------------------------------------------------------

/** Trigger field paths, as the subscription's fields. */
function asSubscriptionProblems(problems: readonly FieldProblem[]): FieldProblem[] {
  return problems.map((p) => ({
    field: p.field
      .replace(/^metadata\.name/, 'id')
      .replace(/^metadata\.namespace/, 'namespace')
      .replace(/^spec\.subscriber\.uri/, 'sink')
      .replace(/^spec\.broker/, 'config.broker'),
    message: p.message,
  }));
}

function notFound(namespace: string, subscription: string): TributaryError {
  return new TributaryError(
    'NOT_FOUND',
    `No subscription "${subscription}" in namespace "${namespace}"`,
  );
}

/** A new id: a valid trigger name, unlikely to be taken. */
function newId(): string {
  return `sub-${randomUUID().replaceAll('-', '').slice(0, 20)}`;
}

export function subscriptionsPlugin(options: SubscriptionsOptions): FastifyPluginAsync {
  const { service } = options;
  return async (app: FastifyInstance) => {
    // Responses are sent as they are; the schemas only describe them.
    app.setSerializerCompiler(() => (data) => JSON.stringify(data));

    const keyOf = (ns: string, subscription: string): ResourceKey => ({
      collection: 'triggers',
      namespace: ns,
      name: subscription,
    });

    /** The trigger of a subscription, or undefined (absent, or a trigger made otherwise). */
    const find = async (ns: string, subscription: string): Promise<Trigger | undefined> => {
      const stored = await service.get(keyOf(ns, subscription));
      const trigger = stored?.resource as unknown as Trigger | undefined;
      return trigger !== undefined && isSubscriptionTrigger(trigger) ? trigger : undefined;
    };

    /** Checks and stores the subscription `subscription` from `body`. */
    const store = async (
      body: unknown,
      ns: string,
      subscription: string,
      idInUrl: boolean,
    ): Promise<{ created: boolean; subscription: Subscription }> => {
      const mapped = subscriptionToTrigger(body, ns, subscription, idInUrl);
      assertNoProblems(mapped.problems, 'subscription');
      const checked = service.check(mapped.trigger, 'triggers', ns, subscription);
      assertNoProblems(asSubscriptionProblems(checked.problems), 'subscription');
      const result = await service.put('triggers', checked.resource!);
      return {
        created: result.action === 'created',
        subscription: triggerToSubscription(result.stored.resource as unknown as Trigger),
      };
    };

    const location = (ns: string, subscription: string): string =>
      `/v1/namespaces/${ns}/subscriptions/${subscription}`;

    type ListRoute = { Params: { namespace: string } };
    type ItemRoute = { Params: { namespace: string; id: string } };

    app.get<ListRoute>(
      '/v1/namespaces/:namespace/subscriptions',
      { schema: SCHEMAS.list },
      async (request) => {
        const triggers = await service.list('triggers', request.params.namespace);
        return triggers
          .map((s) => s.resource as unknown as Trigger)
          .filter(isSubscriptionTrigger)
          .map(triggerToSubscription);
      },
    );

    app.post<ListRoute>(
      '/v1/namespaces/:namespace/subscriptions',
      { schema: SCHEMAS.create },
      async (request, reply) => {
        const ns = request.params.namespace;
        // A random id is practically never taken; a trigger of that name would not be replaced.
        let subscription = newId();
        while ((await service.get(keyOf(ns, subscription))) !== undefined) subscription = newId();
        const result = await store(request.body, ns, subscription, false);
        return reply
          .code(201)
          .header('location', location(ns, subscription))
          .send(result.subscription);
      },
    );

    app.get<ItemRoute>(
      '/v1/namespaces/:namespace/subscriptions/:id',
      { schema: SCHEMAS.get },
      async (request) => {
        const { namespace: ns, id: subscription } = request.params;
        const trigger = await find(ns, subscription);
        if (trigger === undefined) throw notFound(ns, subscription);
        return triggerToSubscription(trigger);
      },
    );

    app.put<ItemRoute>(
      '/v1/namespaces/:namespace/subscriptions/:id',
      { schema: SCHEMAS.put },
      async (request, reply) => {
        const { namespace: ns, id: subscription } = request.params;
        const existing = await service.get(keyOf(ns, subscription));
        if (existing !== undefined) {
          const labels = existing.resource.metadata.labels;
          if (labels?.[SUBSCRIPTION_ID_LABEL] !== subscription) {
            throw new TributaryError(
              'CONFLICT',
              `Trigger "${subscription}" exists and is not a subscription; manage it with the management API`,
            );
          }
        }
        const result = await store(request.body, ns, subscription, true);
        if (result.created) void reply.code(201).header('location', location(ns, subscription));
        return reply.send(result.subscription);
      },
    );

    app.delete<ItemRoute>(
      '/v1/namespaces/:namespace/subscriptions/:id',
      { schema: SCHEMAS.delete },
      async (request) => {
        const { namespace: ns, id: subscription } = request.params;
        const trigger = await find(ns, subscription);
        if (trigger === undefined) throw notFound(ns, subscription);
        const deleted = await service.delete(keyOf(ns, subscription));
        if (deleted === undefined) throw notFound(ns, subscription);
        return triggerToSubscription(deleted.resource as unknown as Trigger);
      },
    );

    app.options<ListRoute>(
      '/v1/namespaces/:namespace/subscriptions',
      { schema: SCHEMAS.options(listParams, 'optionsSubscriptions') },
      async (_request, reply) => reply.code(204).header('allow', 'GET, POST, OPTIONS').send(),
    );
    app.options<ItemRoute>(
      '/v1/namespaces/:namespace/subscriptions/:id',
      { schema: SCHEMAS.options(itemParams, 'optionsSubscription') },
      async (_request, reply) =>
        reply.code(204).header('allow', 'GET, PUT, DELETE, OPTIONS').send(),
    );
  };
}
