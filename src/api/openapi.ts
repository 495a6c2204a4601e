/**
 * The OpenAPI 3.1 document of the whole HTTP surface, generated from the routes' own schemas
 * (src/api/schemas.ts): `GET /openapi.json`, and a browsable UI at `/docs` (DESIGN.md section 3).
 *
 * Registered before every other route plugin: @fastify/swagger learns routes from an `onRoute`
 * hook, so a route added before it would be missing from the document. The plugin is not
 * encapsulated (like fastify-plugin's), so that the hook and the shared schemas live on the root.
 */
import { readFileSync } from 'node:fs';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance, FastifyPluginAsync, FastifySchema } from 'fastify';
import { PROBLEM_CONTENT_TYPE } from './problem.js';
import {
  DOCUMENTED_REQUEST,
  SHARED_SCHEMAS,
  TAGS,
  json,
  routeSchema,
  type DocumentedRequest,
} from './schemas.js';

/** Marks an operation whose documented body may be left out, until transformObject applies it. */
const OPTIONAL_BODY = 'x-optional-body';

interface PackageInfo {
  readonly version: string;
  readonly description?: string;
}

function packageInfo(): PackageInfo {
  // src/api and dist/api are both two levels below the package root.
  const text = readFileSync(new URL('../../package.json', import.meta.url), 'utf8');
  return JSON.parse(text) as PackageInfo;
}

/** Moves the documentation-only request parts of a route schema where @fastify/swagger reads them. */
function documentRequest(schema: FastifySchema | undefined): FastifySchema | undefined {
  const documented = (schema as Record<string, unknown> | undefined)?.[DOCUMENTED_REQUEST] as
    DocumentedRequest | undefined;
  if (schema === undefined || documented === undefined) return schema;
  const { [DOCUMENTED_REQUEST]: _documented, ...rest } = schema as Record<string, unknown>;
  return {
    ...rest,
    ...(documented.body === undefined ? {} : { body: documented.body }),
    ...(documented.headers === undefined ? {} : { headers: documented.headers }),
    ...(documented.consumes === undefined ? {} : { consumes: [...documented.consumes] }),
    ...(documented.optionalBody === true ? { [OPTIONAL_BODY]: true } : {}),
  };
}

type Operation = Record<string, unknown> & {
  requestBody?: { required?: boolean };
  responses?: Record<string, { content?: Record<string, { schema?: unknown }> }>;
};

const PROBLEM_REF = { $ref: '#/components/schemas/Problem' };

/**
 * Final touches on the document: applies the optional-body marks (@fastify/swagger marks every
 * documented body required), and makes every error documented as application/problem+json refer
 * to the one Problem schema, whichever route plugin described it (every error leaves through the
 * same handler, src/api/problem.ts, so that is its shape).
 */
function finish(document: Record<string, unknown>): Record<string, unknown> {
  const paths = (document.paths ?? {}) as Record<string, Record<string, Operation>>;
  for (const item of Object.values(paths)) {
    for (const operation of Object.values(item)) {
      if (typeof operation !== 'object' || operation === null) continue;
      if (OPTIONAL_BODY in operation) {
        delete operation[OPTIONAL_BODY];
        if (operation.requestBody !== undefined) operation.requestBody.required = false;
      }
      for (const [status, response] of Object.entries(operation.responses ?? {})) {
        const problem = response.content?.[PROBLEM_CONTENT_TYPE];
        if (/^[45]/.test(status) && problem !== undefined) problem.schema = { ...PROBLEM_REF };
      }
    }
  }
  return document;
}

const plugin: FastifyPluginAsync = async (app: FastifyInstance) => {
  const info = packageInfo();
  for (const schema of SHARED_SCHEMAS) app.addSchema(schema);

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Tributary',
        version: info.version,
        description: `${info.description ?? ''}\n\nErrors are application/problem+json with a stable \`code\` (docs/errors.md) and, for invalid input, every problem with its field path.`,
      },
      tags: TAGS.map((tag) => ({ ...tag })),
      components: {
        securitySchemes: {
          bearerAuth: {
            type: 'http',
            scheme: 'bearer',
            description:
              'Needed only when the server has tokens configured (docs/security.md); webhooks, health and documentation never need one.',
          },
        },
      },
      // Either no token or a bearer token: which one depends on the server's configuration.
      security: [{}, { bearerAuth: [] }],
    },
    // Shared schemas appear in components.schemas under their $id.
    refResolver: {
      buildLocalReference: (json, _baseUri, _fragment, i) =>
        typeof json.$id === 'string' ? json.$id : `def-${i}`,
    },
    transform: ({ schema, url }) => ({ schema: documentRequest(schema)!, url }),
    transformObject: (documentObject) =>
      finish(
        ('openapiObject' in documentObject
          ? documentObject.openapiObject
          : documentObject.swaggerObject) as Record<string, unknown>,
      ),
  });

  await app.register(swaggerUi, {
    routePrefix: '/docs',
    theme: { title: 'Tributary API' },
    uiConfig: { docExpansion: 'list', deepLinking: true },
  });

  app.get(
    '/openapi.json',
    {
      schema: routeSchema({
        tag: 'operations',
        operationId: 'getOpenApiDocument',
        summary: 'This OpenAPI document',
        response: { 200: json('The OpenAPI 3.1 document', { type: 'object' }) },
      }),
      serializerCompiler: () => (data) => JSON.stringify(data),
    },
    async () => app.swagger(),
  );
};

// Not encapsulated: @fastify/swagger's route hook and the shared schemas must reach every route.
Object.defineProperty(plugin, Symbol.for('skip-override'), { value: true });

export const openApiPlugin: FastifyPluginAsync = plugin;
