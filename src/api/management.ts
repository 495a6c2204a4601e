/**
 * The management API: `/v1/namespaces/{ns}/{brokers,triggers,sources}[/{name}]` (PUT creates or
 * replaces, GET reads one or a list, DELETE removes) and `POST /v1/apply` for one or many
 * resources in JSON or multi-document YAML, Knative manifests as they are.
 */
import type { FastifyInstance, FastifyPluginAsync, FastifyRequest } from 'fastify';
import { parseAllDocuments } from 'yaml';
import { assertNoProblems, TributaryError } from '../core/errors.js';
import { COLLECTIONS, type Collection, type ResourceKey } from '../core/resources/types.js';
import type { ControlPlane } from '../broker/control-plane.js';
import type { ResourceService } from '../broker/resource-service.js';
import type { StoredResource } from '../backends/contracts.js';

export interface ManagementOptions {
  readonly service: ResourceService;
  readonly controlPlane: ControlPlane;
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

function isCollection(value: string): value is Collection {
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
  const { service, controlPlane } = options;
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

    const render = (request: FastifyRequest, stored: StoredResource): Record<string, unknown> =>
      controlPlane.withStatus(stored, baseUrl(request));

    const keyOf = (params: {
      namespace: string;
      collection: string;
      name: string;
    }): ResourceKey => {
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
      return { apiVersion: 'v1', kind: 'List', items: items.map((s) => render(request, s)) };
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
        .send(render(request, result.stored));
    });

    app.delete<ItemParams>('/v1/namespaces/:namespace/:collection/:name', async (request) => {
      const key = keyOf(request.params);
      const deleted = await service.delete(key);
      if (deleted === undefined) throw notFound(key);
      return deleted.resource;
    });

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
          resource: render(request, result.stored),
        });
      }
      return { items };
    });
  };
}

function notFound(key: ResourceKey): TributaryError {
  return new TributaryError(
    'NOT_FOUND',
    `No ${key.collection.slice(0, -1)} "${key.name}" in namespace "${key.namespace}"`,
  );
}
