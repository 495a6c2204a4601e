/**
 * The management API: `/v1/namespaces/{ns}/{brokers,triggers,sources}[/{name}]` (PUT creates or
 * replaces, GET reads one or a list, DELETE removes) and `POST /v1/apply` for one or many
 * resources in JSON or multi-document YAML, Knative manifests as they are.
 */
import type { FastifyInstance, FastifyPluginAsync, FastifyRequest } from 'fastify';
import { Lexer, parseAllDocuments, Parser } from 'yaml';
import { assertNoProblems, TributaryError } from '../core/errors.js';
import {
  COLLECTIONS,
  type ApiCollection,
  type Resource,
  type ResourceKey,
} from '../core/resources/types.js';
import type { ControlPlane } from '../broker/control-plane.js';
import type { ResourceService } from '../broker/resource-service.js';
import type { EventLog, StoredResource } from '../backends/contracts.js';
import { serializeStructuredEvent } from '../core/codec/index.js';
import {
  ApplyBody,
  ApplyResult,
  DeadLetterPage,
  DeadLetterQuery,
  documentOnlyResponses,
  ItemParams,
  json,
  NamespaceParams,
  problems,
  RedriveBody,
  ref,
  ReplayBody,
  RESOURCE_BODIES,
  RESOURCE_CONSUMES,
  routeSchema,
  TriggerParams as TriggerParamsSchema,
} from './schemas.js';

export interface ManagementOptions {
  readonly service: ResourceService;
  readonly controlPlane: ControlPlane;
  readonly eventLog: EventLog;
  readonly bodyLimit: number;
  /**
   * Throws unless the caller may write these resources (src/api/auth.ts); called once a body is
   * checked and before anything is stored. `single`: a PUT's one resource.
   */
  readonly authorizeWrite?: (
    request: FastifyRequest,
    resources: readonly Resource[],
    single?: boolean,
  ) => void;
}

const YAML_TYPES = ['application/yaml', 'application/x-yaml', 'text/yaml', 'text/x-yaml'];

/** A YAML body, parsed into its documents; a YAML syntax error is a 400 naming line and column. */
class YamlDocuments {
  constructor(readonly documents: unknown[]) {}
}

/**
 * Collections nested deeper than this are refused before the YAML is composed: the composer
 * recurses once per level, and a stack overflow inside it can take the process down.
 */
const MAX_YAML_DEPTH = 64;
/** Aliases a document may expand (yaml's own default, stated): more is a "billion laughs". */
const MAX_YAML_ALIASES = 100;

/** Throws BAD_REQUEST when the text nests collections deeper than MAX_YAML_DEPTH. */
function checkYamlDepth(text: string): void {
  // yaml's CST parser keeps its open collections on an explicit stack (no recursion); it holds
  // the document and the scalar being read besides the collections.
  const parser = new Parser();
  for (const lexeme of new Lexer().lex(text)) {
    for (const _token of parser.next(lexeme));
    if (parser.stack.length > MAX_YAML_DEPTH + 2) {
      throw new TributaryError('BAD_REQUEST', 'The body is not valid YAML', {
        problems: [
          { field: 'body', message: `collections nest deeper than ${MAX_YAML_DEPTH} levels` },
        ],
      });
    }
  }
}

function parseYamlBody(text: string): YamlDocuments {
  checkYamlDepth(text);
  const documents = parseAllDocuments(text);
  const list = Array.isArray(documents) ? documents : [documents];
  const problems = list.flatMap((doc, i) =>
    doc.errors.map((e) => ({
      field: list.length > 1 ? `document ${i + 1}` : 'body',
      message: `${e.message.split('\n')[0]}${e.linePos ? ` (line ${e.linePos[0].line}, column ${e.linePos[0].col})` : ''}`,
    })),
  );
  if (problems.length > 0)
    throw new TributaryError('BAD_REQUEST', 'The body is not valid YAML', { problems });
  const values = list.map((doc, i) => {
    try {
      return doc.toJS({ maxAliasCount: MAX_YAML_ALIASES }) as unknown;
    } catch (error) {
      // yaml refuses aliases that expand too much ("billion laughs") with a ReferenceError.
      throw new TributaryError('BAD_REQUEST', 'The body is not valid YAML', {
        problems: [
          {
            field: list.length > 1 ? `document ${i + 1}` : 'body',
            message: error instanceof Error ? error.message : String(error),
          },
        ],
      });
    }
  });
  return new YamlDocuments(values.filter((doc) => doc !== null && doc !== undefined));
}

function baseUrl(request: FastifyRequest): string {
  return `${request.protocol}://${request.host}`;
}

/** Documents of an apply body: a resource, an array of resources, a `List` with `items`, or YAML documents. */
function documentsOf(body: unknown): unknown[] {
  if (body instanceof YamlDocuments) return body.documents.flatMap(documentsOf);
  if (Array.isArray(body)) return body;
  if (
    typeof body === 'object' &&
    body !== null &&
    Array.isArray((body as { items?: unknown }).items)
  ) {
    return (body as { items: unknown[] }).items;
  }
  return [body];
}

/** The single resource of a PUT body. */
function singleDocument(body: unknown): unknown {
  if (!(body instanceof YamlDocuments)) return body;
  if (body.documents.length !== 1) {
    throw new TributaryError(
      'BAD_REQUEST',
      `PUT takes one resource; the body has ${body.documents.length} (use POST /v1/apply)`,
    );
  }
  return body.documents[0];
}

export function managementPlugin(options: ManagementOptions): FastifyPluginAsync {
  const { service, controlPlane, eventLog } = options;
  return async (app: FastifyInstance) => {
    documentOnlyResponses(app);
    app.addContentTypeParser(
      YAML_TYPES,
      { parseAs: 'string', bodyLimit: options.bodyLimit },
      (_req, body, done) => {
        try {
          done(null, parseYamlBody(body as string));
        } catch (error) {
          done(error as Error, undefined);
        }
      },
    );

    const render = (
      request: FastifyRequest,
      stored: StoredResource,
    ): Promise<Record<string, unknown>> => controlPlane.withStatus(stored, baseUrl(request));

    type ListParams = { Params: { namespace: string } };
    type ItemParams = { Params: { namespace: string; name: string } };

    // One set of routes per collection, so that each has its own operations and body in the
    // document; an unknown collection is answered 404 by the not-found handler.
    for (const collection of COLLECTIONS) {
      const { kind, schema } = COLLECTION_DOCS[collection];
      const base = `/v1/namespaces/:namespace/${collection}`;
      const keyOf = (params: {
        namespace: string;
        name: string;
      }): ResourceKey & {
        readonly collection: ApiCollection;
      } => ({ collection, namespace: params.namespace, name: params.name });

      app.get<ListParams>(
        base,
        {
          schema: routeSchema({
            tag: 'management',
            operationId: `list${kind}s`,
            summary: `List the ${collection} of a namespace`,
            params: NamespaceParams,
            response: {
              200: json(`The ${collection}, with their status`, ref('ResourceList')),
              ...problems(400),
            },
          }),
        },
        async (request) => {
          const items = await service.list(collection, request.params.namespace);
          return {
            apiVersion: 'v1',
            kind: 'List',
            items: await Promise.all(items.map((s) => render(request, s))),
          };
        },
      );

      app.get<ItemParams>(
        `${base}/:name`,
        {
          schema: routeSchema({
            tag: 'management',
            operationId: `get${kind}`,
            summary: `Read one ${kind}, with its status`,
            params: ItemParams,
            response: { 200: json(`The ${kind}`, schema), ...problems(400, 404) },
          }),
        },
        async (request) => {
          const key = keyOf(request.params);
          const stored = await service.get(key);
          if (stored === undefined) throw notFound(key);
          return render(request, stored);
        },
      );

      app.put<ItemParams>(
        `${base}/:name`,
        {
          schema: routeSchema({
            tag: 'management',
            operationId: `put${kind}`,
            summary: `Create or replace a ${kind}`,
            description:
              'JSON or YAML; Knative manifests are accepted as they are. The name and namespace come from the URL (metadata may repeat them). An invalid resource is refused with every problem and its field path.',
            params: ItemParams,
            request: { body: RESOURCE_BODIES[collection], consumes: RESOURCE_CONSUMES },
            response: {
              200: json('Replaced (or unchanged)', schema),
              201: json('Created', schema),
              ...problems(400, 409, 413, 415),
            },
          }),
        },
        async (request, reply) => {
          const key = keyOf(request.params);
          const checked = service.check(
            singleDocument(request.body),
            key.collection,
            key.namespace,
            key.name,
          );
          assertNoProblems(checked.problems);
          options.authorizeWrite?.(request, [checked.resource!], true);
          const result = await service.put(key.collection, checked.resource!);
          return reply
            .code(result.action === 'created' ? 201 : 200)
            .send(await render(request, result.stored));
        },
      );

      app.delete<ItemParams>(
        `${base}/:name`,
        {
          schema: routeSchema({
            tag: 'management',
            operationId: `delete${kind}`,
            summary: `Delete a ${kind}`,
            params: ItemParams,
            response: { 200: json(`The deleted ${kind}`, schema), ...problems(400, 404) },
          }),
        },
        async (request) => {
          const key = keyOf(request.params);
          const deleted = await service.delete(key);
          if (deleted === undefined) throw notFound(key);
          return deleted.resource;
        },
      );
    }

    // ---- trigger operations: dead letters and replay ----

    type TriggerParams = { Params: { namespace: string; name: string } };
    const triggerKey = (params: { namespace: string; name: string }): ResourceKey => ({
      collection: 'triggers',
      namespace: params.namespace,
      name: params.name,
    });

    app.get<TriggerParams & { Querystring: { after?: string; limit?: number } }>(
      '/v1/namespaces/:namespace/triggers/:name/deadletters',
      {
        schema: routeSchema({
          tag: 'management',
          operationId: 'listDeadLetters',
          summary: "A page of a trigger's dead letters, oldest first",
          params: TriggerParamsSchema,
          querystring: DeadLetterQuery,
          response: {
            200: json('The page, and the total kept', DeadLetterPage),
            ...problems(400, 404),
          },
        }),
      },
      async (request) => {
        const { id, broker } = controlPlane.subscriptionOf(triggerKey(request.params));
        // Checked (1 to MAX_PAGE) and defaulted by the route's querystring schema.
        const limit = request.query.limit ?? DEFAULT_PAGE;
        const page = {
          limit,
          ...(request.query.after === undefined ? {} : { after: request.query.after }),
        };
        const records = await eventLog.listDeadLetters(id, broker, page);
        const items = records.map((r) => ({
          id: r.id,
          deadLetteredAt: r.deadLetteredAt.toISOString(),
          reason: r.reason,
          attempts: r.attempts,
          ...(r.destination === undefined ? {} : { destination: r.destination }),
          ...(r.lastStatus === undefined ? {} : { lastStatus: r.lastStatus }),
          event: JSON.parse(serializeStructuredEvent(r.event)) as unknown,
        }));
        const last = records[records.length - 1];
        return {
          items,
          total: await eventLog.countDeadLetters(id, broker),
          ...(records.length === limit && last !== undefined ? { next: last.id } : {}),
        };
      },
    );

    app.post<TriggerParams>(
      '/v1/namespaces/:namespace/triggers/:name/deadletters/redrive',
      {
        schema: routeSchema({
          tag: 'management',
          operationId: 'redriveDeadLetters',
          summary: "Deliver a trigger's dead letters again (some, or all)",
          params: TriggerParamsSchema,
          request: { body: RedriveBody, optionalBody: true },
          response: {
            200: json('How many were handed back for delivery', {
              type: 'object',
              properties: { redriven: { type: 'integer' } },
            }),
            ...problems(400, 404),
          },
        }),
      },
      async (request) => {
        const { id, broker } = controlPlane.subscriptionOf(triggerKey(request.params));
        const ids = redriveIds(request.body);
        return { redriven: await eventLog.redriveDeadLetters(id, broker, ids) };
      },
    );

    app.post<TriggerParams>(
      '/v1/namespaces/:namespace/triggers/:name/replay',
      {
        schema: routeSchema({
          tag: 'management',
          operationId: 'replayTrigger',
          summary: 'Deliver the retained events of the broker again, from a time',
          params: TriggerParamsSchema,
          request: { body: ReplayBody },
          response: {
            202: json('The trigger restarts from that time', {
              type: 'object',
              properties: { from: { type: 'string', format: 'date-time' } },
            }),
            ...problems(400, 404),
          },
        }),
      },
      async (request, reply) => {
        const { id, broker } = controlPlane.subscriptionOf(triggerKey(request.params));
        const from = replayFrom(request.body);
        await eventLog.seek(id, broker, { from: 'time', time: from });
        return reply.code(202).send({ from: from.toISOString() });
      },
    );

    app.post(
      '/v1/apply',
      {
        schema: routeSchema({
          tag: 'management',
          operationId: 'applyResources',
          summary: 'Create or replace one or many resources of any kind',
          description:
            'Resources are checked all first: when one is invalid, none is applied and each problem names its document ([1].spec.broker).',
          request: { body: ApplyBody, consumes: RESOURCE_CONSUMES },
          response: {
            200: json('What was done to each resource, in order', ApplyResult),
            ...problems(400, 409, 413, 415),
          },
        }),
      },
      async (request) => {
        const checked = service.checkAll(documentsOf(request.body));
        assertNoProblems(checked.problems, 'apply request');
        options.authorizeWrite?.(
          request,
          checked.resources!.map((r) => r.resource),
        );
        const items = [];
        for (const [i, { collection, resource }] of checked.resources!.entries()) {
          let result;
          try {
            result = await service.put(collection, resource);
          } catch (error) {
            if (!(error instanceof TributaryError) || error.problems.length === 0) throw error;
            const applied =
              i === 0 ? 'none was applied' : `documents [0] to [${i - 1}] were applied`;
            throw new TributaryError(
              error.code,
              `Document [${i}] was refused; ${applied}: ${error.message}`,
              {
                problems: error.problems.map((p) => ({
                  field: `[${i}].${p.field}`,
                  message: p.message,
                })),
              },
            );
          }
          const { kind, metadata } = result.stored.resource;
          items.push({
            kind,
            namespace: metadata.namespace,
            name: metadata.name,
            action: result.action,
            resource: await render(request, result.stored),
          });
        }
        return { items };
      },
    );
  };
}

/** Dead letters per page when the query does not say. */
const DEFAULT_PAGE = 100;

/** What each collection holds, for the document. */
const COLLECTION_DOCS: Record<ApiCollection, { kind: string; schema: Record<string, unknown> }> = {
  brokers: { kind: 'Broker', schema: ref('Broker') },
  triggers: { kind: 'Trigger', schema: ref('Trigger') },
  sources: { kind: 'Source', schema: ref('Source') },
};

/** `{"ids": ["3", "7"]}` redrives those; no body, or no `ids`, redrives all. */
function redriveIds(body: unknown): string[] | undefined {
  if (body === undefined || body === null) return undefined;
  const ids = (body as { ids?: unknown }).ids;
  if (typeof body !== 'object' || Array.isArray(body)) {
    throw new TributaryError('BAD_REQUEST', 'The body must be an object such as {"ids": ["1"]}', {
      problems: [{ field: 'body', message: 'must be an object' }],
    });
  }
  if (ids === undefined) return undefined;
  if (!Array.isArray(ids) || !ids.every((id) => typeof id === 'string')) {
    throw new TributaryError('BAD_REQUEST', 'ids must be a list of dead-letter ids', {
      problems: [{ field: 'ids', message: 'must be a list of strings' }],
    });
  }
  return ids;
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

/** `{"from": "<RFC 3339 time>"}`. */
function replayFrom(body: unknown): Date {
  const from = (body as { from?: unknown } | null | undefined)?.from;
  const time = typeof from === 'string' && RFC3339.test(from) ? new Date(from) : undefined;
  if (time === undefined || Number.isNaN(time.getTime())) {
    throw new TributaryError('BAD_REQUEST', 'The body must be {"from": "<RFC 3339 time>"}', {
      problems: [
        {
          field: 'from',
          message: `must be an RFC 3339 time such as 2026-01-31T12:00:00Z, got ${JSON.stringify(from ?? null)}`,
        },
      ],
    });
  }
  return time;
}

function notFound(key: ResourceKey): TributaryError {
  return new TributaryError(
    'NOT_FOUND',
    `No ${key.collection.slice(0, -1)} "${key.name}" in namespace "${key.namespace}"`,
  );
}
