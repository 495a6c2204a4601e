/**
 * The live event stream of a broker (server-sent events) through the real server: what a client
 * sees after `: connected`, the CESQL filter, refusals before the stream starts, the server letting
 * go of a client that left, and a shutdown that does not wait for open streams.
 */
import http from 'node:http';
import { afterAll, describe, expect, it } from 'vitest';
import { Collector } from '../support/collector.js';
import { useServer } from '../support/e2e.js';
import { startServer } from '../support/server-process.js';
import { removeTempDirs, tempDir } from '../support/temp-dir.js';

/** One SSE message: its comment lines and its fields. */
interface SseMessage {
  readonly comments: string[];
  readonly event?: string;
  readonly id?: string;
  readonly data?: string;
}

interface OpenStream {
  readonly status: number;
  readonly contentType: string | undefined;
  readonly messages: Collector<SseMessage>;
  /** Resolves when the server ended the response. */
  readonly ended: Promise<void>;
  /** Stops reading from the connection (a slow client), and starts again. */
  pause(): void;
  resume(): void;
  /** Goes away, as a client that closes its connection. */
  close(): void;
}

function parseMessage(block: string): SseMessage {
  const comments: string[] = [];
  const fields: Record<string, string> = {};
  for (const line of block.split('\n')) {
    if (line.startsWith(':')) comments.push(line.slice(1).trim());
    else {
      const at = line.indexOf(':');
      const name = at < 0 ? line : line.slice(0, at);
      const value = at < 0 ? '' : line.slice(at + 1).replace(/^ /, '');
      fields[name] = fields[name] === undefined ? value : `${fields[name]}\n${value}`;
    }
  }
  return { comments, ...fields };
}

/** Opens the stream (node:http, so the test controls the connection) and parses what arrives. */
function openStream(baseUrl: string, broker: string, filter?: string): Promise<OpenStream> {
  const query = filter === undefined ? '' : `?filter=${encodeURIComponent(filter)}`;
  const url = `${baseUrl}/v1/namespaces/default/brokers/${broker}/events${query}`;
  return new Promise((resolve, reject) => {
    const request = http.get(url, { headers: { accept: 'text/event-stream' } }, (response) => {
      const messages = new Collector<SseMessage>('stream messages');
      let buffer = '';
      const ended = new Promise<void>((done) => {
        response.on('end', done);
        response.on('close', done);
      });
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        buffer += chunk;
        for (let at = buffer.indexOf('\n\n'); at >= 0; at = buffer.indexOf('\n\n')) {
          messages.push(parseMessage(buffer.slice(0, at)));
          buffer = buffer.slice(at + 2);
        }
      });
      resolve({
        status: response.statusCode ?? 0,
        contentType: response.headers['content-type'],
        messages,
        ended,
        pause: () => response.pause(),
        resume: () => response.resume(),
        close: () => request.destroy(),
      });
    });
    request.on('error', (error) => {
      if ((error as NodeJS.ErrnoException).code !== 'ECONNRESET') reject(error);
    });
  });
}

/** Opens a stream and waits for `: connected` (from then on it sees every stored event). */
async function connected(baseUrl: string, broker: string, filter?: string): Promise<OpenStream> {
  const stream = await openStream(baseUrl, broker, filter);
  expect(stream.status).toBe(200);
  expect(stream.contentType).toMatch(/^text\/event-stream/);
  const first = await stream.messages.next();
  expect(first.comments).toEqual(['connected']);
  return stream;
}

const eventsIn = (messages: readonly SseMessage[]): SseMessage[] =>
  messages.filter((m) => m.event === 'cloudevent');

describe('live event stream', () => {
  const fx = useServer(['--log-level', 'debug']);
  afterAll(removeTempDirs);

  it('sends each event stored from the moment of connection, in structured JSON', async () => {
    const broker = await fx.broker();
    const before = await fx.send(broker, { type: 'com.example.before' });
    const stream = await connected(fx.url, broker);
    try {
      const id = await fx.send(
        broker,
        { type: 'com.example.live', source: '/stream', subject: 'a b' },
        '{"n":1}',
        'application/json',
      );
      const message = await stream.messages.next();
      expect(message.event).toBe('cloudevent');
      expect(message.id).toBe(id);
      const event = JSON.parse(message.data!) as Record<string, unknown>;
      expect(event).toMatchObject({
        specversion: '1.0',
        id,
        type: 'com.example.live',
        source: '/stream',
        subject: 'a b',
        datacontenttype: 'application/json',
        data: { n: 1 },
      });
      // Only events stored after the connection: the earlier one never comes.
      expect(eventsIn(stream.messages.items).map((m) => m.id)).not.toContain(before);
    } finally {
      stream.close();
    }
  });

  it('sends only the events the CESQL filter matches, and only of its broker', async () => {
    const broker = await fx.broker();
    const other = await fx.broker();
    const stream = await connected(fx.url, broker, "type LIKE 'com.example.keep%' AND n = '2'");
    try {
      const skippedType = await fx.send(broker, { type: 'com.example.drop', n: '2' });
      const skippedValue = await fx.send(broker, { type: 'com.example.keep', n: '3' });
      const otherBroker = await fx.send(other, { type: 'com.example.keep', n: '2' });
      const kept = await fx.send(broker, { type: 'com.example.keep.this', n: '2' });
      await stream.messages.until(
        (items) => items.some((m) => m.id === kept),
        'the matching event',
      );
      // The others were stored (202) before the matching one, so they would have come first.
      expect(eventsIn(stream.messages.items).map((m) => m.id)).toEqual([kept]);
      expect([skippedType, skippedValue, otherBroker]).not.toContain(kept);
    } finally {
      stream.close();
    }
  });

  it('refuses a bad filter (400 naming filter) and an unknown broker (404) before streaming', async () => {
    const bad = await fetch(
      `${fx.url}/v1/namespaces/default/brokers/default/events?filter=${encodeURIComponent('type =')}`,
    );
    expect(bad.status).toBe(400);
    expect(bad.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    const problem = (await bad.json()) as { code: string; errors: { field: string }[] };
    expect(problem.code).toBe('BAD_REQUEST');
    expect(problem.errors.map((e) => e.field)).toEqual(['filter']);

    const missing = await fetch(`${fx.url}/v1/namespaces/default/brokers/nope/events`);
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { code: string }).code).toBe('BROKER_NOT_FOUND');
  });

  it('lets go of a client that disconnects, and keeps serving the others', async () => {
    const broker = await fx.broker();
    const closedLines = (output: string): number =>
      output.split('\n').filter((line) => line.includes('"event stream closed"')).length;
    const staying = await connected(fx.url, broker);
    const leaving = await connected(fx.url, broker);
    try {
      const closedBefore = closedLines(fx.server.output());
      leaving.close();
      await fx.server.waitForOutput((output) => closedLines(output) > closedBefore);
      const line = fx.server
        .output()
        .split('\n')
        .filter((l) => l.includes('"event stream closed"'))
        .pop()!;
      expect(JSON.parse(line)).toMatchObject({ broker, namespace: 'default' });

      // The event path does not notice: the remaining client still gets events.
      const id = await fx.send(broker);
      await staying.messages.until((items) => items.some((m) => m.id === id), 'the event');
    } finally {
      staying.close();
    }
  });

  it('drops events for a client that stops reading, says how many once it reads again, and goes on', async () => {
    const broker = await fx.broker();
    const stream = await connected(fx.url, broker);
    try {
      // The socket's buffers and the server's queue of 1,000 messages hold far less than this.
      stream.pause();
      const total = 3000;
      const perBatch = 50;
      const data = 'x'.repeat(16 * 1024);
      for (let first = 0; first < total; first += perBatch) {
        const batch = Array.from({ length: perBatch }, (_, i) => ({
          specversion: '1.0',
          id: `slow-${first + i}`,
          source: '/slow-client',
          type: 'com.example.slow',
          datacontenttype: 'text/plain',
          data,
        }));
        const response = await fetch(`${fx.url}/default/${broker}`, {
          method: 'POST',
          headers: { 'content-type': 'application/cloudevents-batch+json' },
          body: JSON.stringify(batch),
        });
        expect(response.status).toBe(202);
      }
      // Every event was offered to the stream before its 202: the client reads again.
      stream.resume();
      const droppedIn = (m: SseMessage): number[] =>
        m.comments.filter((c) => c.startsWith('dropped ')).map((c) => Number(c.slice(8)));
      await stream.messages.until(
        (items) => items.some((m) => droppedIn(m).length > 0),
        'the dropped comment',
        60_000,
      );
      const dropped = stream.messages.items.flatMap(droppedIn).reduce((a, b) => a + b, 0);
      const received = eventsIn(stream.messages.items);
      console.log(`slow client: ${received.length} events sent to it, ${dropped} dropped`);
      expect(dropped).toBeGreaterThan(0);
      expect(received.length + dropped).toBe(total);
      // What it got came in order, without gaps before the drop.
      expect(received.map((m) => m.id)).toEqual(
        Array.from({ length: received.length }, (_, i) => `slow-${i}`),
      );

      // The stream goes on for the client.
      const id = await fx.send(broker);
      await stream.messages.until((items) => items.some((m) => m.id === id), 'an event after');
    } finally {
      stream.close();
    }
  });

  it('ends open streams when the server stops, without waiting for the clients', async () => {
    const server = await startServer({ dataDir: tempDir() });
    try {
      const stream = await connected(server.url, 'default');
      const exit = await server.stop();
      expect(exit.code).toBe(0);
      await stream.ended;
      expect(server.output()).toContain('"tributary stopped"');
    } finally {
      await server.stop();
    }
  });
});
