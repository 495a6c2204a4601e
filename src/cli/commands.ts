/**
 * The client commands of `tributary`: apply, get, delete, send and tail. Each talks to a running
 * server over its HTTP API (see docs/cli.md); none touches a backend directly.
 *
 * Exit codes: 0 done, 1 the server refused or could not be reached, 2 the command line is wrong.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { percentEncodeHeaderValue } from '../core/codec/percent.js';
import { ApiClient, CliError, usageError } from './client.js';
import {
  eventLine,
  formatDocument,
  OUTPUT_FORMATS,
  resourceTable,
  type OutputFormat,
} from './output.js';

export const DEFAULT_SERVER = 'http://127.0.0.1:8080';

type OptionSpec = {
  type: 'string' | 'boolean';
  short?: string;
  multiple?: boolean;
};

/** The options every client command takes. */
const GLOBAL_OPTIONS: Record<string, OptionSpec> = {
  server: { type: 'string' },
  token: { type: 'string' },
  namespace: { type: 'string', short: 'n' },
  output: { type: 'string', short: 'o' },
  help: { type: 'boolean', short: 'h' },
};

export const GLOBAL_HELP = `Options of every client command:
  --server <url>           the Tributary server; env TRIBUTARY_SERVER, default ${DEFAULT_SERVER}
  --token <token>          sent as "Authorization: Bearer <token>"; env TRIBUTARY_TOKEN
  -n, --namespace <ns>     the namespace; env TRIBUTARY_NAMESPACE, default "default"
  -o, --output <format>    table (default), json or yaml
  -h, --help               help of the command
Exit codes: 0 done; 1 the server refused (its reason and each field on stderr) or could not be
reached; 2 the command line is wrong.`;

interface Globals {
  readonly client: ApiClient;
  readonly namespace: string;
  readonly output: OutputFormat;
}

interface Command {
  readonly summary: string;
  readonly usage: string;
  readonly help: string;
  readonly options: Record<string, OptionSpec>;
  run(globals: Globals, values: Values, positionals: string[]): Promise<void>;
}

type Values = Record<string, string | boolean | string[] | undefined>;

// ---- kinds ----

interface Kind {
  readonly collection: string;
  readonly singular: string;
}

const KINDS: readonly (Kind & { readonly aliases: readonly string[] })[] = [
  { collection: 'brokers', singular: 'broker', aliases: ['br'] },
  { collection: 'triggers', singular: 'trigger', aliases: ['tr'] },
  { collection: 'sources', singular: 'source', aliases: ['src'] },
  { collection: 'eventtypes', singular: 'eventtype', aliases: ['et'] },
  { collection: 'subscriptions', singular: 'subscription', aliases: ['sub', 'subs'] },
];

const KIND_NAMES =
  'brokers (broker, br), triggers (trigger, tr), sources (source, src), eventtypes (eventtype, et), subscriptions (subscription, sub)';

function kindOf(word: string | undefined): Kind {
  if (word === undefined) throw usageError(`which kind? One of ${KIND_NAMES}`);
  const lower = word.toLowerCase();
  const kind = KINDS.find(
    (k) => k.collection === lower || k.singular === lower || k.aliases.includes(lower),
  );
  if (kind === undefined) throw usageError(`unknown kind "${word}"; use ${KIND_NAMES}`);
  return kind;
}

function segment(value: string): string {
  return encodeURIComponent(value);
}

// ---- helpers ----

function write(text: string): void {
  process.stdout.write(text);
}

function note(text: string): void {
  process.stderr.write(`${text}\n`);
}

async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** A file's bytes, `-` meaning standard input; a missing file is a usage error. */
async function readInput(file: string, flag: string): Promise<Buffer> {
  if (file === '-') return readStdin();
  try {
    return readFileSync(file);
  } catch (error) {
    const code = (error as { code?: string }).code;
    throw usageError(`${flag}: cannot read "${file}"${code === undefined ? '' : ` (${code})`}`);
  }
}

function str(values: Values, name: string): string | undefined {
  const value = values[name];
  return typeof value === 'string' ? value : undefined;
}

function required(values: Values, name: string): string {
  const value = str(values, name);
  if (value === undefined || value === '') throw usageError(`--${name} is required`);
  return value;
}

function noMorePositionals(positionals: string[], max: number, usage: string): void {
  if (positionals.length > max) {
    throw usageError(`unexpected argument "${positionals[max]}"; usage: ${usage}`);
  }
}

// ---- apply ----

/** The resources of an apply file, as the server flattens them: arrays and Lists become items. */
function flatten(doc: unknown): unknown[] {
  if (Array.isArray(doc)) return doc;
  if (
    typeof doc === 'object' &&
    doc !== null &&
    Array.isArray((doc as { items?: unknown }).items)
  ) {
    return (doc as { items: unknown[] }).items;
  }
  return [doc];
}

/**
 * The request body of apply. A file that parses gets `metadata.namespace` filled in where it is
 * missing and goes as JSON; one that does not parse goes as it is, so that the server names the
 * line and column the same way for every client.
 */
function applyBody(bytes: Buffer, namespace: string): { body: string; contentType: string } {
  const source = bytes.toString('utf8');
  const documents = parseAllDocuments(source);
  const list = Array.isArray(documents) ? documents : [documents];
  if (list.some((doc) => doc.errors.length > 0)) {
    return { body: source, contentType: 'application/yaml' };
  }
  const items = list
    .map((doc) => doc.toJS() as unknown)
    .filter((doc) => doc !== null && doc !== undefined)
    .flatMap(flatten);
  for (const item of items) {
    if (typeof item !== 'object' || item === null) continue;
    const metadata = (item as { metadata?: unknown }).metadata;
    if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) continue;
    const meta = metadata as { namespace?: unknown };
    if (meta.namespace === undefined) meta.namespace = namespace;
  }
  return { body: JSON.stringify(items), contentType: 'application/json' };
}

const apply: Command = {
  summary: 'create or update the resources of a YAML or JSON file',
  usage: 'tributary apply -f FILE [options]',
  help: `Creates or updates every resource of FILE (YAML, several documents separated by "---", or
JSON: a resource, an array, or a List with items); "-f -" reads standard input. Knative
manifests are accepted as they are. A resource without metadata.namespace goes to --namespace.
Prints one line per resource: "<kind>/<name> created", "configured" or "unchanged".
The server checks the whole file first: if any resource is invalid, none is applied.

  -f, --filename <file>    the file, or - for standard input

Example:
  tributary apply -f broker-and-trigger.yaml`,
  options: { filename: { type: 'string', short: 'f' } },
  async run({ client, namespace, output }, values, positionals) {
    noMorePositionals(positionals, 0, this.usage);
    const file = required(values, 'filename');
    const { body, contentType } = applyBody(await readInput(file, '--filename'), namespace);
    const answer = (await client.json('v1/apply', {
      method: 'POST',
      headers: { 'content-type': contentType },
      body,
    })) as { items?: { kind?: string; name?: string; action?: string }[] };
    if (output !== 'table') {
      write(formatDocument(answer, output));
      return;
    }
    for (const item of answer.items ?? []) {
      write(`${String(item.kind).toLowerCase()}/${item.name} ${item.action}\n`);
    }
  },
};

// ---- get ----

/** The items of a list answer: `{items: [...]}`, or a bare array. */
function listItems(answer: unknown): unknown[] {
  if (Array.isArray(answer)) return answer;
  const items = (answer as { items?: unknown } | undefined)?.items;
  return Array.isArray(items) ? items : [];
}

const get: Command = {
  summary: 'list resources of a kind, or show one',
  usage: 'tributary get <kind> [name] [options]',
  help: `Lists the resources of a kind in the namespace, or shows the one named. Kinds: ${KIND_NAMES}.
The table shows NAME, READY, REASON and AGE, and per kind: URL (brokers), BROKER and
SUBSCRIBER (triggers), KIND and SINK (sources). Eventtypes (the catalog of types seen) show
NAME, TYPE, SOURCE, REFERENCE, COUNT and LAST SEEN; subscriptions (the CloudEvents
Subscriptions API) NAME (the id), BROKER, SOURCE, TYPES and SINK. -o json or -o yaml
prints what the server answers (a list, or the one resource), status included.

Examples:
  tributary get brokers
  tributary get trigger orders-to-billing -o yaml`,
  options: {},
  async run({ client, namespace, output }, _values, positionals) {
    noMorePositionals(positionals, 2, this.usage);
    const kind = kindOf(positionals[0]);
    const name = positionals[1];
    const path = `v1/namespaces/${segment(namespace)}/${kind.collection}${
      name === undefined ? '' : `/${segment(name)}`
    }`;
    const answer = await client.json(path);
    if (output !== 'table') {
      write(formatDocument(answer, output));
      return;
    }
    const items = name === undefined ? listItems(answer) : [answer];
    if (items.length === 0) {
      note(`No ${kind.collection} in namespace "${namespace}".`);
      return;
    }
    write(resourceTable(kind.collection, items));
  },
};

// ---- delete ----

const del: Command = {
  summary: 'delete a resource',
  usage: 'tributary delete <kind> <name> [options]',
  help: `Deletes the named resource. Kinds: ${KIND_NAMES}.
Deleting a broker also deletes the events it holds. Prints "<kind>/<name> deleted"; -o json or
-o yaml prints the deleted resource.

Example:
  tributary delete trigger orders-to-billing`,
  options: {},
  async run({ client, namespace, output }, _values, positionals) {
    noMorePositionals(positionals, 2, this.usage);
    const kind = kindOf(positionals[0]);
    const name = positionals[1];
    if (name === undefined) throw usageError(`which ${kind.singular}? usage: ${this.usage}`);
    const answer = await client.json(
      `v1/namespaces/${segment(namespace)}/${kind.collection}/${segment(name)}`,
      { method: 'DELETE' },
    );
    if (output !== 'table') write(formatDocument(answer ?? null, output));
    else write(`${kind.singular}/${name} deleted\n`);
  },
};

// ---- send ----

/** CloudEvents attribute names: lower-case letters and digits. */
const ATTRIBUTE_NAME = /^[a-z0-9]+$/;
const SET_BY_FLAGS = new Set(['specversion', 'id', 'type', 'source', 'datacontenttype']);

function extensionHeaders(entries: string[]): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const entry of entries) {
    const eq = entry.indexOf('=');
    const name = eq < 0 ? entry : entry.slice(0, eq);
    if (eq < 0) throw usageError(`--extension "${entry}": give name=value`);
    if (!ATTRIBUTE_NAME.test(name)) {
      throw usageError(
        `--extension "${entry}": an attribute name is lower-case letters and digits only`,
      );
    }
    if (SET_BY_FLAGS.has(name)) {
      throw usageError(`--extension "${entry}": ${name} has its own option`);
    }
    headers[`ce-${name}`] = percentEncodeHeaderValue(entry.slice(eq + 1));
  }
  return headers;
}

const send: Command = {
  summary: 'send a CloudEvent to a broker',
  usage: 'tributary send --broker NAME --type TYPE --source SOURCE [options]',
  help: `Sends one CloudEvent (HTTP binary content mode) to a broker's ingress,
POST /<namespace>/<broker>, and prints its id once the broker has stored it.

  --broker <name>          the broker (required)
  --type <type>            the event's type (required)
  --source <uri-ref>       the event's source (required)
  --id <id>                the event's id; a new UUID by default
  --data <json>|@<file>    the data: inline text, or @file (@- reads standard input)
  --content-type <type>    the data's media type; application/json by default, and then the
                           data must be JSON. Give it for any other data.
  --extension <name=value> another attribute (subject, time, partitionkey, ...); repeatable

Examples:
  tributary send --broker default --type com.example.order.placed --source /shop \\
    --data '{"order": 42}' --extension subject=order-42
  tributary send --broker default --type com.example.note --source /cli \\
    --content-type text/plain --data @note.txt`,
  options: {
    broker: { type: 'string' },
    type: { type: 'string' },
    source: { type: 'string' },
    id: { type: 'string' },
    data: { type: 'string' },
    'content-type': { type: 'string' },
    extension: { type: 'string', multiple: true },
  },
  async run({ client, namespace, output }, values, positionals) {
    noMorePositionals(positionals, 0, this.usage);
    const broker = required(values, 'broker');
    const type = required(values, 'type');
    const source = required(values, 'source');
    const id = str(values, 'id') ?? randomUUID();
    const headers: Record<string, string> = {
      ...extensionHeaders((values.extension as string[] | undefined) ?? []),
      'ce-specversion': '1.0',
      'ce-id': percentEncodeHeaderValue(id),
      'ce-type': percentEncodeHeaderValue(type),
      'ce-source': percentEncodeHeaderValue(source),
    };
    const dataOption = str(values, 'data');
    let body: Buffer | undefined;
    if (dataOption !== undefined) {
      body = dataOption.startsWith('@')
        ? await readInput(dataOption.slice(1), '--data')
        : Buffer.from(dataOption, 'utf8');
      const contentType = str(values, 'content-type');
      if (contentType === undefined) {
        try {
          JSON.parse(body.toString('utf8'));
        } catch {
          throw usageError('--data is not JSON; give its media type with --content-type');
        }
      }
      headers['content-type'] = contentType ?? 'application/json';
    } else if (str(values, 'content-type') !== undefined) {
      throw usageError('--content-type describes --data; give --data too');
    }
    const response = await client.request(`${segment(namespace)}/${segment(broker)}`, {
      method: 'POST',
      headers,
      ...(body === undefined ? {} : { body }),
    });
    await response.arrayBuffer();
    if (output === 'table') write(`${id}\n`);
    else write(formatDocument({ id, broker, namespace }, output));
  },
};

// ---- tail ----

interface SseMessage {
  event: string;
  id: string;
  data: string[];
}

/**
 * Reads a server-sent event stream and calls `onMessage` per dispatched message and `onComment`
 * per comment line, until the stream ends (resolves) or fails (rejects).
 */
async function readEventStream(
  body: ReadableStream<Uint8Array>,
  onMessage: (message: { event: string; id: string; data: string }) => void,
  onComment: (comment: string) => void,
): Promise<void> {
  const decoder = new TextDecoder();
  let buffer = '';
  let message: SseMessage = { event: '', id: '', data: [] };
  const line = (text: string): void => {
    if (text === '') {
      if (message.data.length > 0) {
        onMessage({
          event: message.event || 'message',
          id: message.id,
          data: message.data.join('\n'),
        });
      }
      message = { event: '', id: '', data: [] };
      return;
    }
    if (text.startsWith(':')) {
      onComment(text.slice(1).trim());
      return;
    }
    const colon = text.indexOf(':');
    const field = colon < 0 ? text : text.slice(0, colon);
    let value = colon < 0 ? '' : text.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') message.event = value;
    else if (field === 'id') message.id = value;
    else if (field === 'data') message.data.push(value);
  };
  for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true });
    let end: number;
    while ((end = buffer.search(/\r\n|\r|\n/)) >= 0) {
      const newline = buffer.startsWith('\r\n', end) ? 2 : 1;
      // A lone \r at the end of a chunk may be the first half of \r\n: wait for more.
      if (buffer[end] === '\r' && newline === 1 && end === buffer.length - 1) break;
      line(buffer.slice(0, end));
      buffer = buffer.slice(end + newline);
    }
  }
}

const tail: Command = {
  summary: "follow a broker's events live",
  usage: 'tributary tail --broker NAME [--filter CESQL] [options]',
  help: `Follows the events a broker stores from now on (what producers send, replies, sources),
until Ctrl-C. Prints one line per event: time, type, source, id, then the data, shortened;
-o json prints each event as one line of structured-mode JSON, -o yaml as YAML documents.
"Following ..." on stderr says the stream is open. If this client cannot keep up, the
server skips events and a warning on stderr says how many.

  --broker <name>          the broker (required)
  --filter <cesql>         only events for which this CESQL expression is true

Example:
  tributary tail --broker default --filter "type LIKE 'com.example.order.%'"`,
  options: {
    broker: { type: 'string' },
    filter: { type: 'string' },
  },
  async run({ client, namespace, output }, values, positionals) {
    noMorePositionals(positionals, 0, this.usage);
    const broker = required(values, 'broker');
    const filter = str(values, 'filter');
    const controller = new AbortController();
    let stopped = false;
    const stop = (): void => {
      stopped = true;
      controller.abort();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    const query = filter === undefined ? '' : `?filter=${encodeURIComponent(filter)}`;
    try {
      const response = await client.request(
        `v1/namespaces/${segment(namespace)}/brokers/${segment(broker)}/events${query}`,
        { headers: { accept: 'text/event-stream' }, signal: controller.signal },
      );
      if (!(response.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
        await response.arrayBuffer().catch(() => undefined);
        throw new CliError('the server did not answer with an event stream', 1);
      }
      if (response.body === null) throw new CliError('the server sent no event stream', 1);
      await readEventStream(
        response.body,
        (message) => {
          if (message.event !== 'cloudevent') return;
          let event: unknown;
          try {
            event = JSON.parse(message.data);
          } catch {
            note(`tributary: skipped an event that is not JSON (id ${message.id || '?'})`);
            return;
          }
          if (output === 'json') write(`${JSON.stringify(event)}\n`);
          else if (output === 'yaml') write(`---\n${formatDocument(event, 'yaml')}`);
          else write(`${eventLine(event)}\n`);
        },
        (comment) => {
          if (comment === 'connected') {
            note(
              `Following broker "${broker}" in namespace "${namespace}"${
                filter === undefined ? '' : ` (filter: ${filter})`
              }; Ctrl-C to stop.`,
            );
          } else if (comment.startsWith('dropped')) {
            const count = comment.slice('dropped'.length).trim();
            note(`tributary: ${count} events skipped: this client did not keep up`);
          }
        },
      );
      if (!stopped) throw new CliError('the server closed the event stream', 1);
    } catch (error) {
      if (stopped) return;
      if (error instanceof CliError) throw error;
      throw new CliError(`the event stream broke: ${(error as Error).message}`, 1);
    } finally {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
    }
  },
};

export const COMMANDS: Readonly<Record<string, Command>> = {
  apply,
  get,
  delete: del,
  send,
  tail,
};

/** The part of `tributary --help` about the client commands. */
export function clientCommandsHelp(): string {
  const lines = Object.values(COMMANDS).map((c) => `  ${c.usage}\n      ${c.summary}`);
  return `Client commands (talk to a running server; "tributary <command> --help" for details):
${lines.join('\n')}

${GLOBAL_HELP}
`;
}

function commandHelp(name: string, command: Command): string {
  return `Usage: ${command.usage}

${command.help}

${GLOBAL_HELP}
`;
}

function option(values: Values, name: string, env: string): string | undefined {
  const value = str(values, name);
  if (value !== undefined) return value;
  const fromEnv = process.env[env];
  return fromEnv === undefined || fromEnv === '' ? undefined : fromEnv;
}

/** Runs client command `name` with its arguments; throws a CliError to fail. */
export async function runClientCommand(name: string, args: string[]): Promise<void> {
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (command === undefined) throw usageError(`unknown command "${name}"`);
  let values: Values;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args,
      options: { ...GLOBAL_OPTIONS, ...command.options },
      allowPositionals: true,
      strict: true,
    }) as { values: Values; positionals: string[] });
  } catch (error) {
    throw usageError(`${(error as Error).message}\nRun "tributary ${name} --help".`);
  }
  // `tributary tail | head -3`: a reader that went away ends the command, quietly.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(0);
    throw error;
  });
  if (values.help === true) {
    write(commandHelp(name, command));
    return;
  }
  const output = (str(values, 'output') ?? 'table') as OutputFormat;
  if (!OUTPUT_FORMATS.includes(output)) {
    throw usageError(`--output: "${output}" is not one of ${OUTPUT_FORMATS.join(', ')}`);
  }
  const client = new ApiClient({
    server: option(values, 'server', 'TRIBUTARY_SERVER') ?? DEFAULT_SERVER,
    token: option(values, 'token', 'TRIBUTARY_TOKEN'),
  });
  const namespace = option(values, 'namespace', 'TRIBUTARY_NAMESPACE') ?? 'default';
  await command.run({ client, namespace, output }, values, positionals);
}
