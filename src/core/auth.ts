/**
 * Bearer tokens of the HTTP API, and who may do what with them (docs/security.md). Pure: the
 * caller reads the token file and hands over its parsed contents and the environment.
 *
 * - A token is held only as its SHA-256 digest. A presented token is hashed and compared with
 *   every known digest in constant time (crypto.timingSafeEqual), without stopping at a match.
 * - A token is scoped to namespaces (`*`: all) and to `read` or `write` access (write includes
 *   read).
 * - `requirementOf` maps a route onto what it needs; the fastify side (src/api/auth.ts) enforces it.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FieldProblem } from './errors.js';
import type { Resource } from './resources/types.js';

export const ACCESS_LEVELS = ['read', 'write'] as const;
export type Access = (typeof ACCESS_LEVELS)[number];

/** Every namespace. */
export const ALL_NAMESPACES = '*';

/** Shortest token accepted in clear text (tokenSha256 digests are taken as they are). */
export const MIN_TOKEN_LENGTH = 16;

/** The Broker annotation that makes its ingress require a token with write access to its namespace. */
export const INGRESS_AUTH_ANNOTATION = 'tributary.dev/ingress-auth';

/** Annotation values that leave the ingress open; any other value requires a token. */
const INGRESS_AUTH_OFF = new Set(['', 'none', 'false', 'off', 'disabled', 'optional']);

/** Who a token belongs to and what it may do. */
export interface Principal {
  readonly name: string;
  readonly namespaces: readonly string[];
  readonly access: Access;
}

interface Entry extends Principal {
  readonly digest: Buffer;
}

export function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/** The configured tokens; empty means the API is open (as without any configuration). */
export class TokenTable {
  private readonly entries: readonly Entry[];

  constructor(entries: readonly Entry[]) {
    this.entries = entries.map((e) => Object.freeze({ ...e, namespaces: [...e.namespaces] }));
  }

  get size(): number {
    return this.entries.length;
  }

  get names(): string[] {
    return this.entries.map((e) => e.name);
  }

  /** The principal of `token`, or undefined when no configured token is equal to it. */
  authenticate(token: string): Principal | undefined {
    const digest = sha256(token);
    let found: Entry | undefined;
    // Every digest is compared, so the time taken does not depend on which one matches.
    for (const entry of this.entries) {
      if (timingSafeEqual(entry.digest, digest) && found === undefined) found = entry;
    }
    return found === undefined
      ? undefined
      : { name: found.name, namespaces: found.namespaces, access: found.access };
  }
}

/** Whether `principal` may use `namespace` with `access`. */
export function allows(principal: Principal, namespace: string, access: Access): boolean {
  if (access === 'write' && principal.access !== 'write') return false;
  return principal.namespaces.includes(ALL_NAMESPACES) || principal.namespaces.includes(namespace);
}

/** Whether `principal` may use every namespace with `access` (operations not bound to one). */
export function allowsAll(principal: Principal, access: Access): boolean {
  if (access === 'write' && principal.access !== 'write') return false;
  return principal.namespaces.includes(ALL_NAMESPACES);
}

/** What a route needs from the caller. */
export type Requirement =
  /** Nothing: health, documentation, console assets, webhooks (signed), unknown paths (404). */
  | { readonly kind: 'open' }
  /** A token allowed `access` in `namespace`. */
  | { readonly kind: 'namespace'; readonly namespace: string; readonly access: Access }
  /** A token allowed `access` in every namespace (metrics, operations not bound to a namespace). */
  | { readonly kind: 'all'; readonly access: Access }
  /** A token with write access; each resource of the body is checked where the body is parsed. */
  | { readonly kind: 'apply' }
  /** Open unless the broker requires a token (INGRESS_AUTH_ANNOTATION). */
  | { readonly kind: 'ingress'; readonly namespace: string; readonly broker: string };

const OPEN: Requirement = { kind: 'open' };
const READ_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
const OPEN_PREFIXES = ['/docs', '/ui'];
const OPEN_ROUTES = new Set(['/healthz', '/readyz', '/openapi.json']);
const NAMESPACED = '/v1/namespaces/:namespace';

function accessOf(method: string): Access {
  return READ_METHODS.has(method.toUpperCase()) ? 'read' : 'write';
}

/**
 * What the route `routeUrl` (fastify's pattern, such as `/v1/namespaces/:namespace/brokers`)
 * needs for `method`. `params` are the request's path parameters. A route that no rule names
 * needs a token for every namespace: a new route is closed until it is classified.
 */
export function requirementOf(
  method: string,
  routeUrl: string | undefined,
  params: Readonly<Record<string, string | undefined>>,
): Requirement {
  // No route: the not-found handler answers 404 and reveals nothing.
  if (routeUrl === undefined) return OPEN;
  if (OPEN_ROUTES.has(routeUrl)) return OPEN;
  if (OPEN_PREFIXES.some((p) => routeUrl === p || routeUrl.startsWith(`${p}/`))) return OPEN;
  // Webhook sources authenticate each delivery by its signature or token, never by a bearer token.
  if (routeUrl.startsWith('/webhooks/')) return OPEN;
  const access = accessOf(method);
  if (routeUrl === '/metrics') return { kind: 'all', access: 'read' };
  if (routeUrl === '/v1/apply') return access === 'write' ? { kind: 'apply' } : OPEN;
  if (routeUrl === NAMESPACED || routeUrl.startsWith(`${NAMESPACED}/`)) {
    const namespace = params.namespace;
    if (namespace === undefined) return { kind: 'all', access };
    return { kind: 'namespace', namespace, access };
  }
  if (routeUrl === '/:namespace/:broker') {
    // Only POST stores events; OPTIONS and the other methods (405) change nothing.
    if (method.toUpperCase() !== 'POST') return OPEN;
    const { namespace, broker } = params;
    if (namespace === undefined || broker === undefined) return OPEN;
    return { kind: 'ingress', namespace, broker };
  }
  return { kind: 'all', access };
}

/** Whether a Broker's annotations make its ingress require a token. */
export function ingressAuthRequired(annotations: Readonly<Record<string, unknown>> | undefined) {
  const value = annotations?.[INGRESS_AUTH_ANNOTATION];
  if (value === undefined) return false;
  return !(typeof value === 'string' && INGRESS_AUTH_OFF.has(value.trim().toLowerCase()));
}

/**
 * The namespaces writing `resource` changes or sends into: its own, and the namespace of the
 * broker its sink refers to (a source may deliver into a broker of another namespace).
 */
export function namespacesWritten(resource: Resource): string[] {
  const own = resource.metadata.namespace;
  const spec = resource.spec as { sink?: { ref?: { namespace?: unknown } } } | undefined;
  const sinkNamespace = spec?.sink?.ref?.namespace;
  return typeof sinkNamespace === 'string' && sinkNamespace !== own ? [own, sinkNamespace] : [own];
}

/**
 * The problems with `principal` writing `resources`: one per resource and namespace it may not
 * write, located as `[i].metadata.namespace` or `[i].spec.sink.ref.namespace` (no prefix with
 * `single`).
 */
export function writeProblems(
  principal: Principal,
  resources: readonly Resource[],
  single = false,
): FieldProblem[] {
  const problems: FieldProblem[] = [];
  resources.forEach((resource, i) => {
    const prefix = single ? '' : `[${i}].`;
    const [own, sink] = namespacesWritten(resource);
    if (!allows(principal, own!, 'write')) {
      problems.push({
        field: `${prefix}metadata.namespace`,
        message: `token "${principal.name}" may not write namespace "${own}"`,
      });
    }
    if (sink !== undefined && !allows(principal, sink, 'write')) {
      problems.push({
        field: `${prefix}spec.sink.ref.namespace`,
        message: `token "${principal.name}" may not send into namespace "${sink}"`,
      });
    }
  });
  return problems;
}

// ---------------------------------------------------------------------------------------------
// The token file

const ENTRY_FIELDS = new Set(['name', 'token', 'tokenEnv', 'tokenSha256', 'namespaces', 'access']);
const NAMESPACE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const HEX_DIGEST = /^[0-9a-fA-F]{64}$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

export interface ParsedTokens {
  readonly table: TokenTable;
  /** Every problem, each with its field path (`tokens[1].access`). */
  readonly problems: FieldProblem[];
}

export interface TokenSources {
  /** The parsed token file (a list of entries, or `{tokens: [...]}`); undefined: no file. */
  readonly file?: unknown;
  /** Where `tokenEnv` entries are read. */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** One token with write access to every namespace (TRIBUTARY_ADMIN_TOKEN), named `admin`. */
  readonly adminToken?: string;
  /** How the admin token is named in problems. */
  readonly adminTokenField?: string;
}

function clearTextProblem(token: string, field: string): FieldProblem | undefined {
  if (token.trim() !== token) return { field, message: 'must not start or end with white space' };
  if (token.length < MIN_TOKEN_LENGTH) {
    return {
      field,
      message: `must be at least ${MIN_TOKEN_LENGTH} characters (e.g. openssl rand -hex 32), has ${token.length}`,
    };
  }
  return undefined;
}

/** One entry of the file: its principal and digest, or its problems. */
function parseEntry(
  raw: unknown,
  field: string,
  env: TokenSources['env'],
): { entry?: Entry; problems: FieldProblem[] } {
  if (!isObject(raw)) {
    return {
      problems: [{ field, message: 'must be a mapping with name, a token and namespaces' }],
    };
  }
  const problems: FieldProblem[] = [];
  for (const key of Object.keys(raw)) {
    if (!ENTRY_FIELDS.has(key))
      problems.push({ field: `${field}.${key}`, message: 'unknown field' });
  }
  const { name, token, tokenEnv, tokenSha256, namespaces, access } = raw;
  if (typeof name !== 'string' || name.trim() === '') {
    problems.push({ field: `${field}.name`, message: 'required: a non-empty string' });
  }
  let digest: Buffer | undefined;
  const given = (['token', 'tokenEnv', 'tokenSha256'] as const).filter((k) => raw[k] !== undefined);
  if (given.length !== 1) {
    problems.push({
      field: given.length === 0 ? `${field}.token` : given.map((k) => `${field}.${k}`).join(', '),
      message: 'give exactly one of token, tokenEnv and tokenSha256',
    });
  } else if (token !== undefined) {
    if (typeof token !== 'string') {
      problems.push({ field: `${field}.token`, message: 'must be a string' });
    } else {
      const problem = clearTextProblem(token, `${field}.token`);
      if (problem === undefined) digest = sha256(token);
      else problems.push(problem);
    }
  } else if (tokenEnv !== undefined) {
    const value = typeof tokenEnv === 'string' ? env[tokenEnv] : undefined;
    if (typeof tokenEnv !== 'string' || !ENV_NAME.test(tokenEnv)) {
      problems.push({
        field: `${field}.tokenEnv`,
        message: 'must be an environment variable name',
      });
    } else if (value === undefined || value === '') {
      problems.push({
        field: `${field}.tokenEnv`,
        message: `the environment variable ${tokenEnv} is not set`,
      });
    } else {
      const problem = clearTextProblem(value, `${field}.tokenEnv`);
      if (problem === undefined) digest = sha256(value);
      else problems.push({ ...problem, message: `${tokenEnv} ${problem.message}` });
    }
  } else if (typeof tokenSha256 !== 'string' || !HEX_DIGEST.test(tokenSha256)) {
    problems.push({
      field: `${field}.tokenSha256`,
      message: 'must be the SHA-256 of the token in hex (64 characters; sha256sum prints it)',
    });
  } else {
    digest = Buffer.from(tokenSha256, 'hex');
  }
  const scopes: string[] = [];
  if (!Array.isArray(namespaces) || namespaces.length === 0) {
    problems.push({
      field: `${field}.namespaces`,
      message: 'required: a non-empty list of namespaces ("*" for all)',
    });
  } else {
    namespaces.forEach((ns, j) => {
      if (
        typeof ns === 'string' &&
        (ns === ALL_NAMESPACES || (NAMESPACE.test(ns) && ns.length <= 63))
      ) {
        scopes.push(ns);
      } else {
        problems.push({
          field: `${field}.namespaces[${j}]`,
          message: `${JSON.stringify(ns)} is neither a namespace name nor "*"`,
        });
      }
    });
  }
  if (access === undefined || !(ACCESS_LEVELS as readonly unknown[]).includes(access)) {
    problems.push({
      field: `${field}.access`,
      message: `${access === undefined ? 'required' : JSON.stringify(access) + ' is not valid'}: read or write`,
    });
  }
  if (problems.length > 0 || digest === undefined) return { problems };
  return {
    entry: { name: name as string, digest, namespaces: scopes, access: access as Access },
    problems,
  };
}

/**
 * The token table of a token file and an admin token, with every problem found: unknown or
 * missing fields, bad namespaces, short tokens, unset variables, repeated names or tokens.
 */
export function parseTokens(sources: TokenSources): ParsedTokens {
  const problems: FieldProblem[] = [];
  const entries: { entry: Entry; field: string }[] = [];
  if (sources.file !== undefined && sources.file !== null) {
    const list = isObject(sources.file) ? sources.file.tokens : sources.file;
    const base = isObject(sources.file) ? 'tokens' : '';
    if (isObject(sources.file)) {
      for (const key of Object.keys(sources.file)) {
        if (key !== 'tokens') problems.push({ field: key, message: 'unknown field (only tokens)' });
      }
    }
    if (!Array.isArray(list)) {
      problems.push({
        field: base || 'file',
        message:
          'must be a list of tokens, each {name, token | tokenEnv | tokenSha256, namespaces, access}',
      });
    } else {
      list.forEach((raw, i) => {
        const field = `${base}[${i}]`;
        const parsed = parseEntry(raw, field, sources.env);
        problems.push(...parsed.problems);
        if (parsed.entry !== undefined) entries.push({ entry: parsed.entry, field });
      });
    }
  }
  if (sources.adminToken !== undefined) {
    const field = sources.adminTokenField ?? 'adminToken';
    const problem = clearTextProblem(sources.adminToken, field);
    if (problem !== undefined) problems.push(problem);
    else {
      entries.push({
        entry: {
          name: 'admin',
          digest: sha256(sources.adminToken),
          namespaces: [ALL_NAMESPACES],
          access: 'write',
        },
        field,
      });
    }
  }
  const names = new Map<string, string>();
  const digests = new Map<string, string>();
  for (const { entry, field } of entries) {
    const sameName = names.get(entry.name);
    if (sameName !== undefined) {
      problems.push({
        field: `${field}.name`,
        message: `"${entry.name}" is also the name of ${sameName}`,
      });
    } else names.set(entry.name, field);
    const hex = entry.digest.toString('hex');
    const sameToken = digests.get(hex);
    if (sameToken !== undefined) {
      problems.push({ field, message: `has the same token as ${sameToken}` });
    } else digests.set(hex, field);
  }
  return {
    table: new TokenTable(problems.length > 0 ? [] : entries.map((e) => e.entry)),
    problems,
  };
}
