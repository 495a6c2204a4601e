import { describe, expect, it } from 'vitest';
import type { FieldProblem } from '../../src/core/errors.js';
import { REDACTED, redactSecrets, restoreSecrets } from '../../src/core/resources/secrets.js';
import type { Resource } from '../../src/core/resources/types.js';
import { KAFKA_KEY_TYPE_LABEL, validateSource } from '../../src/core/resources/validate.js';

type Json = Record<string, unknown>;

const fields = (problems: readonly FieldProblem[]): string[] => problems.map((p) => p.field);

const BROKER_SINK = {
  ref: { apiVersion: 'eventing.knative.dev/v1', kind: 'Broker', name: 'default' },
};

/** Knative's minimal KafkaSource example (knative.dev docs), with `spec` fields replaced by `spec`. */
function kafkaSource(spec: Json = {}, labels?: Record<string, unknown>): Json {
  return {
    apiVersion: 'sources.knative.dev/v1beta1',
    kind: 'KafkaSource',
    metadata: {
      name: 'kafka-source',
      namespace: 'default',
      ...(labels === undefined ? {} : { labels }),
    },
    spec: {
      consumerGroup: 'knative-group',
      bootstrapServers: ['my-cluster-kafka-bootstrap.kafka:9092'],
      topics: ['knative-demo-topic'],
      sink: BROKER_SINK,
      ...spec,
    },
  };
}

/** A RocketMQSource as docs/sources.md shows it. */
function rocketmqSource(spec: Json = {}): Json {
  return {
    apiVersion: 'sources.tributary.dev/v1alpha1',
    kind: 'RocketMQSource',
    metadata: { name: 'payments', namespace: 'default' },
    spec: {
      endpoints: '127.0.0.1:8081',
      topic: 'payments',
      consumerGroup: 'tributary-payments',
      sink: BROKER_SINK,
      ...spec,
    },
  };
}

/** The resource without the spec field `field`. */
function without(resource: Json, field: string): Json {
  const spec = { ...(resource.spec as Json) };
  delete spec[field];
  return { ...resource, spec };
}

/** A SASL block that passes on its own. */
const SASL = {
  enable: true,
  user: { secretKeyRef: { name: 'kafka', key: 'user' } },
  password: { secretKeyRef: { name: 'kafka', key: 'password' } },
  type: { value: 'SCRAM-SHA-512' },
};

describe('validateSource: KafkaSource', () => {
  it("accepts Knative's minimal example", () => {
    expect(validateSource(kafkaSource())).toEqual([]);
  });

  it('accepts the full example of docs/sources.md', () => {
    const full = kafkaSource({
      bootstrapServers: ['kafka-1.example.com:9092', 'kafka-2.example.com:9092'],
      topics: ['orders', 'payments.v2', 'a_b-c'],
      initialOffset: 'earliest',
      ordering: 'unordered',
      consumers: 3,
      net: {
        sasl: SASL,
        tls: {
          enable: true,
          caCert: { secretKeyRef: { name: 'kafka', key: 'ca.crt' } },
          cert: { env: 'KAFKA_CERT' },
          key: { value: '-----BEGIN PRIVATE KEY-----' },
        },
      },
      delivery: { retry: 5, backoffPolicy: 'exponential', backoffDelay: 'PT0.5S' },
      ceOverrides: { extensions: { team: 'orders' } },
    });
    expect(validateSource(full)).toEqual([]);
  });

  it.each<[string, Json]>([
    ['no consumerGroup (defaulted)', { consumerGroup: undefined }],
    ['initialOffset latest', { initialOffset: 'latest' }],
    ['ordering ordered', { ordering: 'ordered' }],
    ['one consumer', { consumers: 1 }],
    ['several addresses separated by commas in one item', { bootstrapServers: ['a:9092,b:9093'] }],
    ['commas with spaces', { bootstrapServers: ['a:9092, b:9093 ,c:9094'] }],
    ['an IPv6 loopback address', { bootstrapServers: ['[::1]:9092'] }],
    ['an IPv6 address', { bootstrapServers: ['[2001:db8::17]:9093', '10.0.0.1:9092'] }],
    ['SASL with PLAIN and no type', { net: { sasl: { ...SASL, type: undefined } } }],
    ['SASL type in lower case', { net: { sasl: { ...SASL, type: { value: 'scram-sha-256' } } } }],
    [
      'SASL type from a secret (not checked)',
      { net: { sasl: { ...SASL, type: { secretKeyRef: { name: 'kafka', key: 'mech' } } } } },
    ],
    ['SASL disabled without user and password', { net: { sasl: { enable: false } } }],
    ['TLS without any certificate (system CAs)', { net: { tls: { enable: true } } }],
    ['an empty net', { net: {} }],
    ['a uri sink', { sink: { uri: 'http://display.default.svc/' } }],
  ])('accepts %s', (_name, spec) => {
    expect(validateSource(kafkaSource(spec))).toEqual([]);
  });

  it.each(['string', 'int', 'float', 'byte-array'])('accepts the key-type label %j', (keyType) => {
    expect(validateSource(kafkaSource({}, { [KAFKA_KEY_TYPE_LABEL]: keyType }))).toEqual([]);
  });

  it('requires bootstrapServers and topics', () => {
    const resource = without(without(kafkaSource(), 'bootstrapServers'), 'topics');
    expect(validateSource(resource)).toEqual([
      { field: 'spec.bootstrapServers', message: 'required' },
      { field: 'spec.topics', message: 'required' },
    ]);
  });

  it('requires at least one bootstrap server and one topic', () => {
    expect(validateSource(kafkaSource({ bootstrapServers: [], topics: [] }))).toEqual([
      { field: 'spec.bootstrapServers', message: 'must name at least one address' },
      { field: 'spec.topics', message: 'must name at least one topic' },
    ]);
  });

  it('refuses bootstrapServers given as a string', () => {
    expect(validateSource(kafkaSource({ bootstrapServers: 'a:9092' }))).toEqual([
      { field: 'spec.bootstrapServers', message: 'must be a list of strings, got a string' },
    ]);
  });

  it('names a host without a port by its index', () => {
    expect(validateSource(kafkaSource({ bootstrapServers: ['a:9092', 'host'] }))).toEqual([
      { field: 'spec.bootstrapServers[1]', message: '"host" is not a list of host:port addresses' },
    ]);
  });

  it.each([
    'a:9092,b',
    'a:9092,',
    'kafka:port',
    'http://kafka:9092',
    '::1:9092',
    '[::1]',
    'a b:9092',
    'kafka:123456',
  ])('refuses the bootstrap server item %j', (item) => {
    expect(validateSource(kafkaSource({ bootstrapServers: ['ok:9092', item] }))).toEqual([
      {
        field: 'spec.bootstrapServers[1]',
        message: `"${item}" is not a list of host:port addresses`,
      },
    ]);
  });

  it.each<[unknown, string]>([
    ['', 'must be a non-empty string, got a string'],
    [9092, 'must be a non-empty string, got a number'],
  ])('refuses the bootstrap server item %j', (item, message) => {
    expect(validateSource(kafkaSource({ bootstrapServers: [item] }))).toEqual([
      { field: 'spec.bootstrapServers[0]', message },
    ]);
  });

  it.each(['bad topic', 'ünïcode', '.', '..', 'a/b', 'x'.repeat(250)])(
    'refuses the topic name %j',
    (topic) => {
      expect(validateSource(kafkaSource({ topics: [topic, 'ok'] }))).toEqual([
        {
          field: 'spec.topics[0]',
          message: `"${topic}" is not a Kafka topic name (letters, digits, ., _ and -)`,
        },
      ]);
    },
  );

  it('accepts a topic name of 249 characters', () => {
    expect(validateSource(kafkaSource({ topics: ['x'.repeat(249)] }))).toEqual([]);
  });

  it('refuses an empty consumerGroup', () => {
    expect(validateSource(kafkaSource({ consumerGroup: '' }))).toEqual([
      { field: 'spec.consumerGroup', message: 'must not be empty' },
    ]);
  });

  it.each<[string, unknown]>([
    ['initialOffset', 'newest'],
    ['initialOffset', 'Earliest'],
    ['ordering', 'random'],
    ['ordering', true],
  ])('refuses %s %j', (field, value) => {
    const problems = validateSource(kafkaSource({ [field]: value }));
    expect(fields(problems)).toEqual([`spec.${field}`]);
    expect(problems[0]?.message).toMatch(/^must be one of /);
  });

  it('lists the allowed values of initialOffset and ordering', () => {
    expect(validateSource(kafkaSource({ initialOffset: 'newest', ordering: 'random' }))).toEqual([
      { field: 'spec.initialOffset', message: 'must be one of earliest, latest, got a string' },
      { field: 'spec.ordering', message: 'must be one of ordered, unordered, got a string' },
    ]);
  });

  it.each<[unknown]>([[0], [-1], [1.5], ['2'], [null]])('refuses consumers %j', (consumers) => {
    const problems = validateSource(kafkaSource({ consumers }));
    expect(fields(problems)).toEqual(['spec.consumers']);
    expect(problems[0]?.message).toMatch(/^must be an integer of at least 1/);
  });

  it('names a bad secretKeyRef by its full path', () => {
    const sasl = {
      ...SASL,
      password: { secretKeyRef: { name: 'Kafka_Secret', key: 'password' } },
    };
    const problems = validateSource(kafkaSource({ net: { sasl } }));
    expect(fields(problems)).toEqual(['spec.net.sasl.password.secretKeyRef.name']);
    expect(problems[0]?.message).toContain('is not a DNS-1123 label');
  });

  it('names a missing secretKeyRef key and an unknown secretKeyRef field', () => {
    const sasl = { ...SASL, user: { secretKeyRef: { name: 'kafka', keyName: 'user' } } };
    expect(validateSource(kafkaSource({ net: { sasl } }))).toEqual([
      { field: 'spec.net.sasl.user.secretKeyRef.key', message: 'required' },
      { field: 'spec.net.sasl.user.secretKeyRef.keyName', message: 'unknown field' },
    ]);
  });

  it.each<[string, Json]>([
    ['no user', { user: undefined }],
    ['no password', { password: undefined }],
    ['neither', { user: undefined, password: undefined }],
  ])('refuses SASL enabled with %s', (_name, change) => {
    const sasl: Json = { ...SASL, ...change };
    for (const key of Object.keys(change)) delete sasl[key];
    expect(validateSource(kafkaSource({ net: { sasl } }))).toEqual([
      { field: 'spec.net.sasl', message: 'SASL needs a user and a password' },
    ]);
  });

  it.each(['GSSAPI', 'OAUTHBEARER', 'SCRAM-SHA-1', ''])(
    'refuses the SASL mechanism %j',
    (mechanism) => {
      const sasl = { ...SASL, type: { value: mechanism } };
      const problems = validateSource(kafkaSource({ net: { sasl } }));
      const expected = {
        field: 'spec.net.sasl.type.value',
        message: `must be one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, got "${mechanism}"`,
      };
      expect(problems).toContainEqual(expected);
      // An empty value is refused by the secret check too, on the same field.
      expect(new Set(fields(problems))).toEqual(new Set(['spec.net.sasl.type.value']));
    },
  );

  it('refuses a non-boolean enable', () => {
    expect(validateSource(kafkaSource({ net: { sasl: { enable: 'true' } } }))).toEqual([
      { field: 'spec.net.sasl.enable', message: 'must be a boolean, got a string' },
    ]);
  });

  it.each<[string, unknown, string]>([
    ['a string', '-----BEGIN CERTIFICATE-----', 'must be an object, got a string'],
    ['an empty object', {}, 'give exactly one of value, env and secretKeyRef'],
    [
      'both value and env',
      { value: 'pem', env: 'KAFKA_CA' },
      'give exactly one of value, env and secretKeyRef',
    ],
  ])('refuses a tls caCert given as %s', (_name, caCert, message) => {
    expect(validateSource(kafkaSource({ net: { tls: { enable: true, caCert } } }))).toEqual([
      { field: 'spec.net.tls.caCert', message },
    ]);
  });

  it('refuses an env name that is not one', () => {
    expect(
      validateSource(kafkaSource({ net: { tls: { enable: true, key: { env: 'KAFKA-KEY' } } } })),
    ).toEqual([
      { field: 'spec.net.tls.key.env', message: '"KAFKA-KEY" is not an environment variable name' },
    ]);
  });

  it('refuses unknown fields at every level of net, and in spec', () => {
    const problems = validateSource(
      kafkaSource({
        topic: 'typo',
        net: {
          foo: true,
          sasl: { ...SASL, mechanism: 'PLAIN' },
          tls: { enable: true, ca: { value: 'x' } },
        },
      }),
    );
    expect(problems).toEqual(
      expect.arrayContaining([
        { field: 'spec.net.foo', message: 'unknown field' },
        { field: 'spec.net.sasl.mechanism', message: 'unknown field' },
        { field: 'spec.net.tls.ca', message: 'unknown field' },
        { field: 'spec.topic', message: 'unknown field' },
      ]),
    );
    expect(problems).toHaveLength(4);
  });

  it.each<[unknown, string]>([
    ['tls', 'must be an object, got a string'],
    [[], 'must be an object, got an array'],
  ])('refuses a net that is %j', (net, message) => {
    expect(validateSource(kafkaSource({ net }))).toEqual([{ field: 'spec.net', message }]);
  });

  it('refuses a bad key-type label under metadata.labels[<label>]', () => {
    expect(validateSource(kafkaSource({}, { [KAFKA_KEY_TYPE_LABEL]: 'long' }))).toEqual([
      {
        field: 'metadata.labels[kafkasources.sources.knative.dev/key-type]',
        message: 'must be one of string, int, float, byte-array, got a string',
      },
    ]);
  });

  it('ignores other labels', () => {
    expect(validateSource(kafkaSource({}, { 'key-type': 'long', app: 'orders' }))).toEqual([]);
  });

  it('refuses a ceOverrides extension that replaces an attribute the source sets', () => {
    expect(validateSource(kafkaSource({ ceOverrides: { extensions: { type: 'x' } } }))).toEqual([
      {
        field: 'spec.ceOverrides.extensions.type',
        message: '"type" is set by the source and cannot be overridden',
      },
    ]);
  });

  it('reports every problem at once', () => {
    const problems = validateSource(
      kafkaSource({
        bootstrapServers: ['nohost'],
        topics: ['bad topic'],
        initialOffset: 'now',
        consumers: 0,
        net: { sasl: { enable: true } },
      }),
    );
    expect(fields(problems)).toEqual([
      'spec.bootstrapServers[0]',
      'spec.topics[0]',
      'spec.initialOffset',
      'spec.consumers',
      'spec.net.sasl',
    ]);
  });
});

describe('validateSource: RocketMQSource', () => {
  it('accepts the example of docs/sources.md', () => {
    const full = rocketmqSource({
      tag: 'paid || refunded',
      namespace: '',
      credentials: {
        accessKey: { env: 'ROCKETMQ_ACCESS_KEY' },
        secretKey: { secretKeyRef: { name: 'rocketmq', key: 'secretKey' } },
      },
      tls: false,
      invisibleDuration: 'PT30S',
    });
    expect(validateSource(full)).toEqual([]);
  });

  it.each<[string, Json]>([
    ['endpoints as a list', { endpoints: ['a:8081', 'b:8081'] }],
    ['endpoints as a ;-separated string', { endpoints: 'a:8081;b.example:8081' }],
    ['an IPv6 endpoint', { endpoints: '[::1]:8081' }],
    ['a namespaced topic', { topic: 'MQ_INST_1%payments' }],
    ['a group with %, | and _', { consumerGroup: 'GID_a|b%c_d-1' }],
    [
      'credentials with a securityToken',
      {
        credentials: {
          accessKey: { value: 'ak' },
          secretKey: { value: 'sk' },
          securityToken: { env: 'STS_TOKEN' },
        },
      },
    ],
    ['tls true', { tls: true }],
    ['the shortest invisibleDuration', { invisibleDuration: 'PT10S' }],
    ['the longest invisibleDuration', { invisibleDuration: 'PT12H' }],
    ['a uri sink', { sink: { uri: 'https://svc.example/' } }],
  ])('accepts %s', (_name, spec) => {
    expect(validateSource(rocketmqSource(spec))).toEqual([]);
  });

  it('requires endpoints, topic and consumerGroup', () => {
    let resource = rocketmqSource();
    for (const field of ['endpoints', 'topic', 'consumerGroup'])
      resource = without(resource, field);
    expect(validateSource(resource)).toEqual([
      { field: 'spec.endpoints', message: 'required' },
      { field: 'spec.topic', message: 'required' },
      { field: 'spec.consumerGroup', message: 'required' },
    ]);
  });

  it.each<[unknown, FieldProblem]>([
    [
      ['a:8081', 'b'],
      { field: 'spec.endpoints[1]', message: '"b" is not a list of host:port addresses' },
    ],
    [
      'a:8081;b',
      { field: 'spec.endpoints[1]', message: '"b" is not a list of host:port addresses' },
    ],
    [
      'a:8081;',
      { field: 'spec.endpoints[1]', message: 'must be a non-empty string, got a string' },
    ],
    ['', { field: 'spec.endpoints[0]', message: 'must be a non-empty string, got a string' }],
    [[], { field: 'spec.endpoints', message: 'must name at least one address' }],
    [8081, { field: 'spec.endpoints', message: 'must be a list of strings, got a number' }],
  ])('refuses the endpoints %j', (endpoints, expected) => {
    expect(validateSource(rocketmqSource({ endpoints }))).toEqual([expected]);
  });

  it.each(['pay ments', 'a.b', 'a/b', 'x'.repeat(128)])('refuses the topic %j', (topic) => {
    expect(validateSource(rocketmqSource({ topic }))).toEqual([
      { field: 'spec.topic', message: `"${topic}" is not a RocketMQ topic name` },
    ]);
  });

  it('accepts a topic of 127 characters', () => {
    expect(validateSource(rocketmqSource({ topic: 'x'.repeat(127) }))).toEqual([]);
  });

  it.each(['group one', 'g.1', 'x'.repeat(256)])('refuses the consumerGroup %j', (group) => {
    expect(validateSource(rocketmqSource({ consumerGroup: group }))).toEqual([
      { field: 'spec.consumerGroup', message: `"${group}" is not a RocketMQ group name` },
    ]);
  });

  it.each<[string, unknown, string]>([
    ['topic', '', 'must not be empty'],
    ['topic', 7, 'must be a string, got a number'],
    ['consumerGroup', '', 'must not be empty'],
    ['tag', '', 'must not be empty'],
    ['tag', ['a'], 'must be a string, got an array'],
    ['namespace', 5, 'must be a string, got a number'],
    ['tls', 'yes', 'must be a boolean, got a string'],
  ])('refuses %s %j once', (field, value, message) => {
    expect(validateSource(rocketmqSource({ [field]: value }))).toEqual([
      { field: `spec.${field}`, message },
    ]);
  });

  it.each<[string, Json]>([
    ['only an accessKey', { accessKey: { value: 'ak' } }],
    ['only a secretKey', { secretKey: { env: 'SK' } }],
    [
      'a securityToken with only an accessKey',
      { accessKey: { value: 'ak' }, securityToken: { value: 't' } },
    ],
  ])('refuses credentials with %s', (_name, credentials) => {
    expect(validateSource(rocketmqSource({ credentials }))).toEqual([
      { field: 'spec.credentials', message: 'give both accessKey and secretKey, or neither' },
    ]);
  });

  it('checks each credential as a secret and refuses unknown credential fields', () => {
    const credentials = {
      accessKey: { value: '' },
      secretKey: { secretKeyRef: { name: 'rocketmq' } },
      token: { value: 't' },
    };
    expect(validateSource(rocketmqSource({ credentials }))).toEqual([
      { field: 'spec.credentials.token', message: 'unknown field' },
      { field: 'spec.credentials.accessKey.value', message: 'must not be empty' },
      { field: 'spec.credentials.secretKey.secretKeyRef.key', message: 'required' },
    ]);
  });

  it('refuses credentials that are not an object', () => {
    expect(validateSource(rocketmqSource({ credentials: 'ak:sk' }))).toEqual([
      { field: 'spec.credentials', message: 'must be an object, got a string' },
    ]);
  });

  it.each<[string, string]>([
    ['PT9S', "must be between 10 seconds and 12 hours (the proxy's limits)"],
    ['PT12H1S', "must be between 10 seconds and 12 hours (the proxy's limits)"],
    ['PT0S', 'must be greater than zero'],
  ])('refuses the invisibleDuration %j', (invisibleDuration, message) => {
    expect(validateSource(rocketmqSource({ invisibleDuration }))).toEqual([
      { field: 'spec.invisibleDuration', message },
    ]);
  });

  it("refuses unknown spec fields, such as the Alibaba RocketMQSource's", () => {
    const problems = validateSource(
      rocketmqSource({ groupName: 'g', instanceId: 'i', accessToken: { value: 't' } }),
    );
    expect(problems).toEqual([
      { field: 'spec.groupName', message: 'unknown field' },
      { field: 'spec.instanceId', message: 'unknown field' },
      { field: 'spec.accessToken', message: 'unknown field' },
    ]);
  });

  it('does not take KafkaSource fields', () => {
    expect(fields(validateSource(rocketmqSource({ topics: ['t'], net: {} })))).toEqual([
      'spec.topics',
      'spec.net',
    ]);
  });
});

describe('redactSecrets and restoreSecrets: KafkaSource and RocketMQSource', () => {
  const kafka = kafkaSource({
    net: {
      sasl: {
        enable: true,
        user: { value: 'alice' },
        password: { value: 's3cr3t' },
        type: { value: 'SCRAM-SHA-512' },
      },
      tls: {
        enable: true,
        caCert: { secretKeyRef: { name: 'kafka', key: 'ca.crt' } },
        cert: { env: 'KAFKA_CERT' },
        key: { value: '-----BEGIN PRIVATE KEY-----\nMIIE' },
      },
    },
  }) as unknown as Resource;

  const rocketmq = rocketmqSource({
    credentials: {
      accessKey: { value: 'AKID' },
      secretKey: { value: 'SECRET' },
      securityToken: { secretKeyRef: { name: 'sts', key: 'token' } },
    },
  }) as unknown as Resource;

  it('redacts every KafkaSource secret value and keeps env and secretKeyRef', () => {
    const redacted = redactSecrets(kafka);
    expect(redacted.spec.net).toEqual({
      sasl: {
        enable: true,
        user: { value: REDACTED },
        password: { value: REDACTED },
        type: { value: REDACTED },
      },
      tls: {
        enable: true,
        caCert: { secretKeyRef: { name: 'kafka', key: 'ca.crt' } },
        cert: { env: 'KAFKA_CERT' },
        key: { value: REDACTED },
      },
    });
    // Nothing else changes, and the input is untouched.
    expect({ ...redacted, spec: { ...redacted.spec, net: undefined } }).toEqual({
      ...kafka,
      spec: { ...kafka.spec, net: undefined },
    });
    expect(JSON.stringify(kafka)).toContain('s3cr3t');
    expect(JSON.stringify(redacted)).not.toMatch(/alice|s3cr3t|PRIVATE KEY/);
  });

  it('redacts the RocketMQSource credentials and keeps a secretKeyRef', () => {
    const redacted = redactSecrets(rocketmq);
    expect(redacted.spec.credentials).toEqual({
      accessKey: { value: REDACTED },
      secretKey: { value: REDACTED },
      securityToken: { secretKeyRef: { name: 'sts', key: 'token' } },
    });
    expect(rocketmq.spec.credentials).toMatchObject({ accessKey: { value: 'AKID' } });
    expect(redacted.spec.topic).toBe('payments');
  });

  it('returns a manifest without secret values as it is', () => {
    const plain = kafkaSource() as unknown as Resource;
    expect(redactSecrets(plain)).toBe(plain);
  });

  it.each<[string, Resource]>([
    ['KafkaSource', kafka],
    ['RocketMQSource', rocketmq],
  ])('restores a read-back %s to the original', (_kind, original) => {
    // What GET returns: redacted, with server-owned metadata and a status.
    const readBack: Resource = {
      ...redactSecrets(original),
      metadata: { ...original.metadata, uid: 'u-1', generation: 2 },
      status: { conditions: [] },
    };
    const restored = restoreSecrets(readBack, original);
    expect(restored.spec).toEqual(original.spec);
    expect(restored.metadata).toEqual(readBack.metadata);
  });

  it('keeps a secret changed in the read-back manifest and restores only the redacted ones', () => {
    const readBack = structuredClone(redactSecrets(rocketmq));
    (readBack.spec.credentials as Json).secretKey = { value: 'NEW-SECRET' };
    expect(restoreSecrets(readBack, rocketmq).spec.credentials).toEqual({
      accessKey: { value: 'AKID' },
      secretKey: { value: 'NEW-SECRET' },
      securityToken: { secretKeyRef: { name: 'sts', key: 'token' } },
    });
  });

  it('keeps REDACTED where the stored source has no value for that secret', () => {
    const stored = kafkaSource({
      net: { sasl: { ...SASL, user: { env: 'KAFKA_USER' } } },
    }) as unknown as Resource;
    const restored = restoreSecrets(redactSecrets(kafka), stored);
    const sasl = (restored.spec.net as Json).sasl as Json;
    expect(sasl.user).toEqual({ value: REDACTED });
    expect(sasl.type).toEqual({ value: 'SCRAM-SHA-512' });
  });

  it('a read-back RocketMQSource is still a valid manifest', () => {
    expect(validateSource(redactSecrets(rocketmq))).toEqual([]);
  });
});

describe('a KafkaSource read back and applied again', () => {
  it('validates with its SASL type redacted (the stored value stays)', () => {
    const written = kafkaSource({
      net: {
        sasl: {
          enable: true,
          user: { value: 'alice' },
          password: { value: 'secret' },
          type: { value: 'SCRAM-SHA-512' },
        },
      },
    });
    expect(validateSource(written)).toEqual([]);
    const readBack = redactSecrets(written as unknown as Resource);
    expect((readBack.spec.net as Json).sasl).toMatchObject({ type: { value: REDACTED } });
    expect(validateSource(readBack)).toEqual([]);
  });
});
