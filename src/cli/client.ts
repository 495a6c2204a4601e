/**
 * The HTTP side of the client commands: one place that knows the server URL and token, turns a
 * refused connection into a readable message, and an application/problem+json answer into the
 * lines the user sees (`error: <detail>`, then `  <field>: <message>` per problem).
 */

/** An error the CLI reports on stderr and ends with: `exitCode` 1 for failures, 2 for usage. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: 1 | 2,
    /** Further lines printed under the message (indented), such as each field and its problem. */
    readonly details: readonly string[] = [],
  ) {
    super(message);
    this.name = 'CliError';
  }
}

export function usageError(message: string): CliError {
  return new CliError(message, 2);
}

export interface ClientOptions {
  /** The server's base URL, such as http://127.0.0.1:8080. */
  readonly server: string;
  /** Sent as `Authorization: Bearer <token>` when set. */
  readonly token?: string | undefined;
}

export interface RequestOptions {
  readonly method?: string;
  readonly headers?: Record<string, string>;
  readonly body?: string | Uint8Array;
  readonly signal?: AbortSignal;
}

interface Problem {
  readonly detail?: unknown;
  readonly title?: unknown;
  readonly code?: unknown;
  readonly errors?: unknown;
}

export class ApiClient {
  private readonly base: URL;

  constructor(private readonly options: ClientOptions) {
    let base: URL;
    try {
      base = new URL(options.server);
    } catch {
      throw usageError(`--server: "${options.server}" is not a URL (such as http://host:8080)`);
    }
    if (base.protocol !== 'http:' && base.protocol !== 'https:') {
      throw usageError(`--server: "${options.server}" is not an http or https URL`);
    }
    if (!base.pathname.endsWith('/')) base.pathname += '/';
    this.base = base;
  }

  get server(): string {
    return this.options.server;
  }

  /** The absolute URL of `path` (given without a leading slash, its segments already encoded). */
  url(path: string): URL {
    return new URL(path.replace(/^\/+/, ''), this.base);
  }

  /**
   * Sends a request and resolves with a 2xx response; any other answer throws a CliError built
   * from its problem document, and an unreachable server throws one that says so.
   */
  async request(path: string, options: RequestOptions = {}): Promise<Response> {
    const headers: Record<string, string> = { ...options.headers };
    if (this.options.token !== undefined && this.options.token !== '') {
      headers.authorization = `Bearer ${this.options.token}`;
    }
    const url = this.url(path);
    let response: Response;
    try {
      response = await fetch(url, {
        method: options.method ?? 'GET',
        headers,
        ...(options.body === undefined ? {} : { body: options.body }),
        ...(options.signal === undefined ? {} : { signal: options.signal }),
      });
    } catch (error) {
      if (options.signal?.aborted === true) throw error;
      throw new CliError(
        `cannot connect to the server at ${this.options.server} (${reasonOf(error)}); ` +
          'check --server or TRIBUTARY_SERVER',
        1,
      );
    }
    if (response.ok) return response;
    throw await problemError(response);
  }

  /** A request whose answer is JSON. */
  async json(path: string, options: RequestOptions = {}): Promise<unknown> {
    const response = await this.request(path, {
      ...options,
      headers: { accept: 'application/json', ...options.headers },
    });
    const text = await response.text();
    try {
      return text === '' ? undefined : (JSON.parse(text) as unknown);
    } catch {
      throw new CliError(`the server answered ${response.status} with a body that is not JSON`, 1);
    }
  }
}

/** Why fetch() failed, from the innermost cause (`connect ECONNREFUSED 127.0.0.1:1`). */
function reasonOf(error: unknown): string {
  let current: unknown = error;
  while (
    current instanceof Error &&
    current.cause !== undefined &&
    current.cause !== null &&
    current.cause !== current
  ) {
    current = current.cause;
  }
  if (current instanceof Error) return current.message;
  if (typeof current === 'object' && current !== null && 'code' in current) {
    return String(current.code);
  }
  return String(current);
}

/** The CliError for a non-2xx answer: the problem's detail and each field, or the status line. */
export async function problemError(response: Response): Promise<CliError> {
  const text = await response.text().catch(() => '');
  let problem: Problem | undefined;
  try {
    const parsed = JSON.parse(text) as unknown;
    if (typeof parsed === 'object' && parsed !== null) problem = parsed;
  } catch {
    problem = undefined;
  }
  const detail =
    typeof problem?.detail === 'string'
      ? problem.detail
      : typeof problem?.title === 'string'
        ? problem.title
        : `the server answered ${response.status} ${response.statusText}${
            text.trim() === '' ? '' : `: ${text.trim().slice(0, 200)}`
          }`;
  const details: string[] = [];
  if (Array.isArray(problem?.errors)) {
    for (const entry of problem.errors as unknown[]) {
      const { field, message } = (entry ?? {}) as { field?: unknown; message?: unknown };
      if (typeof message !== 'string') continue;
      details.push(typeof field === 'string' && field !== '' ? `${field}: ${message}` : message);
    }
  }
  return new CliError(detail, 1, details);
}
