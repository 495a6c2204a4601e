import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { envName, loadConfig, OPTIONS, type Config, type ConfigSources } from '../../src/config.js';
import { TributaryError } from '../../src/core/errors.js';

let dir: string;
let fileCount = 0;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'tributary-config-test-'));
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Writes `text` to a new file in the temp dir and returns its path. */
function configFile(text: string, name = `config-${++fileCount}.yaml`): string {
  const path = join(dir, name);
  writeFileSync(path, text, 'utf8');
  return path;
}

function load(sources: Partial<ConfigSources> = {}): Config {
  return loadConfig({ flags: {}, env: {}, ...sources });
}

/** The CONFIG_INVALID error loadConfig throws for these sources. */
function failure(sources: Partial<ConfigSources>): TributaryError {
  try {
    load(sources);
  } catch (error) {
    expect(error).toBeInstanceOf(TributaryError);
    const e = error as TributaryError;
    expect(e.code).toBe('CONFIG_INVALID');
    return e;
  }
  throw new Error('expected loadConfig to throw');
}

/** The fields of every problem loadConfig reports for these sources. */
function problemFields(sources: Partial<ConfigSources>): string[] {
  return failure(sources).problems.map((p) => p.field);
}

describe('loadConfig defaults', () => {
  it('gives every option its documented default when nothing is set', () => {
    expect(load()).toEqual({
      port: 8080,
      host: '127.0.0.1',
      dataDir: './data',
      backend: 'embedded',
      maxEventSize: 1_048_576,
      maxStoreSize: 0,
      maxPendingSize: 64 * 1024 * 1024,
      shutdownTimeout: 30_000,
      triggerConcurrency: 100,
      maxTtl: 255,
      deliveryTimeout: 30_000,
      retention: 86_400_000,
      webhookMaxBody: 26_214_400,
      webhookDedupWindow: 86_400_000,
      sourceLeaseTtl: 15_000,
      eventTypesFlushInterval: 5_000,
      secretsDir: './secrets',
      logLevel: 'info',
      natsUrl: 'nats://127.0.0.1:4222',
      natsTls: false,
      natsPrefix: 'tributary',
      natsReplicas: 1,
      natsMaxBytes: 0,
      natsDuplicateWindow: 120_000,
      natsAckWait: 30_000,
      kafkaBrokers: '127.0.0.1:9092',
      kafkaPrefix: 'tributary',
      kafkaPartitions: 10,
      kafkaReplicationFactor: 1,
      kafkaTopicTemplate: '{prefix}.{namespace}.{broker}',
      kafkaTls: false,
      maxHeaderSize: 16_384,
      requestTimeout: 30_000,
      outboundAllowPrivate: true,
      outboundAllowLinkLocal: false,
      outboundAllow: '',
      outboundDeny: '',
    });
  });

  it('leaves options without a default out when no source sets them', () => {
    const config = load();
    for (const key of [
      'natsUser',
      'natsPassword',
      'natsToken',
      'natsNkeyFile',
      'natsCredsFile',
      'natsTlsCa',
      'natsTlsCert',
      'natsTlsKey',
      'kafkaTopicConfig',
      'kafkaSaslMechanism',
      'kafkaSaslUsername',
      'kafkaSaslPassword',
      'kafkaTlsCa',
      'kafkaTlsCert',
      'kafkaTlsKey',
      'otelEndpoint',
      'tokensFile',
      'adminToken',
    ]) {
      expect(key in config, key).toBe(false);
    }
    expect(OPTIONS.filter((o) => o.default === undefined).map((o) => o.key)).toEqual([
      'natsUser',
      'natsPassword',
      'natsToken',
      'natsNkeyFile',
      'natsCredsFile',
      'natsTlsCa',
      'natsTlsCert',
      'natsTlsKey',
      'kafkaTopicConfig',
      'kafkaSaslMechanism',
      'kafkaSaslUsername',
      'kafkaSaslPassword',
      'kafkaTlsCa',
      'kafkaTlsCert',
      'kafkaTlsKey',
      'otelEndpoint',
      'tokensFile',
      'adminToken',
    ]);
  });

  it('returns a frozen object', () => {
    const config = load({ flags: { port: '9000' } });
    expect(Object.isFrozen(config)).toBe(true);
    expect(() => {
      (config as { port: number }).port = 1;
    }).toThrow(TypeError);
    expect(config.port).toBe(9000);
  });

  it('ignores flags, env variables and file keys that are undefined or null', () => {
    const file = configFile('port: null\nhost:\n');
    const config = load({
      flags: { port: undefined },
      env: { TRIBUTARY_PORT: undefined },
      configFile: file,
    });
    expect(config.port).toBe(8080);
    expect(config.host).toBe('127.0.0.1');
  });
});

describe('loadConfig precedence: flag, then env, then config file, then default', () => {
  it('a flag wins over env, file and default', () => {
    const file = configFile('port: 7000\nlogLevel: warn\ndataDir: /from/file\n');
    const config = load({
      flags: { port: '9000', 'log-level': 'debug', 'data-dir': '/from/flag' },
      env: {
        TRIBUTARY_PORT: '8000',
        TRIBUTARY_LOG_LEVEL: 'error',
        TRIBUTARY_DATA_DIR: '/from/env',
      },
      configFile: file,
    });
    expect(config.port).toBe(9000);
    expect(config.logLevel).toBe('debug');
    expect(config.dataDir).toBe('/from/flag');
  });

  it('env wins over file and default when no flag is given', () => {
    const file = configFile('port: 7000\nlogLevel: warn\nretention: 1h\n');
    const config = load({
      env: { TRIBUTARY_PORT: '8000', TRIBUTARY_LOG_LEVEL: 'error', TRIBUTARY_RETENTION: '2h' },
      configFile: file,
    });
    expect(config.port).toBe(8000);
    expect(config.logLevel).toBe('error');
    expect(config.retention).toBe(7_200_000);
  });

  it('the file wins over the default when neither flag nor env is given', () => {
    const file = configFile(
      'port: 7000\nlogLevel: warn\nretention: 1h\nmaxEventSize: 2MiB\ntriggerConcurrency: 5\n',
    );
    const config = load({ configFile: file });
    expect(config.port).toBe(7000);
    expect(config.logLevel).toBe('warn');
    expect(config.retention).toBe(3_600_000);
    expect(config.maxEventSize).toBe(2 * 1_048_576);
    expect(config.triggerConcurrency).toBe(5);
    // Options the file leaves out keep their defaults.
    expect(config.host).toBe('127.0.0.1');
  });

  it('each option takes its own highest source', () => {
    const file = configFile('port: 7000\nhost: 10.0.0.1\nlogLevel: warn\n');
    const config = load({
      flags: { port: '9000' },
      env: { TRIBUTARY_HOST: '0.0.0.0' },
      configFile: file,
    });
    expect(config.port).toBe(9000);
    expect(config.host).toBe('0.0.0.0');
    expect(config.logLevel).toBe('warn');
    expect(config.backend).toBe('embedded');
  });

  it('a bad value in a lower source is not looked at when a higher one is set', () => {
    const file = configFile('port: not-a-port\n');
    expect(load({ flags: { port: '9000' }, configFile: file }).port).toBe(9000);
    expect(load({ env: { TRIBUTARY_PORT: '9001' }, configFile: file }).port).toBe(9001);
  });

  it('a bad value in a higher source is reported, not replaced by a lower one', () => {
    const e = failure({ flags: { port: 'x' }, env: { TRIBUTARY_PORT: '8000' } });
    expect(e.problems).toEqual([
      { field: '--port', message: '"x" is not a port number (0-65535)' },
    ]);
  });

  it('an empty flag is a value, not an absence', () => {
    expect(problemFields({ flags: { host: '' }, env: { TRIBUTARY_HOST: '0.0.0.0' } })).toEqual([
      '--host',
    ]);
  });

  it('reads the env variable named by envName, not the flag name', () => {
    expect(load({ env: { port: '1234', 'data-dir': '/x' } }).port).toBe(8080);
    expect(load({ env: { TRIBUTARY_DATA_DIR: '/x' } }).dataDir).toBe('/x');
    expect(load({ env: { TRIBUTARY_MAX_EVENT_SIZE: '2KB' } }).maxEventSize).toBe(2000);
  });

  it('reads flags by their kebab-case flag name', () => {
    expect(load({ flags: { 'max-event-size': '4KiB' } }).maxEventSize).toBe(4096);
    expect(load({ flags: { maxEventSize: '4KiB' } }).maxEventSize).toBe(1_048_576);
  });
});

describe('port', () => {
  it.each([
    ['0', 0],
    ['1', 1],
    ['8080', 8080],
    ['65535', 65_535],
    [' 9000 ', 9000],
  ])('accepts %j as %d', (text, port) => {
    expect(load({ flags: { port: text } }).port).toBe(port);
  });

  it.each(['65536', '-1', '80.5', 'abc', '', '  ', '8080x', '99999', '0x1F90', '1e3', '+80'])(
    'refuses %j',
    (text) => {
      const e = failure({ flags: { port: text } });
      expect(e.problems).toEqual([
        { field: '--port', message: `"${text}" is not a port number (0-65535)` },
      ]);
    },
  );

  it('accepts a YAML number', () => {
    expect(load({ configFile: configFile('port: 4321\n') }).port).toBe(4321);
  });

  it('refuses a YAML value that is neither string nor number', () => {
    const file = configFile('port: true\nhost: [a, b]\n');
    expect(failure({ configFile: file }).problems).toEqual([
      { field: 'config file: port', message: 'must be a string or a number' },
      { field: 'config file: host', message: 'must be a string or a number' },
    ]);
  });
});

describe('sizes', () => {
  it.each([
    ['1048576', 1_048_576],
    ['1024', 1024],
    ['512KiB', 524_288],
    ['1MiB', 1_048_576],
    ['1GiB', 1_073_741_824],
    ['2KB', 2000],
    ['3MB', 3_000_000],
    ['1GB', 1_000_000_000],
    ['2048B', 2048],
    ['512kib', 524_288],
    ['1mib', 1_048_576],
    ['2kb', 2000],
    ['1MIB', 1_048_576],
    ['4 KiB', 4096],
  ])('max-event-size %j is %d bytes', (text, bytes) => {
    expect(load({ flags: { 'max-event-size': text } }).maxEventSize).toBe(bytes);
  });

  it.each(['1023', '1000B', '1KB', '0', '0KiB', '1.5MiB', '-1MiB', '1TiB', 'big', '', 'MiB'])(
    'max-event-size refuses %j',
    (text) => {
      const e = failure({ flags: { 'max-event-size': text } });
      expect(e.problems).toHaveLength(1);
      expect(e.problems[0]!.field).toBe('--max-event-size');
      expect(e.problems[0]!.message).toBe(
        `"${text}" is not a size of at least 1KiB (e.g. 1048576, 512KiB, 1MiB)`,
      );
    },
  );

  it('1KiB is the smallest size accepted', () => {
    expect(load({ flags: { 'max-event-size': '1KiB' } }).maxEventSize).toBe(1024);
  });

  it('max-store-size accepts 0 (no limit) and sizes from 1KiB', () => {
    expect(load({ flags: { 'max-store-size': '0' } }).maxStoreSize).toBe(0);
    expect(load({ flags: { 'max-store-size': '0MiB' } }).maxStoreSize).toBe(0);
    expect(load({ env: { TRIBUTARY_MAX_STORE_SIZE: '10GiB' } }).maxStoreSize).toBe(10 * 1024 ** 3);
    expect(load({ configFile: configFile('maxStoreSize: 0\n') }).maxStoreSize).toBe(0);
  });

  it('max-store-size refuses sizes between 0 and 1KiB, and says 0 is allowed', () => {
    expect(failure({ flags: { 'max-store-size': '512' } }).problems).toEqual([
      {
        field: '--max-store-size',
        message: '"512" is not a size of at least 1KiB (or 0) (e.g. 1048576, 512KiB, 1MiB)',
      },
    ]);
  });

  it('accepts a size given as a YAML number', () => {
    expect(load({ configFile: configFile('maxEventSize: 2048\n') }).maxEventSize).toBe(2048);
  });
});

describe('durations', () => {
  it.each([
    ['500ms', 500],
    ['30s', 30_000],
    ['5m', 300_000],
    ['24h', 86_400_000],
    ['7d', 604_800_000],
    ['1.5h', 5_400_000],
    ['PT30S', 30_000],
    ['PT0.5S', 500],
    ['PT1M30S', 90_000],
    ['P1D', 86_400_000],
    [' 10s ', 10_000],
  ])('shutdown-timeout %j is %d ms', (text, ms) => {
    expect(load({ flags: { 'shutdown-timeout': text } }).shutdownTimeout).toBe(ms);
  });

  it.each(['0s', '0ms', 'PT0S', 'abc', '-1s', '-PT1S', '30', '5M', '1h30m', '', 'P1Y'])(
    'refuses %j',
    (text) => {
      expect(failure({ flags: { 'delivery-timeout': text } }).problems).toEqual([
        {
          field: '--delivery-timeout',
          message: `"${text}" is not a positive duration (e.g. 500ms, 30s, 5m, PT30S)`,
        },
      ]);
    },
  );

  it('applies to every duration option', () => {
    const config = load({
      flags: { 'shutdown-timeout': '1s', 'delivery-timeout': '2s', retention: '3d' },
    });
    expect(config.shutdownTimeout).toBe(1000);
    expect(config.deliveryTimeout).toBe(2000);
    expect(config.retention).toBe(259_200_000);
  });
});

describe('counts', () => {
  it.each([
    ['1', 1],
    ['100', 100],
    ['100000', 100_000],
  ])('trigger-concurrency %j is %d', (text, n) => {
    expect(load({ flags: { 'trigger-concurrency': text } }).triggerConcurrency).toBe(n);
  });

  it.each(['0', '-1', '100001', '1.5', 'many', ''])('trigger-concurrency refuses %j', (text) => {
    expect(failure({ flags: { 'trigger-concurrency': text } }).problems).toEqual([
      {
        field: '--trigger-concurrency',
        message: `"${text}" is not a whole number between 1 and 100000`,
      },
    ]);
  });
});

describe('enumerations and strings', () => {
  it('backend accepts embedded, nats and kafka only', () => {
    expect(load({ flags: { backend: 'embedded' } }).backend).toBe('embedded');
    expect(load({ env: { TRIBUTARY_BACKEND: 'nats' } }).backend).toBe('nats');
    expect(load({ flags: { backend: 'kafka' } }).backend).toBe('kafka');
    for (const bad of ['rabbitmq', 'Embedded', 'NATS', '']) {
      expect(failure({ flags: { backend: bad } }).problems).toEqual([
        {
          field: '--backend',
          message: `"${bad}" is not a backend; choose one of embedded, nats, kafka`,
        },
      ]);
    }
  });

  it.each(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])(
    'log level %s is accepted',
    (level) => {
      expect(load({ env: { TRIBUTARY_LOG_LEVEL: level } }).logLevel).toBe(level);
    },
  );

  it.each(['verbose', 'INFO', 'warning'])('log level %j is refused', (level) => {
    expect(failure({ env: { TRIBUTARY_LOG_LEVEL: level } }).problems).toEqual([
      {
        field: 'TRIBUTARY_LOG_LEVEL',
        message: `"${level}" is not a log level; choose one of fatal, error, warn, info, debug, trace, silent`,
      },
    ]);
  });

  it('treats an empty environment variable as not set', () => {
    expect(load({ env: { TRIBUTARY_LOG_LEVEL: '', TRIBUTARY_PORT: '' } })).toMatchObject({
      logLevel: 'info',
      port: 8080,
    });
  });

  it('string options refuse blank values and keep others as given', () => {
    expect(load({ flags: { host: '0.0.0.0', 'data-dir': ' /var/lib/t ' } })).toMatchObject({
      host: '0.0.0.0',
      dataDir: ' /var/lib/t ',
    });
    expect(failure({ flags: { host: ' ' } }).problems).toEqual([
      { field: '--host', message: 'must not be empty' },
    ]);
  });
});

describe('config file', () => {
  it('uses camelCase option names as keys', () => {
    const file = configFile(
      [
        'port: 1',
        'host: h',
        'dataDir: d',
        'backend: embedded',
        'maxEventSize: 2KiB',
        'maxStoreSize: 1MiB',
        'maxPendingSize: 0',
        'shutdownTimeout: 1s',
        'triggerConcurrency: 2',
        'maxTtl: 9',
        'deliveryTimeout: 3s',
        'retention: 4s',
        'webhookMaxBody: 1MiB',
        'webhookDedupWindow: 1h',
        'sourceLeaseTtl: 2s',
        'eventTypesFlushInterval: 250ms',
        'secretsDir: /run/secrets',
        'logLevel: trace',
        'natsUrl: nats://n1:4222,nats://n2:4222',
        'natsUser: u',
        'natsPassword: p',
        'natsTls: true',
        'natsTlsCa: ca.pem',
        'natsTlsCert: c.pem',
        'natsTlsKey: k.pem',
        'natsPrefix: tb',
        'natsReplicas: 3',
        'natsMaxBytes: 1GiB',
        'natsDuplicateWindow: 1s',
        'natsAckWait: 5s',
        '',
      ].join('\n'),
    );
    expect(load({ configFile: file })).toEqual({
      port: 1,
      host: 'h',
      dataDir: 'd',
      backend: 'embedded',
      maxEventSize: 2048,
      maxStoreSize: 1_048_576,
      maxPendingSize: 0,
      shutdownTimeout: 1000,
      triggerConcurrency: 2,
      maxTtl: 9,
      deliveryTimeout: 3000,
      retention: 4000,
      webhookMaxBody: 1_048_576,
      webhookDedupWindow: 3_600_000,
      sourceLeaseTtl: 2000,
      eventTypesFlushInterval: 250,
      secretsDir: '/run/secrets',
      logLevel: 'trace',
      natsUrl: 'nats://n1:4222,nats://n2:4222',
      natsUser: 'u',
      natsPassword: 'p',
      natsTls: true,
      natsTlsCa: 'ca.pem',
      natsTlsCert: 'c.pem',
      natsTlsKey: 'k.pem',
      natsPrefix: 'tb',
      natsReplicas: 3,
      natsMaxBytes: 1024 ** 3,
      natsDuplicateWindow: 1000,
      natsAckWait: 5000,
      kafkaBrokers: '127.0.0.1:9092',
      kafkaPrefix: 'tributary',
      kafkaPartitions: 10,
      kafkaReplicationFactor: 1,
      kafkaTopicTemplate: '{prefix}.{namespace}.{broker}',
      kafkaTls: false,
      maxHeaderSize: 16_384,
      requestTimeout: 30_000,
      outboundAllowPrivate: true,
      outboundAllowLinkLocal: false,
      outboundAllow: '',
      outboundDeny: '',
    });
  });

  it('an empty file or one holding only comments sets nothing', () => {
    expect(load({ configFile: configFile('') }).port).toBe(8080);
    expect(load({ configFile: configFile('# nothing here\n') }).port).toBe(8080);
  });

  it('refuses unknown keys, including flag spellings', () => {
    const file = configFile('port: 1\nprot: 2\nmax-event-size: 2KiB\n');
    expect(failure({ configFile: file }).problems).toEqual([
      { field: 'config file: prot', message: 'unknown option' },
      { field: 'config file: max-event-size', message: 'unknown option' },
    ]);
  });

  it('refuses a file that is a list, naming its path', () => {
    const file = configFile('- port: 1\n- host: h\n');
    const e = failure({ configFile: file });
    expect(e.message).toBe(`Config file ${file} must hold a mapping of option names to values`);
  });

  it('refuses a file that is a scalar, naming its path', () => {
    const file = configFile('42\n');
    expect(failure({ configFile: file }).message).toContain(`Config file ${file} must hold`);
  });

  it('refuses a file that is not YAML, naming its path', () => {
    const file = configFile('port: [1, 2\nhost: : :\n');
    const e = failure({ configFile: file });
    expect(e.message).toContain(`Config file ${file} is not valid YAML: `);
  });

  it('refuses a file that cannot be read, naming its path', () => {
    const missing = join(dir, 'does-not-exist.yaml');
    const e = failure({ configFile: missing });
    expect(e.message).toContain(`Cannot read config file ${missing}: `);
    expect(e.message).toContain('ENOENT');
  });
});

describe('all problems at once', () => {
  it('reports every bad option in one CONFIG_INVALID error, by the field it came from', () => {
    const file = configFile('logLevel: loud\nretention: forever\nbogus: 1\n');
    const e = failure({
      flags: { port: '70000', 'max-event-size': '10' },
      env: { TRIBUTARY_TRIGGER_CONCURRENCY: '0', TRIBUTARY_BACKEND: 'rabbitmq' },
      configFile: file,
    });
    expect(e.status).toBe(500);
    expect(e.retryable).toBe(false);
    expect(e.problems.map((p) => p.field)).toEqual([
      'config file: bogus',
      '--port',
      'TRIBUTARY_BACKEND',
      '--max-event-size',
      'TRIBUTARY_TRIGGER_CONCURRENCY',
      'config file: retention',
      'config file: logLevel',
    ]);
    const lines = e.message.split('\n');
    expect(lines[0]).toBe('Invalid configuration:');
    expect(lines.slice(1)).toEqual([
      '  config file: bogus: unknown option',
      '  --port: "70000" is not a port number (0-65535)',
      '  TRIBUTARY_BACKEND: "rabbitmq" is not a backend; choose one of embedded, nats, kafka',
      '  --max-event-size: "10" is not a size of at least 1KiB (e.g. 1048576, 512KiB, 1MiB)',
      '  TRIBUTARY_TRIGGER_CONCURRENCY: "0" is not a whole number between 1 and 100000',
      '  config file: retention: "forever" is not a positive duration (e.g. 500ms, 30s, 5m, PT30S)',
      '  config file: logLevel: "loud" is not a log level; choose one of fatal, error, warn, info, debug, trace, silent',
    ]);
  });

  it('names the field the same way for each source', () => {
    expect(problemFields({ flags: { port: 'x' } })).toEqual(['--port']);
    expect(problemFields({ env: { TRIBUTARY_PORT: 'x' } })).toEqual(['TRIBUTARY_PORT']);
    expect(problemFields({ configFile: configFile('port: x\n') })).toEqual(['config file: port']);
  });
});

describe('nats options', () => {
  it('each comes from its flag, env variable and config file key', () => {
    const cases: [string, string, string, unknown][] = [
      ['nats-url', 'nats://10.0.0.1:4222', 'natsUrl', 'nats://10.0.0.1:4222'],
      ['nats-user', 'alice', 'natsUser', 'alice'],
      ['nats-password', 'pw', 'natsPassword', 'pw'],
      ['nats-token', 'tok', 'natsToken', 'tok'],
      ['nats-nkey-file', '/etc/t/user.nk', 'natsNkeyFile', '/etc/t/user.nk'],
      ['nats-creds-file', '/etc/t/user.creds', 'natsCredsFile', '/etc/t/user.creds'],
      ['nats-tls', 'true', 'natsTls', true],
      ['nats-tls-ca', 'ca.pem', 'natsTlsCa', 'ca.pem'],
      ['nats-tls-cert', 'c.pem', 'natsTlsCert', 'c.pem'],
      ['nats-tls-key', 'k.pem', 'natsTlsKey', 'k.pem'],
      ['nats-prefix', 'blue_team-2', 'natsPrefix', 'blue_team-2'],
      ['nats-replicas', '3', 'natsReplicas', 3],
      ['nats-max-bytes', '10MiB', 'natsMaxBytes', 10 * 1_048_576],
      ['nats-duplicate-window', '30s', 'natsDuplicateWindow', 30_000],
      ['nats-ack-wait', '2s', 'natsAckWait', 2_000],
      ['kafka-brokers', 'k1:9092,k2:9093', 'kafkaBrokers', 'k1:9092,k2:9093'],
      ['kafka-prefix', 'team-a', 'kafkaPrefix', 'team-a'],
      ['kafka-partitions', '3', 'kafkaPartitions', 3],
      ['kafka-replication-factor', '3', 'kafkaReplicationFactor', 3],
      [
        'kafka-topic-template',
        'knative-broker-{namespace}-{broker}',
        'kafkaTopicTemplate',
        'knative-broker-{namespace}-{broker}',
      ],
      ['kafka-topic-config', 'compression.type=lz4', 'kafkaTopicConfig', 'compression.type=lz4'],
      ['kafka-sasl-mechanism', 'SCRAM-SHA-512', 'kafkaSaslMechanism', 'scram-sha-512'],
      ['kafka-sasl-username', 'u', 'kafkaSaslUsername', 'u'],
      ['kafka-sasl-password', 'p', 'kafkaSaslPassword', 'p'],
      ['kafka-tls', 'true', 'kafkaTls', true],
      ['kafka-tls-ca', 'ca.pem', 'kafkaTlsCa', 'ca.pem'],
      ['kafka-tls-cert', 'c.pem', 'kafkaTlsCert', 'c.pem'],
      ['kafka-tls-key', 'k.pem', 'kafkaTlsKey', 'k.pem'],
    ];
    // The pairs that must come together are given together; the rest alone.
    const partner: Record<string, [string, string][]> = {
      'nats-user': [['nats-password', 'x']],
      'nats-password': [['nats-user', 'x']],
      'nats-tls-cert': [['nats-tls-key', 'x']],
      'nats-tls-key': [['nats-tls-cert', 'x']],
      'kafka-sasl-mechanism': [
        ['kafka-sasl-username', 'x'],
        ['kafka-sasl-password', 'x'],
      ],
      'kafka-sasl-username': [
        ['kafka-sasl-mechanism', 'plain'],
        ['kafka-sasl-password', 'x'],
      ],
      'kafka-sasl-password': [
        ['kafka-sasl-mechanism', 'plain'],
        ['kafka-sasl-username', 'x'],
      ],
      'kafka-tls-cert': [['kafka-tls-key', 'x']],
      'kafka-tls-key': [['kafka-tls-cert', 'x']],
    };
    for (const [flag, text, key, value] of cases) {
      const flags: Record<string, string> = { [flag]: text };
      const env: Record<string, string> = { [envName(flag)]: text };
      let yaml = `${key}: ${text}\n`;
      for (const [otherFlag, otherText] of partner[flag] ?? []) {
        const otherKey = OPTIONS.find((o) => o.flag === otherFlag)!.key;
        flags[otherFlag] = otherText;
        env[envName(otherFlag)] = otherText;
        yaml += `${otherKey}: ${otherText}\n`;
      }
      expect(load({ flags })[key as keyof Config], `--${flag}`).toEqual(value);
      expect(load({ env })[key as keyof Config], envName(flag)).toEqual(value);
      expect(load({ configFile: configFile(yaml) })[key as keyof Config], key).toEqual(value);
    }
  });

  it('an empty env variable leaves an optional option absent; an empty flag is refused', () => {
    expect('natsToken' in load({ env: { TRIBUTARY_NATS_TOKEN: '' } })).toBe(false);
    expect(failure({ flags: { 'nats-token': ' ' } }).problems).toEqual([
      { field: '--nats-token', message: 'must not be empty' },
    ]);
  });

  it.each([
    ['nats://127.0.0.1:4222', 'nats://127.0.0.1:4222'],
    ['nats://a:4222,nats://b:4222', 'nats://a:4222,nats://b:4222'],
    [' nats://a:4222 , tls://b:4443 ', 'nats://a:4222,tls://b:4443'],
    ['nats://user:pw@a:4222', 'nats://user:pw@a:4222'],
    ['demo.nats.io', 'demo.nats.io'],
    ['127.0.0.1:4222', '127.0.0.1:4222'],
    ['[::1]:4222', '[::1]:4222'],
    ['nats://[::1]:4222', 'nats://[::1]:4222'],
  ])('nats-url accepts %j', (text, url) => {
    expect(load({ flags: { 'nats-url': text } }).natsUrl).toBe(url);
  });

  it.each([
    ['', 'must not be empty'],
    ['nats://a:4222,,nats://b:4222', 'server list has an empty entry'],
    ['nats://a:4222,', 'server list has an empty entry'],
    ['http://a:4222', 'server list "http://a:4222": use nats:// or tls://'],
    ['nats://a b', 'server list "nats://a b" is not a URL'],
    ['a:99999', 'server list "a:99999" is neither a nats:// URL nor host:port'],
    ['a/b', 'server list "a/b" is neither a nats:// URL nor host:port'],
  ])('nats-url refuses %j', (text, message) => {
    expect(failure({ flags: { 'nats-url': text } }).problems).toEqual([
      { field: '--nats-url', message },
    ]);
  });

  it('nats-url keeps passwords out of its messages', () => {
    const e = failure({ env: { TRIBUTARY_NATS_URL: 'http://bob:hunter2@a:4222' } });
    expect(e.message).not.toContain('hunter2');
    expect(e.problems).toEqual([
      {
        field: 'TRIBUTARY_NATS_URL',
        message: 'server list "http://***@a:4222": use nats:// or tls://',
      },
    ]);
  });

  it.each([
    ['true', true],
    ['TRUE', true],
    ['yes', true],
    ['on', true],
    ['1', true],
    ['false', false],
    ['No', false],
    ['off', false],
    ['0', false],
  ])('nats-tls %j is %s', (text, value) => {
    expect(load({ env: { TRIBUTARY_NATS_TLS: text } }).natsTls).toBe(value);
  });

  it('nats-tls takes YAML booleans and refuses other words and values', () => {
    expect(load({ configFile: configFile('natsTls: true\n') }).natsTls).toBe(true);
    expect(load({ configFile: configFile('natsTls: false\n') }).natsTls).toBe(false);
    expect(load({ configFile: configFile('natsTls: 1\n') }).natsTls).toBe(true);
    expect(failure({ flags: { 'nats-tls': 'maybe' } }).problems).toEqual([
      { field: '--nats-tls', message: '"maybe" is not true or false (also yes/no, on/off, 1/0)' },
    ]);
    expect(failure({ configFile: configFile('natsTls: [true]\n') }).problems).toEqual([
      { field: 'config file: natsTls', message: 'must be true or false' },
    ]);
    // Other options still refuse YAML booleans.
    expect(failure({ configFile: configFile('natsUser: true\n') }).problems[0]).toEqual({
      field: 'config file: natsUser',
      message: 'must be a string or a number',
    });
  });

  it.each(['a.b', 'a b', 'a*', '', 'x'.repeat(33), 'tribu>'])('nats-prefix refuses %j', (text) => {
    expect(failure({ flags: { 'nats-prefix': text } }).problems).toEqual([
      { field: '--nats-prefix', message: `"${text}" is not 1 to 32 letters, digits, "-" or "_"` },
    ]);
  });

  it('nats-replicas is 1 to 5', () => {
    expect(load({ flags: { 'nats-replicas': '5' } }).natsReplicas).toBe(5);
    for (const bad of ['0', '6', '2.5', 'three']) {
      expect(failure({ flags: { 'nats-replicas': bad } }).problems).toEqual([
        { field: '--nats-replicas', message: `"${bad}" is not a whole number between 1 and 5` },
      ]);
    }
    // The other counts keep their own limit.
    expect(load({ flags: { 'trigger-concurrency': '6' } }).triggerConcurrency).toBe(6);
  });

  it('nats-max-bytes accepts 0 (no limit) and sizes from 1KiB', () => {
    expect(load({ flags: { 'nats-max-bytes': '0' } }).natsMaxBytes).toBe(0);
    expect(load({ flags: { 'nats-max-bytes': '2GiB' } }).natsMaxBytes).toBe(2 * 1024 ** 3);
    expect(failure({ flags: { 'nats-max-bytes': '100' } }).problems).toEqual([
      {
        field: '--nats-max-bytes',
        message: '"100" is not a size of at least 1KiB (or 0) (e.g. 1048576, 512KiB, 1MiB)',
      },
    ]);
  });

  it('kafka options: host:port lists, SASL mechanisms, and SASL settings that come together', () => {
    expect(problemFields({ flags: { 'kafka-brokers': 'k1' } })).toEqual(['--kafka-brokers']);
    expect(problemFields({ flags: { 'kafka-topic-template': 'events-{broker}' } })).toEqual([
      '--kafka-topic-template',
    ]);
    expect(problemFields({ flags: { 'kafka-topic-config': 'retention' } })).toEqual([
      '--kafka-topic-config',
    ]);
    expect(problemFields({ flags: { 'kafka-brokers': 'k1:99999' } })).toEqual(['--kafka-brokers']);
    expect(problemFields({ flags: { 'kafka-sasl-mechanism': 'gssapi' } })).toContain(
      '--kafka-sasl-mechanism',
    );
    expect(problemFields({ flags: { 'kafka-sasl-username': 'u' } })).toEqual([
      '--kafka-sasl-username',
    ]);
    expect(problemFields({ flags: { 'kafka-sasl-mechanism': 'plain' } })).toEqual([
      '--kafka-sasl-mechanism',
      '--kafka-sasl-mechanism',
    ]);
    expect(
      load({
        flags: {
          'kafka-sasl-mechanism': 'plain',
          'kafka-sasl-username': 'u',
          'kafka-sasl-password': 'p',
        },
      }).kafkaSaslMechanism,
    ).toBe('plain');
  });

  it('nats-duplicate-window is a positive duration', () => {
    expect(load({ flags: { 'nats-duplicate-window': 'PT5M' } }).natsDuplicateWindow).toBe(300_000);
    expect(problemFields({ flags: { 'nats-duplicate-window': '0s' } })).toEqual([
      '--nats-duplicate-window',
    ]);
  });
});

describe('nats options that go together', () => {
  it('a user needs a password, and a password a user', () => {
    expect(failure({ flags: { 'nats-user': 'alice' } }).problems).toEqual([
      {
        field: '--nats-user',
        message:
          'a NATS user needs a password: set --nats-password (TRIBUTARY_NATS_PASSWORD, natsPassword)',
      },
    ]);
    expect(failure({ env: { TRIBUTARY_NATS_PASSWORD: 'pw' } }).problems).toEqual([
      {
        field: 'TRIBUTARY_NATS_PASSWORD',
        message: 'a NATS password needs a user: set --nats-user (TRIBUTARY_NATS_USER, natsUser)',
      },
    ]);
    // From different sources together is fine.
    const config = load({
      flags: { 'nats-user': 'alice' },
      configFile: configFile('natsPassword: pw\n'),
    });
    expect(config).toMatchObject({ natsUser: 'alice', natsPassword: 'pw' });
  });

  it('a client certificate needs its key, and a key its certificate', () => {
    expect(failure({ configFile: configFile('natsTlsCert: c.pem\n') }).problems).toEqual([
      {
        field: 'config file: natsTlsCert',
        message:
          'a TLS client certificate needs its key: set --nats-tls-key (TRIBUTARY_NATS_TLS_KEY, natsTlsKey)',
      },
    ]);
    expect(problemFields({ flags: { 'nats-tls-key': 'k.pem' } })).toEqual(['--nats-tls-key']);
    expect(
      load({ flags: { 'nats-tls-cert': 'c.pem' }, env: { TRIBUTARY_NATS_TLS_KEY: 'k.pem' } }),
    ).toMatchObject({ natsTlsCert: 'c.pem', natsTlsKey: 'k.pem' });
  });

  it('a CA file alone is fine (a server certificate from a private CA, no client certificate)', () => {
    expect(load({ flags: { 'nats-tls-ca': 'ca.pem' } }).natsTlsCa).toBe('ca.pem');
  });

  it('refuses more than one way to authenticate, naming each field', () => {
    const e = failure({
      flags: { 'nats-user': 'alice', 'nats-password': 'pw' },
      env: { TRIBUTARY_NATS_TOKEN: 'tok' },
      configFile: configFile('natsCredsFile: u.creds\n'),
    });
    expect(e.problems).toEqual([
      {
        field: '--nats-user, TRIBUTARY_NATS_TOKEN, config file: natsCredsFile',
        message:
          'choose one NATS authentication: a user and password, a token, an NKey seed file or a credentials file',
      },
    ]);
    expect(problemFields({ flags: { 'nats-token': 't', 'nats-nkey-file': 'u.nk' } })).toEqual([
      '--nats-token, --nats-nkey-file',
    ]);
    expect(
      problemFields({ env: { TRIBUTARY_NATS_NKEY_FILE: 'u.nk', TRIBUTARY_NATS_CREDS_FILE: 'c' } }),
    ).toEqual(['TRIBUTARY_NATS_NKEY_FILE, TRIBUTARY_NATS_CREDS_FILE']);
  });

  it('each single way to authenticate is accepted, with TLS on top', () => {
    for (const flags of [
      { 'nats-user': 'a', 'nats-password': 'p' },
      { 'nats-token': 't' },
      { 'nats-nkey-file': 'u.nk' },
      { 'nats-creds-file': 'u.creds' },
    ]) {
      expect(() =>
        load({ flags: { ...flags, 'nats-tls-cert': 'c.pem', 'nats-tls-key': 'k.pem' } }),
      ).not.toThrow();
    }
  });

  it('reports the cross-checks along with the other problems', () => {
    const e = failure({ flags: { port: 'x', 'nats-user': 'alice', 'nats-tls-cert': 'c.pem' } });
    expect(e.problems.map((p) => p.field)).toEqual(['--port', '--nats-user', '--nats-tls-cert']);
  });

  it('with the nats backend, the duplicate window may not be longer than the retention', () => {
    expect(failure({ flags: { backend: 'nats', retention: '1m' } }).problems).toEqual([
      {
        field: '--nats-duplicate-window (default), --retention',
        message: 'the NATS duplicate window must not be longer than the retention',
      },
    ]);
    expect(
      problemFields({
        env: { TRIBUTARY_BACKEND: 'nats', TRIBUTARY_NATS_DUPLICATE_WINDOW: '2d' },
      }),
    ).toEqual(['TRIBUTARY_NATS_DUPLICATE_WINDOW, --retention (default)']);
    expect(
      load({ flags: { backend: 'nats', retention: '1m', 'nats-duplicate-window': '1m' } }),
    ).toMatchObject({ retention: 60_000, natsDuplicateWindow: 60_000 });
    // The embedded backend has no duplicate window: a short retention stays valid there.
    expect(load({ flags: { retention: '1m' } }).retention).toBe(60_000);
  });
});

describe('envName', () => {
  it.each([
    ['port', 'TRIBUTARY_PORT'],
    ['data-dir', 'TRIBUTARY_DATA_DIR'],
    ['max-event-size', 'TRIBUTARY_MAX_EVENT_SIZE'],
    ['config', 'TRIBUTARY_CONFIG'],
  ])('%s -> %s', (flag, env) => {
    expect(envName(flag)).toBe(env);
  });

  it('every option has a distinct flag, env variable and key', () => {
    const flags = OPTIONS.map((o) => o.flag);
    expect(new Set(flags).size).toBe(OPTIONS.length);
    expect(new Set(flags.map(envName)).size).toBe(OPTIONS.length);
    expect(new Set(OPTIONS.map((o) => o.key)).size).toBe(OPTIONS.length);
  });
});
