/**
 * The management API: `/v1/namespaces/{ns}/{brokers,triggers,sources}[/{name}]` (PUT creates or
 * replaces, GET reads one or a list, DELETE removes) and `POST /v1/apply` for one or many
 * resources in JSON or multi-document YAML, Knative manifests as they are.
 */
import type { FastifyInstance, FastifyPluginAsync, FastifyRequest } from 'fastify';
import { parseAllDocuments } from 'yaml';
import { assertNoProblems, TributaryError } from '../core/errors.js';
import { COLLECTIONS, type ApiCollection, type ResourceKey } from '../core/resources/types.js';
import type { ControlPlane } from '../broker/control-plane.js';
import type { ResourceService } from '../broker/resource-service.js';
import type { EventLog, StoredResource } from '../backends/contracts.js';
import { serializeStructuredEvent } from '../core/codec/index.js';

export interface ManagementOptions {
  readonly service: ResourceService;
  readonly controlPlane: ControlPlane;
  readonly eventLog: EventLog;
  readonly bodyLimit: number;
}

const YAML_TYPES = ['application/yaml', 'application/x-yaml', 'text/yaml', 'text/x-yaml'];

/** A YAML body, parsed into its documents; a YAML syntax error is a 400 naming line and column. */
class YamlDocuments {
  constructor(readonly documents: unknown[]) {}
}

function parseYamlBody(text: string): YamlDocuments {
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
  return new YamlDocuments(
    list.map((doc) => doc.toJS() as unknown).filter((doc) => doc !== null && doc !== undefined),
  );
}

function isCollection(value: string): value is ApiCollection {
  return (COLLECTIONS as readonly string[]).includes(value);
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

    const keyOf = (params: {
      namespace: string;
      collection: string;
      name: string;
    }): ResourceKey & { readonly collection: ApiCollection } => {
      if (!isCollection(params.collection)) {
        throw new TributaryError(
          'NOT_FOUND',
          `No collection "${params.collection}"; use ${COLLECTIONS.join(', ')}`,
        );
      }
      return { collection: params.collection, namespace: params.namespace, name: params.name };
    };

    type ListParams = { Params: { namespace: string; collection: string } };
    type ItemParams = { Params: { namespace: string; collection: string; name: string } };

    app.get<ListParams>('/v1/namespaces/:namespace/:collection', async (request) => {
      const { collection, namespace } = keyOf({ ...request.params, name: '' });
      const items = await service.list(collection, namespace);
      return {
        apiVersion: 'v1',
        kind: 'List',
        items: await Promise.all(items.map((s) => render(request, s))),
      };
    });

    app.get<ItemParams>('/v1/namespaces/:namespace/:collection/:name', async (request) => {
      const key = keyOf(request.params);
      const stored = await service.get(key);
      if (stored === undefined) throw notFound(key);
      return render(request, stored);
    });

    app.put<ItemParams>('/v1/namespaces/:namespace/:collection/:name', async (request, reply) => {
      const key = keyOf(request.params);
      const checked = service.check(
        singleDocument(request.body),
        key.collection,
        key.namespace,
        key.name,
      );
      assertNoProblems(checked.problems);
      const result = await service.put(key.collection, checked.resource!);
      return reply
        .code(result.action === 'created' ? 201 : 200)
        .send(await render(request, result.stored));
    });

    app.delete<ItemParams>('/v1/namespaces/:namespace/:collection/:name', async (request) => {
      const key = keyOf(request.params);
      const deleted = await service.delete(key);
      if (deleted === undefined) throw notFound(key);
      return deleted.resource;
    });

    // ---- trigger operations: dead letters and replay ----

    type TriggerParams = { Params: { namespace: string; name: string } };
    const triggerKey = (params: { namespace: string; name: string }): ResourceKey => ({
      collection: 'triggers',
      namespace: params.namespace,
      name: params.name,
    });

    app.get<TriggerParams & { Querystring: { after?: string; limit?: string } }>(
      '/v1/namespaces/:namespace/triggers/:name/deadletters',
      async (request) => {
        const { id, broker } = controlPlane.subscriptionOf(triggerKey(request.params));
        const limit = parseLimit(request.query.limit);
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
      async (request) => {
        const { id, broker } = controlPlane.subscriptionOf(triggerKey(request.params));
        const ids = redriveIds(request.body);
        return { redriven: await eventLog.redriveDeadLetters(id, broker, ids) };
      },
    );

    app.post<TriggerParams>(
      '/v1/namespaces/:namespace/triggers/:name/replay',
      async (request, reply) => {
        const { id, broker } = controlPlane.subscriptionOf(triggerKey(request.params));
        const from = replayFrom(request.body);
        await eventLog.seek(id, broker, { from: 'time', time: from });
        return reply.code(202).send({ from: from.toISOString() });
      },
    );

    app.post('/v1/apply', async (request) => {
      const checked = service.checkAll(documentsOf(request.body));
      assertNoProblems(checked.problems, 'apply request');
      const items = [];
      for (const [i, { collection, resource }] of checked.resources!.entries()) {
        let result;
        try {
          result = await service.put(collection, resource);
        } catch (error) {
          if (!(error instanceof TributaryError) || error.problems.length === 0) throw error;
          const applied = i === 0 ? 'none was applied' : `documents [0] to [${i - 1}] were applied`;
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
    });
  };
}

const MAX_PAGE = 1000;

function parseLimit(text: string | undefined): number {
  if (text === undefined) return 100;
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!(n >= 1 && n <= MAX_PAGE)) {
    throw new TributaryError('BAD_REQUEST', `limit must be a whole number from 1 to ${MAX_PAGE}`, {
      problems: [
        { field: 'limit', message: `must be a whole number from 1 to ${MAX_PAGE}, got "${text}"` },
      ],
    });
  }
  return n;
}

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
