/**
 * Tracing through the real server. With `--otel-endpoint` pointing at an in-test OTLP/HTTP
 * receiver: the producer's trace (a W3C `traceparent` header, or the CloudEvents distributed
 * tracing extension) reaches the subscriber's `traceparent`, and the ingress, dispatch and
 * delivery attempt spans arrive with the messaging attributes. Without it (the default): the
 * event's own trace context is passed on untouched, no span is made, nothing is exported.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Collector } from '../support/collector.js';
import { useServer } from '../support/e2e.js';
import { binaryEvent } from '../support/server-process.js';

interface OtlpValue {
  stringValue?: string;
  intValue?: string | number;
  boolValue?: boolean;
}
interface OtlpAttribute {
  key: string;
  value: OtlpValue;
}
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes: OtlpAttribute[];
}
interface ReceivedSpan extends OtlpSpan {
  /** The span's attributes by key, as plain values. */
  readonly attrs: Record<string, string | number | boolean | undefined>;
  readonly service: string | undefined;
}

/** OTLP span kinds. */
const SERVER = 2;
const CLIENT = 3;
const CONSUMER = 5;

function plain(value: OtlpValue): string | number | boolean | undefined {
  if (value.stringValue !== undefined) return value.stringValue;
  if (value.intValue !== undefined) return Number(value.intValue);
  return value.boolValue;
}

function attrsOf(list: readonly OtlpAttribute[] = []): ReceivedSpan['attrs'] {
  return Object.fromEntries(list.map((a) => [a.key, plain(a.value)]));
}

/** A small OTLP/HTTP receiver: POST /v1/traces with the JSON encoding. */
class OtlpReceiver {
  readonly spans = new Collector<ReceivedSpan>('spans');
  requests = 0;
  contentTypes = new Set<string>();
  private server: http.Server | undefined;
  url = '';

  async start(): Promise<void> {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        this.requests++;
        this.contentTypes.add(String(req.headers['content-type']));
        if (req.method === 'POST' && req.url === '/v1/traces') {
          const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
            resourceSpans: {
              resource: { attributes: OtlpAttribute[] };
              scopeSpans: { spans: OtlpSpan[] }[];
            }[];
          };
          for (const rs of body.resourceSpans) {
            const service = attrsOf(rs.resource.attributes)['service.name'];
            for (const ss of rs.scopeSpans) {
              for (const span of ss.spans) {
                this.spans.push({
                  ...span,
                  attrs: attrsOf(span.attributes),
                  service: service as string | undefined,
                });
              }
            }
          }
        }
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{}');
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }

  /** The first span that satisfies `holds`, once one has arrived. */
  async find(holds: (span: ReceivedSpan) => boolean, what: string): Promise<ReceivedSpan> {
    await this.spans.until((spans) => spans.some(holds), what);
    return this.spans.items.find(holds)!;
  }
}

const hex = (bytes: number): string => randomBytes(bytes).toString('hex');

/** The trace id and span id of a `traceparent` header. */
function parts(traceparent: unknown): { traceId: string; spanId: string } {
  const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-0[01]$/.exec(String(traceparent));
  if (m === null) throw new Error(`not a traceparent: ${String(traceparent)}`);
  return { traceId: m[1]!, spanId: m[2]! };
}

const OTEL_ENV = { OTEL_EXPORTER_OTLP_ENDPOINT: '', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: '' };

describe('tracing on (--otel-endpoint)', () => {
  const otlp = new OtlpReceiver();
  const args: string[] = [];
  beforeAll(async () => {
    await otlp.start();
    // Read by useServer's beforeAll, which runs after this one.
    args.push('--otel-endpoint', otlp.url);
  });
  afterAll(() => otlp.stop());
  const fx = useServer(args, { ...OTEL_ENV, OTEL_BSP_SCHEDULE_DELAY: '50' });

  it('carries the trace of a traceparent header from the ingress to the subscriber, in spans', async () => {
    const broker = await fx.broker();
    const trigger = `${broker}-sub`;
    const receiver = await fx.subscribe(broker, trigger);
    const traceId = hex(16);
    const producerSpan = hex(8);
    const request = binaryEvent({
      specversion: '1.0',
      id: 'traced-1',
      source: '/tracing',
      type: 'com.example.traced',
    });
    const response = await fetch(`${fx.url}/default/${broker}`, {
      ...request,
      headers: { ...request.headers, traceparent: `00-${traceId}-${producerSpan}-01` },
    });
    expect(response.status).toBe(202);
    const [delivered] = await receiver.waitFor(1);
    const seen = parts(delivered!.headers.traceparent);
    expect(seen.traceId).toBe(traceId);
    // The broker adds no tracing extension to the event.
    expect(delivered!.headers['ce-traceparent']).toBeUndefined();

    const ingress = await otlp.find(
      (s) => s.traceId === traceId && s.kind === SERVER,
      'the ingress span',
    );
    expect(ingress.name).toBe(`send ${broker}`);
    expect(ingress.parentSpanId).toBe(producerSpan);
    expect(ingress.service).toBe('tributary');
    expect(ingress.attrs).toMatchObject({
      'messaging.system': 'tributary',
      'messaging.destination.name': broker,
      'messaging.operation.type': 'send',
      'messaging.message.id': 'traced-1',
      'http.response.status_code': 202,
    });
    const dispatch = await otlp.find(
      (s) => s.traceId === traceId && s.kind === CONSUMER,
      'the dispatch span',
    );
    expect(dispatch.parentSpanId).toBe(ingress.spanId);
    expect(dispatch.name).toBe(`process ${trigger}`);
    expect(dispatch.attrs).toMatchObject({
      'messaging.system': 'tributary',
      'messaging.destination.name': broker,
      'messaging.destination.subscription.name': trigger,
      'messaging.operation.type': 'process',
      'messaging.message.id': 'traced-1',
      'tributary.delivery.outcome': 'delivered',
    });
    const attempt = await otlp.find(
      (s) => s.traceId === traceId && s.kind === CLIENT,
      'the delivery attempt span',
    );
    expect(attempt.parentSpanId).toBe(dispatch.spanId);
    // The subscriber's traceparent is the attempt span's context.
    expect(attempt.spanId).toBe(seen.spanId);
    expect(attempt.attrs).toMatchObject({
      'messaging.system': 'tributary',
      'messaging.destination.name': broker,
      'messaging.operation.type': 'send',
      'messaging.message.id': 'traced-1',
      'http.request.method': 'POST',
      'http.response.status_code': 200,
      'url.full': receiver.url,
    });
  });

  it('continues the trace of the distributed tracing extension, one client span per attempt', async () => {
    const broker = await fx.broker();
    const trigger = `${broker}-retried`;
    const receiver = await fx.subscribe(broker, trigger, {
      delivery: { retry: 1, backoffPolicy: 'linear', backoffDelay: 'PT0.01S' },
    });
    receiver.responder = (_q, i) => ({ status: i === 0 ? 503 : 200 });
    const traceId = hex(16);
    const producerSpan = hex(8);
    const traceparent = `00-${traceId}-${producerSpan}-01`;
    await fx.send(broker, { id: 'traced-2', traceparent, tracestate: 'vendor=opaque' });
    const requests = await receiver.waitFor(2);
    for (const r of requests) {
      // The extension reaches the subscriber unchanged; the HTTP header is in the same trace.
      expect(r.headers['ce-traceparent']).toBe(traceparent);
      expect(r.headers['ce-tracestate']).toBe('vendor=opaque');
      expect(parts(r.headers.traceparent).traceId).toBe(traceId);
      expect(r.headers.tracestate).toBe('vendor=opaque');
    }
    const [first, second] = requests.map((r) => parts(r.headers.traceparent).spanId);
    expect(first).not.toBe(second);

    await otlp.spans.until(
      (spans) => spans.filter((s) => s.traceId === traceId && s.kind === CLIENT).length === 2,
      'two attempt spans',
    );
    const spans = otlp.spans.items.filter((s) => s.traceId === traceId);
    const dispatches = spans.filter((s) => s.kind === CONSUMER);
    // One hand-over per attempt, each a child of the producer's span.
    expect(dispatches.map((s) => s.parentSpanId)).toEqual([producerSpan, producerSpan]);
    const attempts = spans.filter((s) => s.kind === CLIENT);
    expect(new Set(attempts.map((s) => s.spanId))).toEqual(new Set([first, second]));
    expect(attempts.map((s) => s.attrs['http.response.status_code']).sort()).toEqual([200, 503]);
    expect(dispatches.map((s) => s.attrs['tributary.delivery.outcome']).sort()).toEqual([
      'delivered',
      'retried',
    ]);
    expect(otlp.contentTypes).toEqual(new Set(['application/json']));
  });
});

describe('tracing off (the default)', () => {
  const fx = useServer([], OTEL_ENV);

  it('passes the event trace context on as it is and makes no span', async () => {
    const broker = await fx.broker();
    const receiver = await fx.subscribe(broker, `${broker}-plain`);
    const traceparent = `00-${hex(16)}-${hex(8)}-01`;
    await fx.send(broker, { traceparent });
    await fx.send(broker);
    const [traced, plain] = await receiver.waitFor(2);
    // The same span id: no span of the broker's in between.
    expect(traced!.headers.traceparent).toBe(traceparent);
    expect(traced!.headers['ce-traceparent']).toBe(traceparent);
    expect(plain!.headers.traceparent).toBeUndefined();
  });
});

describe('tracing on (OTEL_EXPORTER_OTLP_ENDPOINT), spans held in the batch until shutdown', () => {
  const otlp = new OtlpReceiver();
  const env: Record<string, string> = { OTEL_BSP_SCHEDULE_DELAY: '600000' };
  beforeAll(async () => {
    await otlp.start();
    env.OTEL_EXPORTER_OTLP_ENDPOINT = otlp.url;
    env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT = '';
  });
  afterAll(() => otlp.stop());
  const fx = useServer([], env);

  it('traces a structured-mode event sent with a traceparent header; shutdown sends the spans', async () => {
    const broker = await fx.broker();
    const receiver = await fx.subscribe(broker, `${broker}-structured`);
    const traceId = hex(16);
    const response = await fetch(`${fx.url}/default/${broker}`, {
      method: 'POST',
      headers: {
        'content-type': 'application/cloudevents+json',
        traceparent: `00-${traceId}-${hex(8)}-01`,
      },
      body: JSON.stringify({
        specversion: '1.0',
        id: 'structured-1',
        source: '/tracing',
        type: 'com.example.traced',
      }),
    });
    expect(response.status).toBe(202);
    const [delivered] = await receiver.waitFor(1);
    expect(parts(delivered!.headers.traceparent).traceId).toBe(traceId);
    // The batch waits (a 10-minute delay): only the shutdown sends it.
    expect(otlp.requests).toBe(0);
    expect((await fx.server.stop()).code).toBe(0);
    const kinds = otlp.spans.items.filter((s) => s.traceId === traceId).map((s) => s.kind);
    expect(kinds.sort()).toEqual([SERVER, CLIENT, CONSUMER].sort());
    const ingress = otlp.spans.items.find((s) => s.traceId === traceId && s.kind === SERVER);
    expect(ingress?.attrs['messaging.message.id']).toBe('structured-1');
  });
});
