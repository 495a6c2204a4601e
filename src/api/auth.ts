/**
 * Bearer-token authentication and authorization of the HTTP surface (docs/security.md).
 *
 * One onRequest hook, on the root (like fastify-plugin's), decides per route with
 * `requirementOf` (src/core/auth.ts): management routes need a token for their namespace (GET
 * read, other methods write), `POST /v1/apply` a write token whose namespaces the handler checks
 * once the body is parsed (`authorizeWrite`), the broker ingress a write token for its namespace
 * only when the Broker carries the `tributary.dev/ingress-auth` annotation. Webhooks, health,
 * documentation and console assets stay open.
 *
 * Register it right after the OpenAPI plugin: its hook applies to the routes registered after it.
 */
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import {
  allows,
  allowsAll,
  parseTokens,
  requirementOf,
  writeProblems,
  type Principal,
  type TokenTable,
} from '../core/auth.js';
import { TributaryError } from '../core/errors.js';
import type { Resource } from '../core/resources/types.js';
import { readYamlFile } from '../config.js';

export interface TokenConfig {
  readonly tokensFile?: string;
  readonly adminToken?: string;
}

/**
 * The token table of the configuration; CONFIG_INVALID listing every bad entry with its field
 * path (`tokens[1].namespaces[0]`). Read once at start; `env` gives the `tokenEnv` variables.
 */
export function loadTokens(
  config: TokenConfig,
  env: Readonly<Record<string, string | undefined>>,
): TokenTable {
  let file: unknown;
  const path = config.tokensFile;
  if (path !== undefined) {
    file = readYamlFile(path, 'the tokens file');
    // An empty file is a mistake, not "no tokens": refuse it rather than leave the API open.
    if (file === null || file === undefined) file = 'empty';
  }
  const { table, problems } = parseTokens({
    file,
    env,
    ...(config.adminToken === undefined
      ? {}
      : { adminToken: config.adminToken, adminTokenField: 'adminToken (TRIBUTARY_ADMIN_TOKEN)' }),
  });
  if (problems.length > 0) {
    const where = path === undefined ? '' : ` in ${path}`;
    const detail = problems.map((p) => `${p.field}: ${p.message}`).join('\n  ');
    throw new TributaryError('CONFIG_INVALID', `Invalid tokens${where}:\n  ${detail}`, {
      problems,
    });
  }
  return table;
}

export interface AuthOptions {
  readonly tokens: TokenTable;
  /** Whether a broker's ingress requires a token (the control plane knows every broker). */
  readonly brokerRequiresToken: (namespace: string, name: string) => boolean;
}

export interface Auth {
  readonly plugin: FastifyPluginAsync;
  /**
   * Throws FORBIDDEN unless the caller of `request` may write every resource (its namespace, and
   * the namespace of the broker a source's sink refers to); a no-op without tokens. Called by the
   * management handlers once the body is parsed and checked, before anything is stored.
   */
  readonly authorizeWrite: (
    request: FastifyRequest,
    resources: readonly Resource[],
    single?: boolean,
  ) => void;
}

const REALM = 'Bearer realm="tributary"';

/** The bearer token of a request, or undefined when it carries none. */
function bearerToken(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (typeof header !== 'string') return undefined;
  const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  return match?.[1];
}

function unauthorized(reply: FastifyReply, detail: string, invalid: boolean): TributaryError {
  void reply.header('www-authenticate', invalid ? `${REALM}, error="invalid_token"` : REALM);
  return new TributaryError('UNAUTHORIZED', detail);
}

export function createAuth(options: AuthOptions): Auth {
  const { tokens, brokerRequiresToken } = options;
  const principals = new WeakMap<FastifyRequest, Principal>();

  /** The caller's principal; 401 when the request carries no token or an unknown one. */
  const authenticate = (request: FastifyRequest, reply: FastifyReply): Principal => {
    const token = bearerToken(request);
    if (token === undefined) {
      throw unauthorized(
        reply,
        tokens.size === 0
          ? 'This broker requires a token, and the server has none configured (docs/security.md)'
          : 'This request needs a token: send "Authorization: Bearer <token>"',
        false,
      );
    }
    const principal = tokens.authenticate(token);
    if (principal === undefined) throw unauthorized(reply, 'The bearer token is not valid', true);
    principals.set(request, principal);
    return principal;
  };

  const forbidden = (principal: Principal, what: string): TributaryError =>
    new TributaryError('FORBIDDEN', `Token "${principal.name}" may not ${what}`);

  const plugin: FastifyPluginAsync = async (app: FastifyInstance) => {
    app.addHook('onRequest', async (request, reply) => {
      const requirement = requirementOf(
        request.method,
        request.routeOptions.url,
        request.params as Record<string, string | undefined>,
      );
      switch (requirement.kind) {
        case 'open':
          return;
        case 'ingress': {
          const { namespace, broker } = requirement;
          if (!brokerRequiresToken(namespace, broker)) return;
          const principal = authenticate(request, reply);
          if (!allows(principal, namespace, 'write')) {
            throw forbidden(principal, `send into namespace "${namespace}"`);
          }
          return;
        }
      }
      // Without tokens the API is open, as it was before tokens existed.
      if (tokens.size === 0) return;
      const principal = authenticate(request, reply);
      switch (requirement.kind) {
        case 'namespace':
          if (!allows(principal, requirement.namespace, requirement.access)) {
            throw forbidden(
              principal,
              `${requirement.access} namespace "${requirement.namespace}"${principal.access === 'read' && requirement.access === 'write' ? ' (it is a read token)' : ''}`,
            );
          }
          return;
        case 'all':
          if (!allowsAll(principal, requirement.access)) {
            throw forbidden(principal, `${requirement.access} every namespace, as this path needs`);
          }
          return;
        case 'apply':
          if (principal.access !== 'write') {
            throw forbidden(principal, 'apply resources (it is a read token)');
          }
          return;
      }
    });
  };
  // Not encapsulated: the hook must reach the routes of the plugins registered after this one.
  Object.defineProperty(plugin, Symbol.for('skip-override'), { value: true });

  return {
    plugin,
    authorizeWrite: (request, written, single = false) => {
      if (tokens.size === 0) return;
      const principal = principals.get(request);
      if (principal === undefined) {
        throw new TributaryError('UNAUTHORIZED', 'This request needs a bearer token');
      }
      const problems = writeProblems(principal, written, single);
      if (problems.length === 0) return;
      const summary = problems.map((p) => `${p.field}: ${p.message}`).join('; ');
      throw new TributaryError(
        'FORBIDDEN',
        `Token "${principal.name}" may not write all of this; nothing was applied: ${summary}`,
        { problems },
      );
    },
  };
}
