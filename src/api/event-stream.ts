/**
 * The live event stream of a broker: `GET /v1/namespaces/{ns}/brokers/{name}/events` answers
 * server-sent events (text/event-stream), one message per event the broker stores from the moment
 * of connection, optionally only those a CESQL `filter` matches. The `tail` command of the CLI and
 * the console's live view read it.
 *
 * - First a comment `: connected`, flushed at once: the client is subscribed from then on.
 * - Each event: `event: cloudevent`, `id: <ce id>`, `data: <the event in structured JSON>`.
 * - A comment `: keepalive` every 15 s keeps proxies from closing an idle stream.
 * - Fed by the ObserverHub: a stream sees the events stored through this replica only (behind a
 *   load balancer with several replicas, connect to each one).
 * - Never blocks the event path and never grows without bound: while the client's socket is
 *   full, up to `bufferLimit` messages wait; beyond that events are dropped for this client and a
 *   comment `: dropped N` tells how many, once the stream moves again.
 * - Ends when the client goes away, and when the server closes (before it waits for connections).
 */
import type { ServerResponse } from 'node:http';
import type { FastifyInstance, FastifyPluginAsync, FastifySchema } from 'fastify';
import type { ResourceService } from '../broker/resource-service.js';
import type { EventsStored, ObserverHub } from '../broker/observer.js';
import { CesqlParseError, cesqlMatches, compileCesql } from '../core/cesql/index.js';
import { serializeStructuredEvent } from '../core/codec/index.js';
import { TributaryError } from '../core/errors.js';
import type { CloudEvent } from '../core/event.js';
import { label } from './schemas.js';

export interface EventStreamOptions {
  readonly observers: ObserverHub;
  readonly service: ResourceService;
  /** Between keepalive comments, in ms; default 15 s. */
  readonly keepaliveMs?: number;
  /** Messages kept for a client whose socket is full before events are dropped; default 1,000. */
  readonly bufferLimit?: number;
}

const DEFAULT_KEEPALIVE_MS = 15_000;
const DEFAULT_BUFFER_LIMIT = 1000;

/** One connected client: writes while its socket takes them, queues a bounded number, drops the rest. */
class EventStream {
  private readonly queue: string[] = [];
  private blocked = false;
  private dropped = 0;
  private closed = false;

  constructor(
    private readonly res: ServerResponse,
    private readonly limit: number,
  ) {
    res.on('drain', () => this.drain());
  }

  send(chunk: string): void {
    if (this.closed) return;
    if (!this.blocked) {
      this.blocked = !this.res.write(chunk);
    } else if (this.queue.length < this.limit) {
      this.queue.push(chunk);
    } else {
      this.dropped++;
    }
  }

  /** A comment, only when nothing waits (a keepalive behind queued messages is pointless). */
  comment(text: string): void {
    if (!this.blocked) this.send(`: ${text}\n\n`);
  }

  private drain(): void {
    this.blocked = false;
    while (this.queue.length > 0 && !this.blocked) {
      this.blocked = !this.res.write(this.queue.shift()!);
    }
    // The dropped events came after every queued one: say so once those are out.
    if (!this.blocked && this.dropped > 0) {
      const n = this.dropped;
      this.dropped = 0;
      this.blocked = !this.res.write(`: dropped ${n}\n\n`);
    }
  }

  end(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue.length = 0;
    this.res.end();
  }
}

/** One SSE message for an event; the structured JSON is one line, and an id never breaks a line. */
function message(event: CloudEvent): string {
  const id = String(event.attributes.id ?? '').replace(/[\r\n]/g, ' ');
  return `event: cloudevent\nid: ${id}\ndata: ${serializeStructuredEvent(event)}\n\n`;
}

function compileFilter(text: string | undefined): ((event: CloudEvent) => boolean) | undefined {
  if (text === undefined || text.trim() === '') return undefined;
  try {
    const program = compileCesql(text);
    return (event) => cesqlMatches(program, event);
  } catch (error) {
    if (!(error instanceof CesqlParseError)) throw error;
    throw new TributaryError('BAD_REQUEST', `The filter is not valid CESQL: ${error.message}`, {
      problems: [{ field: 'filter', message: `invalid CESQL ${error.message}` }],
    });
  }
}

const problemResponse = (description: string): Record<string, unknown> => ({
  description,
  content: { 'application/problem+json': { schema: { type: 'object' } } },
});

const streamSchema = {
  tags: ['management'],
  operationId: 'streamBrokerEvents',
  summary: 'Live stream of the events a broker stores (server-sent events)',
  description:
    'Every event the broker stores through this replica from the moment of connection, as server-sent events: ' +
    '`event: cloudevent`, `id: <event id>`, `data: <structured JSON>`. A comment `: connected` comes first, ' +
    '`: keepalive` every 15 s, and `: dropped N` when a slow client missed N events.',
  params: {
    type: 'object',
    properties: {
      namespace: label('Namespace'),
      name: label('Name of the broker'),
    },
    required: ['namespace', 'name'],
  },
  querystring: {
    type: 'object',
    properties: {
      filter: {
        type: 'string',
        description: 'A CESQL expression; only events for which it is TRUE are sent',
        examples: ["type LIKE 'com.example.%'"],
      },
    },
  },
  response: {
    200: {
      description: 'The stream (text/event-stream), open until the client or the server closes it',
      content: { 'text/event-stream': { schema: { type: 'string' } } },
    },
    400: problemResponse('The filter is not valid CESQL (problem names the field `filter`)'),
    404: problemResponse('No such broker (BROKER_NOT_FOUND)'),
  },
} as FastifySchema;

export function eventStreamPlugin(options: EventStreamOptions): FastifyPluginAsync {
  const keepaliveMs = options.keepaliveMs ?? DEFAULT_KEEPALIVE_MS;
  const bufferLimit = options.bufferLimit ?? DEFAULT_BUFFER_LIMIT;
  return async (app: FastifyInstance) => {
    // Responses are sent as they are; the schemas only describe them.
    app.setSerializerCompiler(() => (data) => JSON.stringify(data));
    const open = new Set<() => void>();
    // Before the server waits for its connections to end: a stream never ends by itself.
    app.addHook('preClose', (done) => {
      for (const close of [...open]) close();
      done();
    });

    type Route = {
      Params: { namespace: string; name: string };
      Querystring: { filter?: string };
    };
    app.get<Route>(
      '/v1/namespaces/:namespace/brokers/:name/events',
      { schema: streamSchema },
      async (request, reply) => {
        const { namespace, name } = request.params;
        const matches = compileFilter(request.query.filter);
        const broker = await options.service.get({ collection: 'brokers', namespace, name });
        if (broker === undefined) {
          throw new TributaryError(
            'BROKER_NOT_FOUND',
            `No broker "${name}" in namespace "${namespace}"`,
          );
        }

        reply.hijack();
        const res = reply.raw;
        request.raw.socket.setNoDelay(true);
        res.writeHead(200, {
          'content-type': 'text/event-stream; charset=utf-8',
          'cache-control': 'no-cache, no-transform',
          connection: 'keep-alive',
          'x-accel-buffering': 'no',
        });
        const stream = new EventStream(res, bufferLimit);
        stream.send(': connected\n\n');

        const remove = options.observers.add({
          eventsStored(stored: EventsStored) {
            if (stored.broker !== name || stored.namespace !== namespace) return;
            for (const event of stored.events) {
              if (matches === undefined || matches(event)) stream.send(message(event));
            }
          },
        });
        const keepalive = setInterval(() => stream.comment('keepalive'), keepaliveMs);
        keepalive.unref();
        request.log.debug(
          { namespace, broker: name, streams: open.size + 1 },
          'event stream opened',
        );

        let done = false;
        const close = (): void => {
          if (done) return;
          done = true;
          remove();
          clearInterval(keepalive);
          open.delete(close);
          stream.end();
          request.log.debug({ namespace, broker: name, streams: open.size }, 'event stream closed');
        };
        open.add(close);
        res.on('close', close);
        res.on('error', close);
      },
    );
  };
}
