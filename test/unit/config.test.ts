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
      shutdownTimeout: 30_000,
      triggerConcurrency: 100,
      maxTtl: 255,
      deliveryTimeout: 30_000,
      retention: 86_400_000,
      logLevel: 'info',
    });
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
  it('backend accepts embedded only', () => {
    expect(load({ flags: { backend: 'embedded' } }).backend).toBe('embedded');
    for (const bad of ['kafka', 'Embedded', '']) {
      expect(failure({ flags: { backend: bad } }).problems).toEqual([
        { field: '--backend', message: `"${bad}" is not a backend; choose one of embedded` },
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
        'shutdownTimeout: 1s',
        'triggerConcurrency: 2',
        'maxTtl: 9',
        'deliveryTimeout: 3s',
        'retention: 4s',
        'logLevel: trace',
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
      shutdownTimeout: 1000,
      triggerConcurrency: 2,
      maxTtl: 9,
      deliveryTimeout: 3000,
      retention: 4000,
      logLevel: 'trace',
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
      env: { TRIBUTARY_TRIGGER_CONCURRENCY: '0', TRIBUTARY_BACKEND: 'nats' },
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
      '  TRIBUTARY_BACKEND: "nats" is not a backend; choose one of embedded',
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
