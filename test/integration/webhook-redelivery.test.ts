/**
 * A webhook redelivery is not stored twice when it reaches another process than the first
 * delivery: the same server after a restart (embedded), or another replica (NATS, Kafka). The
 * backend's delivery ledger remembers the ids, not the process.
 */
import { createHmac, randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { getJson, idOf } from '../support/delivery.js';
import {
  removeKafkaPrefix,
  KAFKA_BROKERS,
  kafkaRequired,
  uniqueTopicPrefix,
} from '../support/kafka.js';
import { NATS_URL, natsRequired, removeStreams, uniquePrefix } from '../support/nats.js';
import { Receiver } from '../support/receiver.js';
import {
  createTrigger,
  putResource,
  startServer,
  type ServerProcess,
} from '../support/server-process.js';
import { removeTempDirs, tempDir } from '../support/temp-dir.js';

const SECRET = 'redelivery-secret';
const BODY = JSON.stringify({ ref: 'refs/heads/main', compare: 'https://x/compare/a...b' });

function deliver(server: ServerProcess, id: string): Promise<Response> {
  return fetch(`${server.url}/webhooks/default/gh`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'x-github-event': 'push',
      'x-github-delivery': id,
      'x-hub-signature-256': `sha256=${createHmac('sha256', SECRET).update(BODY).digest('hex')}`,
    },
    body: BODY,
  });
}

interface Setup {
  readonly name: string;
  readonly available: boolean;
  /** Serve flags; every server started with them shares the data. */
  readonly args: readonly string[];
  readonly cleanup: () => Promise<void>;
}

const natsPrefix = uniquePrefix();
const kafkaPrefix = uniqueTopicPrefix();
const setups: Setup[] = [
  {
    name: 'embedded, across a restart',
    available: true,
    args: [],
    cleanup: () => Promise.resolve(),
  },
  {
    name: 'nats, across replicas',
    available: await natsRequired('the webhook redelivery test on NATS'),
    args: ['--backend', 'nats', '--nats-url', NATS_URL, '--nats-prefix', natsPrefix],
    cleanup: async () => {
      await removeStreams(natsPrefix);
    },
  },
  {
    name: 'kafka, across replicas',
    available: await kafkaRequired('the webhook redelivery test on Kafka'),
    args: [
      '--backend',
      'kafka',
      '--kafka-brokers',
      KAFKA_BROKERS.join(','),
      '--kafka-prefix',
      kafkaPrefix,
      '--kafka-partitions',
      '1',
    ],
    cleanup: () => removeKafkaPrefix(kafkaPrefix),
  },
];

const servers: ServerProcess[] = [];
const receivers: Receiver[] = [];
afterAll(async () => {
  await Promise.all(servers.map((s) => s.stop()));
  await Promise.all(receivers.map((r) => r.stop()));
  for (const setup of setups) if (setup.available) await setup.cleanup().catch(() => {});
  removeTempDirs();
});

describe.each(setups)('webhook redelivery: $name', (setup) => {
  it.runIf(setup.available)(
    'stores the first delivery only; the redelivery is answered 202 and counted',
    async () => {
      const dataDir = tempDir();
      const start = async (): Promise<ServerProcess> => {
        const server = await startServer({ dataDir, args: setup.args });
        servers.push(server);
        return server;
      };
      const first = await start();
      const receiver = await new Receiver().start();
      receivers.push(receiver);
      await createTrigger(first.url, 'all', {
        broker: 'default',
        subscriber: { uri: receiver.url },
      });
      const created = await putResource(first.url, 'sources', 'default', 'gh', {
        kind: 'GitHubSource',
        spec: {
          ownerAndRepository: 'acme/widgets',
          secretToken: { value: SECRET },
          sink: { ref: { kind: 'Broker', name: 'default' } },
        },
      });
      expect(created.status).toBe(201);
      const id = randomUUID();
      expect((await deliver(first, id)).status).toBe(202);
      await receiver.waitFor(1);

      // The other process: the same data after a restart, or a second replica.
      let second: ServerProcess;
      if (setup.args.length === 0) {
        await first.stop();
        servers.splice(servers.indexOf(first), 1);
        second = await start();
      } else {
        second = await start();
      }
      const again = await deliver(second, id);
      expect(again.status).toBe(202);
      expect(((await again.json()) as { message: string }).message).toContain('received before');
      const { body } = await getJson(`${second.url}/v1/namespaces/default/sources/gh`);
      expect(body.status.events).toMatchObject({ duplicates: 1, forwarded: 0 });

      // A new delivery after it is the next event the subscriber gets: the redelivery was not stored.
      const next = randomUUID();
      expect((await deliver(second, next)).status).toBe(202);
      await receiver.waitFor(2);
      expect(receiver.requests.map(idOf)).toEqual([id, next]);
    },
  );
});
