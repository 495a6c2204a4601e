/**
 * Distributed tracing (docs/observability.md). Off unless an OTLP/HTTP endpoint is configured.
 *
 * How trace context travels with an event:
 *
 * - The CloudEvents distributed tracing extension (`traceparent`, `tracestate` attributes) is part
 *   of the event: it is stored with it by every backend and reaches the subscriber unchanged.
 *   Each delivery attempt also carries a W3C `traceparent` HTTP header in the same trace.
 * - The broker adds no extension of its own. A W3C `traceparent` HTTP header sent to the ingress
 *   without the extension in the event is the parent of the ingress span; the ingress span's
 *   context is remembered in memory for the events of that request (bounded), so that dispatches
 *   on this replica continue the trace. Another replica, or this one after a restart, starts a
 *   new trace for such an event (documented; producers that want the trace to survive anything
 *   set the extension).
 *
 * Off, the only work per event is copying a valid `traceparent` extension (and `tracestate`) to
 * the HTTP headers of each delivery attempt: no span, no context object, no exporter.
 *
 * On: spans follow OpenTelemetry's messaging conventions: `send <broker>` (SERVER) for an ingress
 * request, `process <trigger>` (CONSUMER) for each hand-over of an event to a trigger, and
 * `deliver <trigger>` (CLIENT) for each HTTP attempt, whose context is the `traceparent` header
 * the subscriber (or dead-letter sink) receives. A batch span processor sends them to the OTLP/HTTP
 * endpoint (JSON); shutdown() flushes them.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  defaultTextMapGetter,
  defaultTextMapSetter,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Context,
  type Span,
  type SpanContext,
  type Tracer,
} from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';
import type { CloudEvent } from '../core/event.js';
import type {
  AttemptEnd,
  AttemptWatch,
  Dispatch,
  DispatchWatch,
  MeshObserver,
} from '../broker/observer.js';

export const SERVICE_NAME = 'tributary';
export const MESSAGING_SYSTEM = 'tributary';

/** How long the shutdown waits for the last spans to be sent. */
const SHUTDOWN_FLUSH_MS = 5000;

/** Ingress contexts remembered for events that came without the tracing extension. */
const REMEMBERED_CONTEXTS = 10_000;

/** W3C trace context version 00 (and later versions, read the same way). */
const TRACEPARENT = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;
const INVALID_TRACE = '00000000000000000000000000000000';
const INVALID_SPAN = '0000000000000000';

/** The event's distributed tracing extension, when it holds a valid trace context. */
function eventTraceContext(
  event: CloudEvent,
): { traceparent: string; tracestate?: string } | undefined {
  const traceparent = event.attributes.traceparent;
  if (typeof traceparent !== 'string' || !TRACEPARENT.test(traceparent)) return undefined;
  const [, traceId, spanId] = traceparent.split('-');
  if (traceId === INVALID_TRACE || spanId === INVALID_SPAN) return undefined;
  const tracestate = event.attributes.tracestate;
  return typeof tracestate === 'string' && tracestate !== ''
    ? { traceparent, tracestate }
    : { traceparent };
}

/** One ingress request being traced. */
export interface IngressSpan {
  /** The request's body was read (a Buffer), before the ingress handles it. */
  received(body: unknown): void;
  /** The ingress answered `status`. */
  end(status: number): void;
}

/** What identifies an event in a broker, and whether it carries its own trace context. */
interface Identity {
  readonly id: string;
  readonly source: string;
  readonly traced: boolean;
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return typeof value === 'string' ? value : undefined;
}

/**
 * The events of an ingress request, read just enough to identify them: from the `ce-` headers in
 * binary mode, from the JSON body in structured and batch mode. Empty when unreadable (the
 * ingress then refuses the request anyway).
 */
function identities(headers: IncomingHttpHeaders, body: unknown): Identity[] {
  const type = (header(headers, 'content-type') ?? '').toLowerCase();
  const structured = type.startsWith('application/cloudevents+json');
  const batch = type.startsWith('application/cloudevents-batch+json');
  if (!structured && !batch) {
    const id = header(headers, 'ce-id');
    const source = header(headers, 'ce-source');
    if (id === undefined || source === undefined) return [];
    return [{ id, source, traced: header(headers, 'ce-traceparent') !== undefined }];
  }
  if (!Buffer.isBuffer(body)) return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    return [];
  }
  const found: Identity[] = [];
  for (const item of batch ? (Array.isArray(parsed) ? parsed : []) : [parsed]) {
    if (typeof item !== 'object' || item === null) continue;
    const event = item as Record<string, unknown>;
    if (typeof event.id !== 'string' || typeof event.source !== 'string') continue;
    found.push({ id: event.id, source: event.source, traced: event.traceparent !== undefined });
  }
  return found;
}

export interface MeshTracing {
  readonly enabled: boolean;
  readonly observer: MeshObserver;
  /** Starts the span of an ingress request; undefined when tracing is off. */
  ingressStarted(
    namespace: string,
    broker: string,
    headers: IncomingHttpHeaders,
  ): IngressSpan | undefined;
  /** Sends the spans not sent yet and stops the exporter. */
  shutdown(): Promise<void>;
}

export interface TracingSettings {
  /** `--otel-endpoint`: an OTLP/HTTP base URL (`/v1/traces` is added) or the traces URL itself. */
  readonly endpoint?: string;
  /** The process environment, for the standard OTEL_EXPORTER_OTLP_* variables. */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

/** Where spans are sent, or undefined when tracing is off. */
export function tracesUrl(settings: TracingSettings): string | undefined {
  const env = settings.env ?? {};
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return undefined;
  const base = (url: string): string =>
    /\/v1\/traces\/?$/.test(url) ? url : `${url.replace(/\/+$/, '')}/v1/traces`;
  if (settings.endpoint !== undefined) return base(settings.endpoint);
  const traces = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim();
  if (traces !== undefined && traces !== '') return traces;
  const all = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim();
  if (all !== undefined && all !== '') return base(all);
  return undefined;
}

export function createTracing(settings: TracingSettings): MeshTracing {
  const url = tracesUrl(settings);
  return url === undefined ? passThrough() : new OtelTracing(url);
}

/** Tracing off: the event's own trace context goes on as the W3C headers, nothing else. */
function passThrough(): MeshTracing {
  return {
    enabled: false,
    observer: {
      dispatchStarted(dispatch: Dispatch): DispatchWatch | undefined {
        const headers = eventTraceContext(dispatch.event);
        if (headers === undefined) return undefined;
        const watch: AttemptWatch = { headers, ended: () => {} };
        return { attempt: () => watch };
      },
    },
    ingressStarted: () => undefined,
    shutdown: async () => {},
  };
}

/** A URL for a span attribute: no credentials, no query. */
function safeUrl(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname}`;
}

function eventAttributes(event: CloudEvent): Attributes {
  return {
    'messaging.message.id': String(event.attributes.id),
    'cloudevents.event_id': String(event.attributes.id),
    'cloudevents.event_source': String(event.attributes.source),
    'cloudevents.event_type': String(event.attributes.type),
    'cloudevents.event_spec_version': String(event.attributes.specversion),
  };
}

class OtelTracing implements MeshTracing {
  readonly enabled = true;
  readonly observer: MeshObserver;
  private readonly provider: BasicTracerProvider;
  private readonly tracer: Tracer;
  private readonly propagator = new W3CTraceContextPropagator();
  /** Ingress span contexts of events stored without the tracing extension, oldest first. */
  private readonly remembered = new Map<string, SpanContext>();

  constructor(url: string) {
    this.provider = new BasicTracerProvider({
      resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: SERVICE_NAME }),
      spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url }))],
    });
    this.tracer = this.provider.getTracer('tributary');
    this.observer = { dispatchStarted: (dispatch) => this.dispatchStarted(dispatch) };
  }

  private extract(carrier: Record<string, string | string[] | undefined>): Context {
    return this.propagator.extract(ROOT_CONTEXT, carrier, defaultTextMapGetter);
  }

  private inject(span: Span): Record<string, string> {
    const carrier: Record<string, string> = {};
    this.propagator.inject(trace.setSpan(ROOT_CONTEXT, span), carrier, defaultTextMapSetter);
    return carrier;
  }

  ingressStarted(namespace: string, broker: string, headers: IncomingHttpHeaders): IngressSpan {
    const parent = this.extract(headers);
    const span = this.tracer.startSpan(
      `send ${broker}`,
      {
        kind: SpanKind.SERVER,
        attributes: {
          'messaging.system': MESSAGING_SYSTEM,
          'messaging.operation.type': 'send',
          'messaging.operation.name': 'send',
          'messaging.destination.name': broker,
          'tributary.namespace': namespace,
          'http.request.method': 'POST',
          'http.route': '/:namespace/:broker',
        },
      },
      parent,
    );
    let keys: string[] = [];
    return {
      // Remembered before the events are stored: a dispatcher may take them before the ingress
      // has answered.
      received: (body) => {
        const events = identities(headers, body);
        if (events.length === 1) {
          span.setAttribute('messaging.message.id', events[0]!.id);
        } else if (events.length > 1) {
          span.setAttribute('messaging.batch.message_count', events.length);
        }
        keys = events
          .filter((event) => !event.traced)
          .map((event) => this.key(namespace, broker, event.source, event.id));
        for (const key of keys) this.remember(key, span.spanContext());
      },
      end: (status) => {
        span.setAttribute('http.response.status_code', status);
        if (status >= 400) {
          span.setAttribute('error.type', String(status));
          span.setStatus({ code: SpanStatusCode.ERROR });
        }
        // Not stored: nothing will be dispatched.
        if (status !== 202) for (const key of keys) this.remembered.delete(key);
        span.end();
      },
    };
  }

  private remember(key: string, context: SpanContext): void {
    this.remembered.delete(key);
    this.remembered.set(key, context);
    if (this.remembered.size > REMEMBERED_CONTEXTS) {
      this.remembered.delete(this.remembered.keys().next().value!);
    }
  }

  private key(namespace: string, broker: string, source: string, id: string): string {
    return `${namespace}/${broker}\n${source}\n${id}`;
  }

  private dispatchStarted(dispatch: Dispatch): DispatchWatch {
    const { event } = dispatch;
    const own = eventTraceContext(event);
    const remembered =
      own === undefined
        ? this.remembered.get(
            this.key(
              dispatch.namespace,
              dispatch.broker,
              String(event.attributes.source),
              String(event.attributes.id),
            ),
          )
        : undefined;
    const parent =
      own !== undefined
        ? this.extract(own)
        : remembered !== undefined
          ? trace.setSpanContext(ROOT_CONTEXT, remembered)
          : ROOT_CONTEXT;
    const common: Attributes = {
      'messaging.system': MESSAGING_SYSTEM,
      'messaging.destination.name': dispatch.broker,
      'messaging.destination.subscription.name': dispatch.trigger,
      'messaging.consumer.group.name': dispatch.trigger,
      'tributary.namespace': dispatch.namespace,
      ...eventAttributes(event),
    };
    const span = this.tracer.startSpan(
      `process ${dispatch.trigger}`,
      {
        kind: SpanKind.CONSUMER,
        attributes: {
          ...common,
          'messaging.operation.type': 'process',
          'messaging.operation.name': 'process',
          'tributary.delivery.hand_over': dispatch.handOver,
          'tributary.delivery.dead_letter_phase': dispatch.deadLetterPhase,
        },
      },
      parent,
    );
    const parentOfAttempts = trace.setSpan(ROOT_CONTEXT, span);
    return {
      attempt: (destination, url) => {
        const attempt = this.tracer.startSpan(
          `deliver ${dispatch.trigger}`,
          {
            kind: SpanKind.CLIENT,
            attributes: {
              ...common,
              'messaging.operation.type': 'send',
              'messaging.operation.name': 'deliver',
              'tributary.delivery.destination': destination,
              'http.request.method': 'POST',
              'url.full': safeUrl(url),
              'server.address': url.hostname,
            },
          },
          parentOfAttempts,
        );
        return {
          headers: this.inject(attempt),
          ended: (end: AttemptEnd) => {
            if (end.kind === 'response') {
              attempt.setAttribute('http.response.status_code', end.status);
              if (end.status < 200 || end.status >= 300) {
                attempt.setAttribute('error.type', String(end.status));
                attempt.setStatus({ code: SpanStatusCode.ERROR });
              }
            } else {
              attempt.setAttribute('error.type', end.kind);
              attempt.setStatus({ code: SpanStatusCode.ERROR });
            }
            attempt.end();
          },
        };
      },
      settled: (outcome) => {
        span.setAttribute('tributary.delivery.outcome', outcome);
        if (outcome === 'kept') span.setStatus({ code: SpanStatusCode.ERROR });
      },
      finished: () => span.end(),
    };
  }

  async shutdown(): Promise<void> {
    // A collector that does not answer must not hold the shutdown up for long.
    await Promise.race([
      this.provider.shutdown(),
      sleep(SHUTDOWN_FLUSH_MS, undefined, { ref: false }),
    ]);
  }
}
