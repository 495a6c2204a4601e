/**
 * The Kafka backend's security options (issue 7, item 4) against private brokers that require
 * them: SASL PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512, TLS with a client certificate, and SCRAM
 * over TLS through the CLI's flags. The right settings open the backend and carry an event; wrong
 * ones fail with a TributaryError that says why, instead of hanging. A KafkaSource on the SCRAM
 * over TLS broker shows a wrong password in its status and consumes once it is fixed.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, describe, expect, it } from 'vitest';
import type { Backend } from '../../src/backends/contracts.js';
import { createKafkaBackend, type KafkaBackendOptions } from '../../src/backends/kafka/index.js';
import { isTributaryError } from '../../src/core/errors.js';
import {
  privateKafkaRequired,
  startPrivateKafka,
  type PrivateKafka,
  type SaslMechanism,
} from '../support/kafka.js';
import { getJson, until } from '../support/delivery.js';
import { Receiver } from '../support/receiver.js';
import { binaryEvent, putResource, startServer } from '../support/server-process.js';
import { removeTempDirs, tempDir } from '../support/temp-dir.js';

const available = await privateKafkaRequired('the Kafka security tests');
const USER = 'tributary';
const PASSWORD = 'tributary-secret';

describe.runIf(available)('Kafka backend: security options', () => {
  const brokers: PrivateKafka[] = [];
  afterAll(async () => {
    for (const broker of brokers) await broker.close();
    removeTempDirs();
  });

  async function broker(options: Parameters<typeof startPrivateKafka>[0]): Promise<PrivateKafka> {
    const started = await startPrivateKafka({ ...options, users: { [USER]: PASSWORD } });
    brokers.push(started);
    return started;
  }

  /** Opens the backend, stores and reads nothing more than a broker's topic, and closes it. */
  async function works(options: KafkaBackendOptions): Promise<void> {
    const backend: Backend = await createKafkaBackend({ ...options, prefix: 'sec' });
    try {
      const ref = { namespace: 'default', name: `b${brokers.length}` };
      await backend.eventLog.ensureBroker(ref);
      await backend.eventLog.append(ref, [
        { attributes: { specversion: '1.0', id: '1', source: '/sec', type: 'com.example.sec' } },
      ]);
    } finally {
      await backend.close();
    }
  }

  async function refused(options: KafkaBackendOptions, reason: RegExp): Promise<void> {
    const error: unknown = await createKafkaBackend({ ...options, prefix: 'sec' }).then(
      async (backend) => {
        await backend.close();
        return undefined;
      },
      (e: unknown) => e,
    );
    expect(isTributaryError(error), String(error)).toBe(true);
    expect((error as Error).message).toMatch(reason);
  }

  for (const mechanism of ['plain', 'scram-sha-256', 'scram-sha-512'] as SaslMechanism[]) {
    it(`SASL ${mechanism}: the right password works, a wrong one is refused`, async () => {
      const kafka = await broker({ sasl: mechanism });
      await works({
        brokers: [kafka.bootstrap],
        sasl: { mechanism, username: USER, password: PASSWORD },
      });
      await refused(
        { brokers: [kafka.bootstrap], sasl: { mechanism, username: USER, password: 'wrong' } },
        /authentication|SASL/i,
      );
    });
  }

  it('TLS with a client certificate works; without the certificate it is refused', async () => {
    const kafka = await broker({ tls: { clientAuth: true } });
    const tls = kafka.tls!;
    await works({
      brokers: [kafka.bootstrap],
      tlsCaFile: tls.caFile,
      tlsCertFile: tls.certFile,
      tlsKeyFile: tls.keyFile,
    });
    await refused({ brokers: [kafka.bootstrap], tlsCaFile: tls.caFile }, /Kafka/);
  });

  it('SCRAM-SHA-512 over TLS through the CLI flags, and a KafkaSource on that cluster', async () => {
    const kafka = await broker({ sasl: 'scram-sha-512', tls: true });
    // The KafkaSource's secrets: Knative's secretKeyRef files, as Kubernetes would mount them.
    const secretsDir = tempDir();
    mkdirSync(join(secretsDir, 'kafka'));
    writeFileSync(join(secretsDir, 'kafka', 'user'), `${USER}\n`);
    writeFileSync(join(secretsDir, 'kafka', 'password'), `${PASSWORD}\n`);
    writeFileSync(join(secretsDir, 'kafka', 'ca.crt'), kafka.tls!.ca);
    const server = await startServer({
      dataDir: tempDir(),
      args: [
        '--backend',
        'kafka',
        '--kafka-brokers',
        kafka.bootstrap,
        '--kafka-tls-ca',
        kafka.tls!.caFile,
        '--kafka-sasl-mechanism',
        'scram-sha-512',
        '--kafka-sasl-username',
        USER,
        '--secrets-dir',
        secretsDir,
      ],
      // The password from the environment, as the help text advises.
      env: { TRIBUTARY_KAFKA_SASL_PASSWORD: PASSWORD },
    });
    try {
      expect(
        (await putResource(server.url, 'brokers', 'default', 'sec', { spec: {} })).status,
      ).toBe(201);
      const response = await fetch(
        `${server.url}/default/sec`,
        binaryEvent({ specversion: '1.0', id: 'x', source: '/sec', type: 'com.example.sec' }),
      );
      expect(response.status).toBe(202);
      await kafkaSourceOverSaslTls(server.url, kafka);
    } finally {
      await server.stop();
    }
  });

  /**
   * A KafkaSource with SASL SCRAM-SHA-512 over TLS (secrets from files) delivers a record; the same
   * with a wrong password shows AuthenticationFailed in its status, and recovers once fixed.
   */
  async function kafkaSourceOverSaslTls(url: string, kafka: PrivateKafka): Promise<void> {
    const receiver = await new Receiver().start();
    try {
      const topic = 'secured-orders';
      const client = new Kafka({
        clientId: 'tributary-test',
        brokers: [kafka.bootstrap],
        logLevel: logLevel.NOTHING,
        ssl: { ca: [kafka.tls!.ca] },
        sasl: { mechanism: 'scram-sha-512', username: USER, password: PASSWORD },
      });
      const admin = client.admin();
      await admin.connect();
      await admin.createTopics({ topics: [{ topic }], waitForLeaders: true });
      await admin.disconnect();
      const net = (password: Record<string, unknown>) => ({
        sasl: {
          enable: true,
          user: { secretKeyRef: { name: 'kafka', key: 'user' } },
          password,
          type: { value: 'SCRAM-SHA-512' },
        },
        tls: { enable: true, caCert: { secretKeyRef: { name: 'kafka', key: 'ca.crt' } } },
      });
      const spec = (password: Record<string, unknown>) => ({
        kind: 'KafkaSource',
        spec: {
          bootstrapServers: [kafka.bootstrap],
          topics: [topic],
          initialOffset: 'earliest',
          net: net(password),
          sink: { uri: receiver.url },
        },
      });
      const wrong = await putResource(
        url,
        'sources',
        'default',
        'secured',
        spec({ value: 'wrong' }),
      );
      expect(wrong.status, JSON.stringify(wrong.body)).toBe(201);
      const refused = await until(
        'the source to report the failed authentication',
        async () => (await getJson(`${url}/v1/namespaces/default/sources/secured`)).body.status,
        (status: any) =>
          status?.conditions?.some(
            (c: any) => c.type === 'Connected' && c.reason === 'AuthenticationFailed',
          ),
        30_000,
      );
      expect(refused.conditions.find((c: any) => c.type === 'Ready').status).toBe('False');
      expect(refused.events.upstreamErrors).toBeGreaterThan(0);
      // The password never shows, not even the wrong one.
      const shown = await getJson(`${url}/v1/namespaces/default/sources/secured`);
      expect(shown.body.spec.net.sasl.password).toEqual({ value: '<redacted>' });

      const fixed = await putResource(
        url,
        'sources',
        'default',
        'secured',
        spec({ secretKeyRef: { name: 'kafka', key: 'password' } }),
      );
      expect(fixed.status, JSON.stringify(fixed.body)).toBe(200);
      const producer = client.producer();
      await producer.connect();
      await producer.send({ topic, messages: [{ key: 'k', value: 'over SASL and TLS' }] });
      await producer.disconnect();
      const [request] = await receiver.waitFor(1, 30_000);
      expect(request!.body.toString()).toBe('over SASL and TLS');
      expect(request!.headers['ce-type']).toBe('dev.knative.kafka.event');
    } finally {
      await receiver.stop();
    }
  }
});
