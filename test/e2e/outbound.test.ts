/**
 * Outbound safety through the real server: destination URIs naming refused addresses are refused
 * when applied, and a host name resolving to a refused address is never connected to.
 */
import { describe, expect, it } from 'vitest';
import { deadLetters, postJson, untilTriggerStatus } from '../support/delivery.js';
import { useServer } from '../support/e2e.js';
import { putResource } from '../support/server-process.js';

interface Problem {
  readonly field: string;
  readonly message: string;
}

function expectRefused(
  answer: { status: number; body: Record<string, unknown> },
  field: string,
  message: RegExp,
): void {
  expect(answer.status, JSON.stringify(answer.body)).toBe(400);
  expect(answer.body.code).toBe('VALIDATION_FAILED');
  const errors = answer.body.errors as Problem[];
  expect(errors).toEqual([{ field, message: expect.stringMatching(message) }]);
}

describe('with the default policy', () => {
  const fx = useServer();

  it('refuses a trigger subscriber at the cloud metadata address, naming spec.subscriber.uri', async () => {
    const broker = await fx.broker();
    const answer = await putResource(fx.url, 'triggers', 'default', 'metadata', {
      spec: { broker, subscriber: { uri: 'http://169.254.169.254/latest/meta-data/' } },
    });
    expectRefused(answer, 'spec.subscriber.uri', /cloud metadata address.*--outbound-allow/);
    // Nothing was stored.
    const get = await fetch(`${fx.url}/v1/namespaces/default/triggers/metadata`);
    expect(get.status).toBe(404);
  });

  it('sees through the literal forms URLs normalize: hex, IPv4-mapped IPv6, NAT64', async () => {
    const broker = await fx.broker();
    for (const uri of [
      'http://0xa9fea9fe/',
      'http://[::ffff:169.254.169.254]/',
      'http://[64:ff9b::a9fe:a9fe]/',
      'http://[fd00:ec2::254]/',
      'http://100.100.100.200/',
      'http://metadata.google.internal/computeMetadata/v1/',
      'http://169.254.10.10/',
    ]) {
      const answer = await putResource(fx.url, 'triggers', 'default', 'literal', {
        spec: { broker, subscriber: { uri } },
      });
      expectRefused(answer, 'spec.subscriber.uri', /refused by the outbound policy/);
    }
  });

  it('refuses a dead-letter sink on a link-local address, and a Subscriptions API sink', async () => {
    const dls = await putResource(fx.url, 'brokers', 'default', 'dls-link-local', {
      spec: { delivery: { deadLetterSink: { uri: 'http://[fe80::1]:8080/' } } },
    });
    expectRefused(
      dls,
      'spec.delivery.deadLetterSink.uri',
      /link-local.*--outbound-allow-link-local/,
    );
    const subscription = await postJson(`${fx.url}/v1/namespaces/default/subscriptions`, {
      types: ['com.example.a'],
      sink: 'http://169.254.169.254/',
      protocol: 'HTTP',
    });
    expectRefused(subscription, 'sink', /cloud metadata address/);
  });

  it('refuses a source whose upstream is a metadata or link-local address, naming the field', async () => {
    const kafka = await putResource(fx.url, 'sources', 'default', 'upstream-kafka', {
      kind: 'KafkaSource',
      spec: {
        bootstrapServers: ['169.254.169.254:9092'],
        topics: ['t'],
        consumerGroup: 'g',
        sink: { uri: 'http://127.0.0.1:9/' },
      },
    });
    expectRefused(kafka, 'spec.bootstrapServers', /cloud metadata address/);
    const mns = await putResource(fx.url, 'sources', 'default', 'upstream-mns', {
      kind: 'MnsSource',
      spec: {
        endpoint: 'http://[fe80::1]:8080',
        queue: 'q',
        accessKeyId: 'k',
        accessKeySecret: 's',
        sink: { uri: 'http://127.0.0.1:9/' },
      },
    });
    expect(mns.status, JSON.stringify(mns.body)).toBe(400);
    expect((mns.body.errors as Problem[]).map((e) => e.field)).toContain('spec.endpoint');
    const stored = await fetch(`${fx.url}/v1/namespaces/default/sources/upstream-kafka`);
    expect(stored.status).toBe(404);
  });

  it('keeps delivering to loopback subscribers', async () => {
    const broker = await fx.broker();
    const r = await fx.subscribe(broker, 'loopback');
    const id = await fx.send(broker);
    const [request] = await r.waitFor(1);
    expect(request!.headers['ce-id']).toBe(id);
  });
});

describe('with --outbound-allow-private false and --outbound-allow 169.254.169.254', () => {
  const fx = useServer([
    '--outbound-allow-private',
    'false',
    '--outbound-allow',
    '169.254.169.254',
  ]);

  it('accepts the metadata address the allow list names', async () => {
    const broker = await fx.broker();
    const answer = await putResource(fx.url, 'triggers', 'default', 'allowed', {
      spec: { broker, subscriber: { uri: 'http://169.254.169.254/' } },
    });
    expect(answer.status, JSON.stringify(answer.body)).toBe(201);
  });

  it('refuses a loopback subscriber', async () => {
    const broker = await fx.broker();
    const r = await fx.receiver();
    const answer = await putResource(fx.url, 'triggers', 'default', 'loopback', {
      spec: { broker, subscriber: { uri: r.url } },
    });
    expectRefused(
      answer,
      'spec.subscriber.uri',
      /127\.0\.0\.1 is loopback.*--outbound-allow-private/,
    );
  });

  it('never connects to a name that resolves to a refused address, and does not retry', async () => {
    const broker = await fx.broker();
    const r = await fx.receiver();
    const uri = r.url.replace('127.0.0.1', 'localhost');
    // Retries would take minutes: the event is kept after a single attempt instead.
    const answer = await putResource(fx.url, 'triggers', 'default', 'by-name', {
      spec: {
        broker,
        subscriber: { uri },
        delivery: { retry: 5, backoffPolicy: 'linear', backoffDelay: 'PT60S' },
      },
    });
    expect(answer.status, JSON.stringify(answer.body)).toBe(201);
    const id = await fx.send(broker);
    const kept = await deadLetters(fx.url, 'by-name').untilTotal(1);
    expect(kept.items[0]).toMatchObject({
      event: { id },
      attempts: 1,
      reason: expect.stringMatching(
        /localhost \(127\.0\.0\.1\) is loopback, refused by the outbound policy/,
      ),
    });
    const status = await untilTriggerStatus(fx.url, 'by-name', (s) => s.deliveries?.kept === 1);
    expect(status.deliveries).toMatchObject({ retried: 0, kept: 1 });
    expect(status.lastError.message).toMatch(/refused by the outbound policy/);
    expect(r.requests).toHaveLength(0);
  });
});
