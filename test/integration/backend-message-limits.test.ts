/**
 * NATS and Kafka cap the size of one message (max_payload, max.message.bytes: 1 MB by default). An
 * event over the cap is refused as too large (413 at the ingress and the webhooks), not as an
 * outage: no retry can help, and the backend stays healthy for the events after it.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import type { Backend } from '../../src/backends/contracts.js';
import { createKafkaBackend } from '../../src/backends/kafka/index.js';
import type { CloudEvent } from '../../src/core/event.js';
import {
  removeKafkaPrefix,
  KAFKA_BROKERS,
  kafkaRequired,
  uniqueTopicPrefix,
} from '../support/kafka.js';
import { natsHarness, natsRequired } from '../support/nats.js';

const natsUp = await natsRequired('the NATS message limit test');
const kafkaUp = await kafkaRequired('the Kafka message limit test');
const nats = natsHarness();
const kafkaPrefix = uniqueTopicPrefix();
const opened: Backend[] = [];

afterAll(async () => {
  for (const backend of opened) await backend.close().catch(() => {});
  if (natsUp) await nats.cleanup();
  if (kafkaUp) await removeKafkaPrefix(kafkaPrefix);
});

function event(bytes: number): CloudEvent {
  return {
    attributes: { specversion: '1.0', id: randomUUID(), source: '/limits', type: 't' },
    data: { kind: 'bytes', bytes: Buffer.alloc(bytes, 0x61) },
  };
}

const cases = [
  { name: 'nats', up: natsUp, open: () => nats.open() },
  {
    name: 'kafka',
    up: kafkaUp,
    open: () =>
      createKafkaBackend({
        brokers: KAFKA_BROKERS,
        prefix: kafkaPrefix,
        topics: { partitions: 1 },
      }),
  },
];

describe.each(cases)('$name: an event over the message limit', (c) => {
  it.runIf(c.up)('is refused as PAYLOAD_TOO_LARGE, and the backend stays healthy', async () => {
    const backend = await c.open();
    opened.push(backend);
    const broker = { namespace: 'limits', name: `b${randomUUID().slice(0, 8)}` };
    await backend.eventLog.ensureBroker(broker);
    await expect(backend.eventLog.append(broker, [event(2 * 1024 * 1024)])).rejects.toMatchObject({
      code: 'PAYLOAD_TOO_LARGE',
      status: 413,
    });
    expect(backend.eventLog.isHealthy()).toBe(true);
    await backend.eventLog.append(broker, [event(1000)]);
  });
});
