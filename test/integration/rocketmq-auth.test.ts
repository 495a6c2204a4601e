/**
 * RocketMQSource credentials against a real RocketMQ 5 with ACL 2.0: a private cluster (its own
 * name server, broker and proxy; test/support/rocketmq.ts) whose proxy checks every request's
 * signature and permissions. Wrong credentials show in the source's status as `Connected=False`
 * with `AuthenticationFailed` (and count as upstream errors) and never show through the API; the
 * same source PUT again with the right ones consumes. A user without permission on the topic and
 * group shows `NotAuthorized`. The proxy's own words for each are printed.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getJson, until } from '../support/delivery.js';
import {
  privateRocketmqRequired,
  startPrivateRocketmq,
  type PrivateRocketmq,
} from '../support/rocketmq.js';
import { putResource } from '../support/server-process.js';
import { condition, processes, untilConnected } from '../support/sources.js';
import { removeTempDirs, tempDir } from '../support/temp-dir.js';

const available = await privateRocketmqRequired('the RocketMQSource credential tests');
const USER = 'tributary';
const PASSWORD = `secret-${randomBytes(8).toString('hex')}`;
const WRONG = `wrong-${randomBytes(8).toString('hex')}`;
/** The variable the server reads the right secret key from (`{ env }`). */
const SECRET_ENV = 'TRIBUTARY_TEST_ROCKETMQ_SECRET_KEY';
const { server, receiver, stopAll } = processes();

describe.runIf(available)(
  'RocketMQSource: credentials against ACL 2.0',
  { timeout: 240_000 },
  () => {
    let cluster: PrivateRocketmq | undefined;
    let url = '';

    beforeAll(async () => {
      cluster = await startPrivateRocketmq({
        auth: { username: USER, password: PASSWORD, authorization: true },
      });
      console.log(
        `private RocketMQ with ACL 2.0 at ${cluster.endpoints}: took a signed message ` +
          `${cluster.startSeconds.toFixed(1)} s after its name server was spawned`,
      );
      // The server is a child process with this process's environment: the variable is there only
      // for its start.
      process.env[SECRET_ENV] = PASSWORD;
      try {
        url = (await server(tempDir())).url;
      } finally {
        delete process.env[SECRET_ENV];
      }
    }, 240_000);

    afterAll(async () => {
      await stopAll();
      await cluster?.close();
      removeTempDirs();
    });

    function rocketmq(): PrivateRocketmq {
      if (cluster === undefined) throw new Error('the private RocketMQ did not start');
      return cluster;
    }

    async function putSource(
      name: string,
      spec: Record<string, unknown>,
      expected: 200 | 201,
    ): Promise<void> {
      const response = await putResource(url, 'sources', 'default', name, {
        kind: 'RocketMQSource',
        spec: { endpoints: rocketmq().endpoints, invisibleDuration: 'PT10S', ...spec },
      });
      expect(response.status, JSON.stringify(response.body)).toBe(expected);
    }

    /** The source's status once its client failed to start at least twice (a settled reason). */
    function untilRefused(name: string): Promise<any> {
      return until(
        `${name}'s Connected condition to be False after upstream errors`,
        async () => (await getJson(`${url}/v1/namespaces/default/sources/${name}`)).body?.status,
        (status: any) =>
          condition(status, 'Connected')?.status === 'False' &&
          (status?.events?.upstreamErrors ?? 0) >= 2,
        90_000,
      );
    }

    it('wrong credentials: AuthenticationFailed in the status; the right ones consume', async () => {
      const topic = 'auth-orders';
      const consumerGroup = 'tributary-auth-orders';
      await rocketmq().createTopic(topic);
      await rocketmq().createConsumerGroup(consumerGroup);
      const sink = await receiver();
      const spec = (secretKey: Record<string, unknown>) => ({
        topic,
        consumerGroup,
        credentials: { accessKey: { value: USER }, secretKey },
        sink: { uri: sink.url },
      });

      await putSource('secured', spec({ value: WRONG }), 201);
      const refused = await untilRefused('secured');
      const connected = condition(refused, 'Connected');
      console.log(`wrong secret key: Connected=False, ${connected.reason}: ${connected.message}`);
      expect(connected.reason, `the Connected condition: ${JSON.stringify(connected)}`).toBe(
        'AuthenticationFailed',
      );
      expect(condition(refused, 'Ready')?.status).toBe('False');
      expect(refused.events.upstreamErrors).toBeGreaterThan(0);
      expect(refused.events.received ?? 0).toBe(0);

      // The API never shows a secret, not even the wrong one.
      const shown = await getJson(`${url}/v1/namespaces/default/sources/secured`);
      expect(shown.body.spec.credentials).toEqual({
        accessKey: { value: '<redacted>' },
        secretKey: { value: '<redacted>' },
      });
      expect(JSON.stringify(shown.body)).not.toContain(WRONG);

      await putSource('secured', spec({ env: SECRET_ENV }), 200);
      await untilConnected(url, 'secured', 90_000);
      const [receipt] = await rocketmq().produce(topic, [
        { body: 'signed and sealed', tag: 'auth' },
      ]);
      const [request] = await sink.waitFor(1, 60_000);
      expect(request!.headers['ce-type']).toBe('mq:Topic:SendMessage');
      expect(request!.headers['ce-id']).toBe(receipt!.messageId);
      expect(JSON.parse(request!.body.toString('utf8'))).toMatchObject({
        topic,
        body: 'signed and sealed',
      });
      const fixed = await getJson(`${url}/v1/namespaces/default/sources/secured`);
      expect(fixed.body.spec.credentials).toEqual({
        accessKey: { value: '<redacted>' },
        secretKey: { env: SECRET_ENV },
      });
      expect(JSON.stringify(fixed.body)).not.toContain(PASSWORD);
    });

    it('a user without permission on the topic and group: NotAuthorized', async () => {
      const topic = 'auth-ledger';
      const consumerGroup = 'tributary-auth-ledger';
      await rocketmq().createTopic(topic);
      await rocketmq().createConsumerGroup(consumerGroup);
      const password = `reader-${randomBytes(8).toString('hex')}`;
      // A Normal user with no ACL: authenticated, allowed nothing.
      await rocketmq().createUser('reader', password, 'Normal');
      const sink = await receiver();
      await putSource(
        'unpermitted',
        {
          topic,
          consumerGroup,
          credentials: { accessKey: { value: 'reader' }, secretKey: { value: password } },
          sink: { uri: sink.url },
        },
        201,
      );
      const refused = await untilRefused('unpermitted');
      const connected = condition(refused, 'Connected');
      console.log(`no permission: Connected=False, ${connected.reason}: ${connected.message}`);
      expect(connected.reason, `the Connected condition: ${JSON.stringify(connected)}`).toBe(
        'NotAuthorized',
      );
      expect(refused.events.upstreamErrors).toBeGreaterThan(0);
    });
  },
);
