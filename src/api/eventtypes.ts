/**
 * The event type catalog: `GET /v1/namespaces/{ns}/eventtypes[?broker=][&source=]` lists the event
 * types each broker stored and each source emitted, with counts and the time last seen, shaped as
 * Knative EventTypes (src/broker/event-types.ts keeps them).
 */
import type { FastifyInstance, FastifyPluginAsync, FastifySchema } from 'fastify';
import { EVENT_TYPE_API_VERSION, type EventTypeCatalog } from '../broker/event-types.js';
import { label } from './schemas.js';

export interface EventTypesOptions {
  readonly catalog: EventTypeCatalog;
}

const EventType = {
  type: 'object',
  description:
    "A Knative EventType: a type seen in a broker or from a source, with Tributary's counts",
  properties: {
    apiVersion: { type: 'string', enum: [EVENT_TYPE_API_VERSION] },
    kind: { type: 'string', enum: ['EventType'] },
    metadata: {
      type: 'object',
      properties: { name: { type: 'string' }, namespace: { type: 'string' } },
    },
    spec: {
      type: 'object',
      properties: {
        type: { type: 'string', description: 'The CloudEvents type' },
        source: {
          type: 'string',
          description: 'The CloudEvents source, while every event counted had the same one',
        },
        reference: {
          type: 'object',
          description: 'The broker that stored the events, or the source that emitted them',
          properties: {
            apiVersion: { type: 'string' },
            kind: { type: 'string', examples: ['Broker', 'GitHubSource'] },
            name: { type: 'string' },
          },
        },
      },
    },
    status: {
      type: 'object',
      properties: {
        count: { type: 'integer', description: 'Events counted, across replicas and restarts' },
        lastSeen: { type: 'string', format: 'date-time' },
      },
    },
  },
};

const listSchema = {
  tags: ['management'],
  operationId: 'listEventTypes',
  summary: 'The event types seen per broker and per source, with counts',
  params: {
    type: 'object',
    properties: { namespace: label('Namespace') },
    required: ['namespace'],
  },
  querystring: {
    type: 'object',
    properties: {
      broker: { type: 'string', description: 'Only the types this broker stored' },
      source: { type: 'string', description: 'Only the types this source (its name) emitted' },
    },
  },
  response: {
    200: {
      description:
        'An EventTypeList; with both broker and source, the items of either. Counts written in the last few seconds may be missing from other replicas',
      type: 'object',
      properties: {
        apiVersion: { type: 'string' },
        kind: { type: 'string', enum: ['EventTypeList'] },
        items: { type: 'array', items: EventType },
      },
    },
  },
} as FastifySchema;

export function eventTypesPlugin(options: EventTypesOptions): FastifyPluginAsync {
  return async (app: FastifyInstance) => {
    // Responses are sent as they are; the schemas only describe them.
    app.setSerializerCompiler(() => (data) => JSON.stringify(data));

    type Route = {
      Params: { namespace: string };
      Querystring: { broker?: string; source?: string };
    };
    app.get<Route>(
      '/v1/namespaces/:namespace/eventtypes',
      { schema: listSchema },
      async (request) => {
        const { broker, source } = request.query;
        const all = await options.catalog.list(request.params.namespace);
        const items =
          broker === undefined && source === undefined
            ? all
            : all.filter(({ spec: { reference } }) =>
                reference.kind === 'Broker' ? reference.name === broker : reference.name === source,
              );
        return { apiVersion: EVENT_TYPE_API_VERSION, kind: 'EventTypeList', items };
      },
    );
  };
}
