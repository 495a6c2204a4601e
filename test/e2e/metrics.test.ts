/**
 * GET /metrics through the real server: the Prometheus exposition changes as events flow. Ingress
 * counts by answer (202, 404 unknown broker, 400 invalid event), delivery outcomes, retries, dead
 * letters and latency histograms per trigger, source ingestion and errors (a GitLab webhook), the
 * cap on event types, and Node's process metrics.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MeshMetrics, type BacklogTrigger } from '../../src/telemetry/metrics.js';
import { until } from '../support/delivery.js';
import { useServer } from '../support/e2e.js';
import { Gate } from '../support/receiver.js';
import { binaryEvent, putResource, ROOT } from '../support/server-process.js';

interface Sample {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly value: number;
}

/** Parses the Prometheus text format (the samples; comments skipped). */
function parse(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (m === null) throw new Error(`not a sample: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return samples;
}

/** The sum of the samples of `name` whose labels include `labels`. */
function sum(samples: readonly Sample[], name: string, labels: Record<string, string>): number {
  return samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((total, s) => total + s.value, 0);
}

describe('GET /metrics', () => {
  const fx = useServer();

  async function scrape(): Promise<Sample[]> {
    const response = await fetch(`${fx.url}/metrics`);
    expect(response.status).toBe(200);
    return parse(await response.text());
  }

  /** The samples once `holds` is true of them. */
  function untilMetrics(what: string, holds: (s: Sample[]) => boolean): Promise<Sample[]> {
    return until(what, scrape, holds);
  }

  it('is the Prometheus text format, with the Node.js process metrics', async () => {
    const response = await fetch(`${fx.url}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await response.text();
    expect(text).toContain('# TYPE event_count counter');
    expect(text).toContain('# TYPE event_dispatch_latencies histogram');
    const samples = parse(text);
    expect(sum(samples, 'process_cpu_user_seconds_total', {})).toBeGreaterThan(0);
    expect(sum(samples, 'nodejs_heap_size_used_bytes', {})).toBeGreaterThan(0);
  });

  it('counts ingress answers by broker, event type and status: 202, 404 and 400', async () => {
    const broker = await fx.broker();
    for (let i = 0; i < 3; i++) await fx.send(broker, { type: 'com.example.counted' });
    const batch = await fetch(`${fx.url}/default/${broker}`, {
      method: 'POST',
      headers: { 'content-type': 'application/cloudevents-batch+json' },
      body: JSON.stringify(
        ['b1', 'b2'].map((id) => ({
          specversion: '1.0',
          id,
          source: '/test',
          type: 'com.example.batched',
        })),
      ),
    });
    expect(batch.status).toBe(202);
    const unknown = await fetch(
      `${fx.url}/default/no-such-broker`,
      binaryEvent({ specversion: '1.0', id: 'x', source: '/test', type: 'com.example.counted' }),
    );
    expect(unknown.status).toBe(404);
    // No ce-id: not a CloudEvent.
    const invalid = await fetch(
      `${fx.url}/default/${broker}`,
      binaryEvent({ specversion: '1.0', source: '/test', type: 'com.example.counted' }),
    );
    expect(invalid.status).toBe(400);

    const samples = await scrape();
    const ingress = (labels: Record<string, string>): number =>
      sum(samples, 'event_count', { namespace_name: 'default', ...labels });
    expect(
      ingress({
        broker_name: broker,
        event_type: 'com.example.counted',
        response_code: '202',
        response_code_class: '2xx',
      }),
    ).toBe(3);
    expect(
      ingress({ broker_name: broker, event_type: 'com.example.batched', response_code: '202' }),
    ).toBe(2);
    expect(ingress({ broker_name: broker, response_code: '400', response_code_class: '4xx' })).toBe(
      1,
    );
    expect(ingress({ broker_name: broker })).toBe(6);
    expect(
      ingress({
        broker_name: 'no-such-broker',
        event_type: 'com.example.counted',
        response_code: '404',
        response_code_class: '4xx',
      }),
    ).toBe(1);
    expect(
      sum(samples, 'tributary_events_stored_total', { broker_name: broker, origin: 'ingress' }),
    ).toBe(5);
  });

  it('counts delivery outcomes, retries, dead letters and latencies per trigger', async () => {
    const broker = await fx.broker();
    const good = `${broker}-good`;
    const failing = `${broker}-failing`;
    const keeping = `${broker}-keeping`;
    const ok = await fx.subscribe(broker, good);
    const dls = await fx.receiver();
    const bad = await fx.subscribe(broker, failing, {
      delivery: {
        retry: 1,
        backoffPolicy: 'linear',
        backoffDelay: 'PT0.01S',
        deadLetterSink: { uri: dls.url },
      },
    });
    bad.responder = () => ({ status: 500 });
    const refusing = await fx.subscribe(broker, keeping, { delivery: { retry: 0 } });
    refusing.responder = () => ({ status: 400 });

    await fx.send(broker);
    await ok.waitFor(1);
    await dls.waitFor(1);
    await refusing.waitFor(1);

    const of = (trigger: string) => ({ broker_name: broker, trigger_name: trigger });
    const samples = await untilMetrics(
      'the settled deliveries',
      (s) =>
        sum(s, 'tributary_delivery_outcomes_total', of(good)) === 1 &&
        sum(s, 'tributary_delivery_outcomes_total', of(failing)) === 2 &&
        sum(s, 'tributary_delivery_outcomes_total', of(keeping)) === 1 &&
        sum(s, 'tributary_trigger_in_flight', of(failing)) === 0,
    );
    const outcome = (trigger: string, value: string): number =>
      sum(samples, 'tributary_delivery_outcomes_total', { ...of(trigger), outcome: value });
    expect(outcome(good, 'delivered')).toBe(1);
    expect(outcome(failing, 'retried')).toBe(1);
    expect(outcome(failing, 'dead_lettered')).toBe(1);
    expect(outcome(failing, 'delivered')).toBe(0);
    expect(outcome(keeping, 'kept')).toBe(1);
    expect(
      sum(samples, 'tributary_delivery_retries_total', {
        ...of(failing),
        destination: 'subscriber',
      }),
    ).toBe(1);
    expect(
      sum(samples, 'tributary_dead_letters_total', { ...of(failing), where: 'dead_letter_sink' }),
    ).toBe(1);
    expect(sum(samples, 'tributary_dead_letters_total', { ...of(keeping), where: 'kept' })).toBe(1);
    expect(
      sum(samples, 'tributary_delivery_attempts_total', {
        ...of(failing),
        destination: 'subscriber',
        response_code_class: '5xx',
      }),
    ).toBe(2);
    expect(
      sum(samples, 'tributary_delivery_attempts_total', {
        ...of(failing),
        destination: 'dead_letter_sink',
        response_code_class: '2xx',
      }),
    ).toBe(1);
    // One observation per attempt at the subscriber, by its answer.
    expect(
      sum(samples, 'event_dispatch_latencies_count', {
        ...of(good),
        response_code: '200',
        response_code_class: '2xx',
      }),
    ).toBe(1);
    expect(
      sum(samples, 'event_dispatch_latencies_count', { ...of(failing), response_code: '500' }),
    ).toBe(2);
    expect(
      sum(samples, 'event_dispatch_latencies_count', { ...of(keeping), response_code: '400' }),
    ).toBe(1);
    expect(sum(samples, 'event_dispatch_latencies_sum', of(good))).toBeGreaterThan(0);
    // The time to the first hand-over, once per event and trigger (retries are not counted).
    for (const trigger of [good, failing, keeping]) {
      expect(sum(samples, 'event_processing_latencies_count', of(trigger)), trigger).toBe(1);
    }
    const inf = samples.find(
      (s) =>
        s.name === 'event_processing_latencies_bucket' &&
        s.labels.trigger_name === good &&
        s.labels.le === '+Inf',
    );
    expect(inf?.value).toBe(1);
  });

  it('shows the backlog of each trigger: what its subscriber has not taken yet', async () => {
    const broker = await fx.broker();
    const slow = `${broker}-slow`;
    const quick = `${broker}-quick`;
    const gate = new Gate();
    const held = await fx.subscribe(broker, slow);
    held.responder = async () => {
      await gate.opened;
      return { status: 200 };
    };
    const taking = await fx.subscribe(broker, quick);
    const backlogOf = (s: Sample[], trigger: string): Sample | undefined =>
      s.find(
        (x) =>
          x.name === 'tributary_trigger_backlog' &&
          x.labels.namespace_name === 'default' &&
          x.labels.broker_name === broker &&
          x.labels.trigger_name === trigger,
      );
    // A Ready trigger with nothing to do has a series too.
    await untilMetrics('the backlog series of both triggers', (s) =>
      [slow, quick].every((t) => backlogOf(s, t)?.value === 0),
    );

    const sent = 3;
    for (let i = 0; i < sent; i++) await fx.send(broker);
    await held.waitFor(sent);
    await taking.waitFor(sent);
    // The held trigger has every event in flight, none settled.
    const holding = await untilMetrics(
      'the held deliveries',
      (s) =>
        sum(s, 'tributary_trigger_in_flight', { broker_name: broker, trigger_name: slow }) ===
          sent && backlogOf(s, quick)?.value === 0,
    );
    expect(backlogOf(holding, slow)?.value).toBeGreaterThanOrEqual(sent);

    gate.open();
    // The settlements are counted as the dispatcher sees them end, the backlog as the backend
    // records them: either may show first.
    await untilMetrics(
      'the released trigger to deliver everything and drain its backlog',
      (s) =>
        backlogOf(s, slow)?.value === 0 &&
        sum(s, 'tributary_delivery_outcomes_total', {
          broker_name: broker,
          trigger_name: slow,
          outcome: 'delivered',
        }) === sent,
    );
    const text = await (await fetch(`${fx.url}/metrics`)).text();
    expect(text).toContain('# TYPE tributary_trigger_backlog gauge');
  });

  it("counts a GitLab source's events and its rejected deliveries", async () => {
    const broker = await fx.broker();
    const name = `${broker}-gitlab`;
    const created = await putResource(fx.url, 'sources', 'default', name, {
      apiVersion: 'sources.knative.dev/v1alpha1',
      kind: 'GitLabSource',
      spec: {
        projectUrl: 'https://gitlab.example.com/acme/metrics',
        secretToken: { value: 'the-token' },
        sink: { ref: { kind: 'Broker', name: broker } },
      },
    });
    expect(created.status).toBe(201);
    const webhook = (created.body.status as { webhookUrl: string }).webhookUrl;
    const hook = JSON.parse(readFileSync(join(ROOT, 'test/fixtures/gitlab/push.json'), 'utf8')) as {
      event: string;
      payload: unknown;
    };
    const post = (token: string): Promise<Response> =>
      fetch(webhook, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'x-gitlab-event': hook.event,
          'x-gitlab-token': token,
          'x-gitlab-event-uuid': randomUUID(),
        },
        body: JSON.stringify(hook.payload),
      });
    expect((await post('the-token')).status).toBe(202);
    expect((await post('the-token')).status).toBe(202);
    expect((await post('a-wrong-token')).status).toBe(401);

    const source = { source_name: name, source_kind: 'GitLabSource' };
    const samples = await scrape();
    expect(sum(samples, 'tributary_source_events_total', source)).toBe(2);
    expect(sum(samples, 'tributary_source_errors_total', { ...source, reason: 'rejected' })).toBe(
      1,
    );
    expect(
      sum(samples, 'tributary_events_stored_total', { broker_name: broker, origin: 'source' }),
    ).toBe(2);
    // Stored by a source, not answered by the ingress.
    expect(sum(samples, 'event_count', { broker_name: broker })).toBe(0);
  });

  it('keeps event_type to its first 1000 values; later types count as "other"', async () => {
    const broker = await fx.broker();
    const before = await scrape();
    const known = new Set(
      before.filter((s) => s.name === 'event_count').map((s) => s.labels.event_type),
    );
    known.delete('unknown');
    const room = 1000 - known.size;
    const extra = 5;
    const events = Array.from({ length: room + extra }, (_, i) => ({
      specversion: '1.0',
      id: `cap-${i}`,
      source: '/cap',
      type: `com.example.cap.${i}`,
    }));
    const response = await fetch(`${fx.url}/default/${broker}`, {
      method: 'POST',
      headers: { 'content-type': 'application/cloudevents-batch+json' },
      body: JSON.stringify(events),
    });
    expect(response.status).toBe(202);
    const samples = (await scrape()).filter(
      (s) => s.name === 'event_count' && s.labels.broker_name === broker,
    );
    expect(samples.find((s) => s.labels.event_type === 'other')?.value).toBe(extra);
    expect(samples).toHaveLength(room + 1);
    expect(samples.reduce((total, s) => total + s.value, 0)).toBe(room + extra);
  });
});

describe('tributary_trigger_backlog at scrape time', () => {
  const trigger = (name: string): BacklogTrigger => ({
    namespace: 'default',
    name,
    broker: 'b',
    id: `uid-${name}`,
  });

  it('leaves out the triggers whose backend does not answer in time, failed or unknown', async () => {
    const metrics = new MeshMetrics();
    const never = new Promise<number | undefined>(() => {});
    metrics.watchBacklog(
      {
        triggers: () => ['fast', 'hanging', 'failing', 'gone'].map(trigger),
        backlog: (id) => {
          if (id === 'uid-fast') return Promise.resolve(7);
          if (id === 'uid-hanging') return never;
          if (id === 'uid-failing') return Promise.reject(new Error('backend down'));
          return Promise.resolve(undefined);
        },
      },
      200,
    );
    // Without the limit this would wait for the hanging look-up forever (the test would time out).
    const samples = parse((await metrics.exposition()).text).filter(
      (s) => s.name === 'tributary_trigger_backlog',
    );
    expect(samples).toEqual([
      {
        name: 'tributary_trigger_backlog',
        labels: { namespace_name: 'default', broker_name: 'b', trigger_name: 'fast' },
        value: 7,
      },
    ]);
  });

  it('drops the series of a trigger that is gone at the next scrape', async () => {
    const metrics = new MeshMetrics();
    let names = ['one', 'two'];
    metrics.watchBacklog({
      triggers: () => names.map(trigger),
      backlog: () => Promise.resolve(1),
    });
    const backlogNames = async (): Promise<string[]> =>
      parse((await metrics.exposition()).text)
        .filter((s) => s.name === 'tributary_trigger_backlog')
        .map((s) => s.labels.trigger_name!)
        .sort();
    expect(await backlogNames()).toEqual(['one', 'two']);
    names = ['two'];
    expect(await backlogNames()).toEqual(['two']);
  });
});
