/**
 * One server per test file: `useServer()` starts the CLI before the file's tests and stops it,
 * with every receiver and temporary directory, after them.
 *
 * With `TRIBUTARY_TEST_BACKEND=nats` or `kafka` (the `nats` and `kafka` projects in
 * vitest.config.ts) the server runs on that backend, with a prefix of the file's own whose streams
 * or topics are removed afterwards. Kafka broker topics get one partition, so that events without
 * a partitionkey keep their order as on the other backends.
 */
import { afterAll, beforeAll, expect } from 'vitest';
import { Receiver } from './receiver.js';
import {
  binaryEvent,
  createTrigger,
  putResource,
  startServer,
  type ServerProcess,
} from './server-process.js';
import { removeKafkaPrefix, KAFKA_BROKERS, kafkaRequired, uniqueTopicPrefix } from './kafka.js';
import { natsRequired, NATS_URL, removeStreams, uniquePrefix } from './nats.js';
import { removeTempDirs, tempDir } from './temp-dir.js';

/** The backend the e2e servers run on: `embedded` unless TRIBUTARY_TEST_BACKEND says otherwise. */
export const TEST_BACKEND = process.env.TRIBUTARY_TEST_BACKEND ?? 'embedded';

export interface ServerFixture {
  readonly server: ServerProcess;
  readonly url: string;
  /** Creates a broker with a new name in namespace `default`. */
  broker(): Promise<string>;
  /** A listening receiver, stopped after the file's tests. */
  receiver(): Promise<Receiver>;
  /** Creates a Ready trigger on `broker` that delivers to a new receiver. */
  subscribe(broker: string, name: string, spec?: Record<string, unknown>): Promise<Receiver>;
  /**
   * Sends a binary-mode event to `broker`, expects 202, and returns its id. Defaults fill the
   * attributes not given (a new id each time).
   */
  send(
    broker: string,
    attributes?: Record<string, string>,
    body?: string,
    contentType?: string,
  ): Promise<string>;
}

export function useServer(
  args: readonly string[] = [],
  env: Readonly<Record<string, string>> = {},
): ServerFixture {
  let server: ServerProcess | undefined;
  const receivers: Receiver[] = [];
  let brokers = 0;
  let events = 0;

  const prefix = TEST_BACKEND === 'nats' ? uniquePrefix() : undefined;
  const kafkaPrefix = TEST_BACKEND === 'kafka' ? uniqueTopicPrefix() : undefined;

  beforeAll(async () => {
    const backendArgs: string[] = [];
    if (kafkaPrefix !== undefined) {
      if (!(await kafkaRequired('the e2e tests on the Kafka backend'))) {
        throw new Error(`Kafka is not reachable at ${KAFKA_BROKERS.join(',')}`);
      }
      backendArgs.push('--backend', 'kafka', '--kafka-brokers', KAFKA_BROKERS.join(','));
      backendArgs.push('--kafka-prefix', kafkaPrefix, '--kafka-partitions', '1');
    }
    if (prefix !== undefined) {
      if (!(await natsRequired('the e2e tests on the NATS backend'))) {
        throw new Error(`NATS is not reachable at ${NATS_URL}`);
      }
      // A short ack wait: a delivery given back by a stopping server comes back soon.
      backendArgs.push('--backend', 'nats', '--nats-url', NATS_URL, '--nats-prefix', prefix);
      backendArgs.push('--nats-ack-wait', '2s');
    }
    server = await startServer({ dataDir: tempDir(), args: [...backendArgs, ...args], env });
  });
  afterAll(async () => {
    await server?.stop();
    await Promise.all(receivers.map((r) => r.stop()));
    if (prefix !== undefined) await removeStreams(prefix);
    if (kafkaPrefix !== undefined) await removeKafkaPrefix(kafkaPrefix);
    removeTempDirs();
  });

  const fixture: ServerFixture = {
    get server() {
      if (server === undefined) throw new Error('the server is not started yet');
      return server;
    },
    get url() {
      return fixture.server.url;
    },
    async broker() {
      const name = `b${++brokers}`;
      expect((await putResource(fixture.url, 'brokers', 'default', name, {})).status).toBe(201);
      return name;
    },
    async receiver() {
      const receiver = await new Receiver().start();
      receivers.push(receiver);
      return receiver;
    },
    async subscribe(broker, name, spec = {}) {
      const receiver = await fixture.receiver();
      await createTrigger(fixture.url, name, {
        broker,
        subscriber: { uri: receiver.url },
        ...spec,
      });
      return receiver;
    },
    async send(broker, attributes = {}, body, contentType) {
      const defaults = {
        specversion: '1.0',
        id: `e${++events}`,
        source: '/test',
        type: 'com.example.test',
      };
      const all = { ...defaults, ...attributes };
      const response = await fetch(
        `${fixture.url}/default/${broker}`,
        binaryEvent(all, body, contentType),
      );
      expect(response.status).toBe(202);
      return all.id;
    },
  };
  return fixture;
}
