import { describe, expect, it } from 'vitest';
import type { FieldProblem } from '../../src/core/errors.js';
import {
  RESERVED_NAMESPACES,
  validateBroker,
  validateDeliverySpec,
  validateDestination,
  validateMetadata,
  validateName,
  validateNamespace,
  validateSource,
} from '../../src/core/resources/validate.js';

const fields = (problems: readonly FieldProblem[]): string[] => problems.map((p) => p.field);

describe('validateName', () => {
  it.each(['a', 'default', 'my-broker', 'a1', '1a', '0', 'a-b-c', 'x'.repeat(63)])(
    '%j is a valid name',
    (name) => {
      expect(validateName(name, 'metadata.name')).toEqual([]);
    },
  );

  it.each([
    ['', 'must not be empty'],
    ['My-Broker', 'DNS-1123'],
    ['-a', 'DNS-1123'],
    ['a-', 'DNS-1123'],
    ['a_b', 'DNS-1123'],
    ['a.b', 'DNS-1123'],
    ['a b', 'DNS-1123'],
    ['ñ', 'DNS-1123'],
    ['x'.repeat(64), 'at most 63 characters'],
  ])('%j is refused (%s)', (name, message) => {
    const problems = validateName(name, 'spec.broker');
    expect(fields(problems)).toEqual(['spec.broker']);
    expect(problems[0]?.message).toContain(message);
  });

  it('reports both length and syntax problems', () => {
    const problems = validateName(`${'x'.repeat(64)}-`, 'metadata.name');
    expect(problems).toHaveLength(2);
    expect(fields(problems)).toEqual(['metadata.name', 'metadata.name']);
  });

  it.each([
    [undefined, 'required'],
    [null, 'must be a string'],
    [42, 'must be a string'],
    [['a'], 'must be a string'],
  ])('%j is refused (%s)', (name, message) => {
    expect(validateName(name, 'n')).toEqual([
      { field: 'n', message: expect.stringContaining(message) as string },
    ]);
  });
});

describe('validateNamespace', () => {
  it.each(['default', 'team-a', 'v2', 'docs1'])('%j is a valid namespace', (ns) => {
    expect(validateNamespace(ns, 'metadata.namespace')).toEqual([]);
  });

  it.each(['v1', 'webhooks', 'docs', 'metrics', 'healthz', 'readyz', 'openapi.json', 'ui'])(
    '%j is reserved',
    (ns) => {
      expect(RESERVED_NAMESPACES.has(ns)).toBe(true);
      const problems = validateNamespace(ns, 'metadata.namespace');
      expect(problems).toEqual([
        {
          field: 'metadata.namespace',
          message: `"${ns}" is reserved and cannot be used as a namespace`,
        },
      ]);
    },
  );

  it.each(['Default', 'a_b', '', 'x'.repeat(64)])('%j is refused as a label', (ns) => {
    expect(fields(validateNamespace(ns, 'metadata.namespace'))).toEqual(['metadata.namespace']);
  });
});

describe('validateMetadata', () => {
  it('accepts name, namespace, labels, annotations and ignores server-owned fields', () => {
    expect(
      validateMetadata({
        name: 'b',
        namespace: 'default',
        labels: { 'app.kubernetes.io/name': 'shop' },
        annotations: { 'eventing.knative.dev/broker.class': 'MTChannelBasedBroker' },
        uid: '9f7c',
        generation: 3,
        creationTimestamp: '2026-01-01T00:00:00Z',
        resourceVersion: '123',
        managedFields: [{}],
      }),
    ).toEqual([]);
  });

  it.each<[string, unknown, string[]]>([
    ['missing', undefined, ['metadata']],
    ['not an object', 'x', ['metadata']],
    ['an array', [], ['metadata']],
    ['no name or namespace', {}, ['metadata.name', 'metadata.namespace']],
    ['bad name', { name: 'B', namespace: 'default' }, ['metadata.name']],
    ['reserved namespace', { name: 'b', namespace: 'metrics' }, ['metadata.namespace']],
    ['labels not a map', { name: 'b', namespace: 'n', labels: ['a'] }, ['metadata.labels']],
    [
      'label value not a string',
      { name: 'b', namespace: 'n', labels: { tier: 1, 'app.kubernetes.io/name': true } },
      ['metadata.labels.tier', 'metadata.labels[app.kubernetes.io/name]'],
    ],
    [
      'annotation value not a string',
      { name: 'b', namespace: 'n', annotations: { note: null } },
      ['metadata.annotations.note'],
    ],
    ['empty label key', { name: 'b', namespace: 'n', labels: { '': 'x' } }, ['metadata.labels']],
    ['typo', { name: 'b', namespace: 'n', lables: {} }, ['metadata.lables']],
  ])('%s', (_name, meta, expected) => {
    expect(fields(validateMetadata(meta))).toEqual(expected);
  });

  it('uses the given field prefix', () => {
    expect(fields(validateMetadata({ name: 'X', namespace: 'n' }, 'items[2].metadata'))).toEqual([
      'items[2].metadata.name',
    ]);
  });
});

describe('validateDestination', () => {
  describe('uri only (subscribers, dead-letter sinks)', () => {
    it.each([
      'http://svc.default.svc.cluster.local',
      'https://example.com/hook?x=1',
      'http://127.0.0.1:8080/',
      'http://[::1]:9000/path',
    ])('%s is accepted', (uri) => {
      expect(validateDestination({ uri }, 'spec.subscriber')).toEqual([]);
    });

    it.each<[string, unknown, string[]]>([
      ['missing', undefined, ['spec.subscriber']],
      ['not an object', 'http://x', ['spec.subscriber']],
      ['no uri', {}, ['spec.subscriber.uri']],
      ['relative uri', { uri: '/path' }, ['spec.subscriber.uri']],
      ['no scheme', { uri: 'svc.default:8080' }, ['spec.subscriber.uri']],
      ['ftp scheme', { uri: 'ftp://example.com/' }, ['spec.subscriber.uri']],
      ['empty uri', { uri: '' }, ['spec.subscriber.uri']],
      ['uri not a string', { uri: 8080 }, ['spec.subscriber.uri']],
      ['whitespace', { uri: ' http://x/' }, ['spec.subscriber.uri']],
      ['typo', { url: 'http://x/' }, ['spec.subscriber.uri', 'spec.subscriber.url']],
      ['bad CACerts', { uri: 'http://x/', CACerts: 1 }, ['spec.subscriber.CACerts']],
    ])('%s', (_name, dest, expected) => {
      expect(fields(validateDestination(dest, 'spec.subscriber'))).toEqual(expected);
    });

    it('refuses a ref with a message that says what to do', () => {
      expect(
        validateDestination(
          { ref: { apiVersion: 'serving.knative.dev/v1', kind: 'Service', name: 'svc' } },
          'spec.subscriber',
        ),
      ).toEqual([
        {
          field: 'spec.subscriber.ref',
          message: 'references to Kubernetes objects cannot be resolved; give spec.subscriber.uri',
        },
      ]);
    });
  });

  describe('with allowBrokerRef (source sinks)', () => {
    const opts = { allowBrokerRef: true };
    it.each<[string, unknown]>([
      ['broker ref', { ref: { kind: 'Broker', name: 'default' } }],
      [
        'full broker ref',
        {
          ref: {
            apiVersion: 'eventing.knative.dev/v1',
            kind: 'Broker',
            name: 'b',
            namespace: 'team-a',
          },
        },
      ],
      ['uri', { uri: 'https://example.com/' }],
    ])('%s is accepted', (_name, dest) => {
      expect(validateDestination(dest, 'spec.sink', opts)).toEqual([]);
    });

    it.each<[string, unknown, string[]]>([
      ['neither', {}, ['spec.sink']],
      ['both', { ref: { kind: 'Broker', name: 'b' }, uri: 'http://x/' }, ['spec.sink']],
      ['another kind', { ref: { kind: 'Service', name: 'svc' } }, ['spec.sink.ref.kind']],
      ['no kind', { ref: { name: 'b' } }, ['spec.sink.ref.kind']],
      ['no name', { ref: { kind: 'Broker' } }, ['spec.sink.ref.name']],
      ['bad name', { ref: { kind: 'Broker', name: 'B' } }, ['spec.sink.ref.name']],
      [
        'bad namespace',
        { ref: { kind: 'Broker', name: 'b', namespace: 'v1' } },
        ['spec.sink.ref.namespace'],
      ],
      ['ref not an object', { ref: 'default' }, ['spec.sink.ref']],
      [
        'unknown ref field',
        { ref: { kind: 'Broker', name: 'b', nmae: 'x' } },
        ['spec.sink.ref.nmae'],
      ],
      ['bad uri', { uri: 'nope' }, ['spec.sink.uri']],
    ])('%s', (_name, dest, expected) => {
      expect(fields(validateDestination(dest, 'spec.sink', opts))).toEqual(expected);
    });

    it('says which kinds can be referenced', () => {
      const [p] = validateDestination({ ref: { kind: 'Service', name: 's' } }, 'spec.sink', opts);
      expect(p?.message).toContain('only kind Broker can be referenced');
      expect(p?.message).toContain('spec.sink.uri');
    });
  });
});

describe('validateDeliverySpec', () => {
  it('accepts a full spec', () => {
    expect(
      validateDeliverySpec(
        {
          deadLetterSink: { uri: 'http://dls.example/' },
          retry: 10,
          backoffPolicy: 'exponential',
          backoffDelay: 'PT0.2S',
          timeout: 'PT30S',
          retryAfterMax: 'PT0S',
          format: 'binary',
        },
        'spec.delivery',
      ),
    ).toEqual([]);
  });

  it('accepts absence and an empty object', () => {
    expect(validateDeliverySpec(undefined, 'spec.delivery')).toEqual([]);
    expect(validateDeliverySpec({}, 'spec.delivery')).toEqual([]);
  });

  it.each<[string, unknown]>([
    ['retry', 0],
    ['retry', 3],
    ['retry', 2_147_483_647],
    ['backoffPolicy', 'linear'],
    ['backoffPolicy', 'exponential'],
    ['backoffDelay', 'PT0S'],
    ['backoffDelay', 'PT1M30S'],
    ['timeout', 'PT0.001S'],
    ['timeout', 'P1D'],
    ['retryAfterMax', 'PT0S'],
    ['retryAfterMax', 'PT2M'],
    ['format', 'json'],
    ['format', 'binary'],
  ])('%s = %j is valid', (field, value) => {
    expect(validateDeliverySpec({ [field]: value }, 'spec.delivery')).toEqual([]);
  });

  it.each<[string, unknown, string]>([
    ['retry', -1, 'spec.delivery.retry'],
    ['retry', 1.5, 'spec.delivery.retry'],
    ['retry', '3', 'spec.delivery.retry'],
    ['retry', 2_147_483_648, 'spec.delivery.retry'],
    ['backoffPolicy', 'Linear', 'spec.delivery.backoffPolicy'],
    ['backoffPolicy', 'fibonacci', 'spec.delivery.backoffPolicy'],
    ['backoffPolicy', 1, 'spec.delivery.backoffPolicy'],
    ['backoffDelay', '1s', 'spec.delivery.backoffDelay'],
    ['backoffDelay', 'P1M', 'spec.delivery.backoffDelay'],
    ['backoffDelay', 200, 'spec.delivery.backoffDelay'],
    ['timeout', 'PT0S', 'spec.delivery.timeout'],
    ['timeout', 'P0D', 'spec.delivery.timeout'],
    ['timeout', '-PT1S', 'spec.delivery.timeout'],
    ['timeout', '30s', 'spec.delivery.timeout'],
    ['retryAfterMax', '-PT1S', 'spec.delivery.retryAfterMax'],
    ['retryAfterMax', 'PT', 'spec.delivery.retryAfterMax'],
    ['format', 'structured', 'spec.delivery.format'],
    ['format', 'JSON', 'spec.delivery.format'],
    ['deadLetterSink', { uri: 'not a url' }, 'spec.delivery.deadLetterSink.uri'],
    ['deadLetterSink', {}, 'spec.delivery.deadLetterSink.uri'],
    ['deadLetterSink', 'http://x/', 'spec.delivery.deadLetterSink'],
    ['retries', 3, 'spec.delivery.retries'],
  ])('%s = %j is refused at %s', (field, value, path) => {
    expect(fields(validateDeliverySpec({ [field]: value }, 'spec.delivery'))).toEqual([path]);
  });

  it('gives precise messages', () => {
    expect(validateDeliverySpec({ timeout: 'PT0S' }, 'd')).toEqual([
      { field: 'd.timeout', message: 'must be greater than zero' },
    ]);
    expect(validateDeliverySpec({ retries: 3 }, 'd')).toEqual([
      { field: 'd.retries', message: 'unknown field' },
    ]);
    expect(validateDeliverySpec({ backoffPolicy: 'fibonacci' }, 'd')[0]?.message).toBe(
      'must be one of linear, exponential, got "fibonacci"',
    );
    expect(validateDeliverySpec({ backoffDelay: 'P1Y' }, 'd')[0]?.message).toContain(
      'years and months are not supported',
    );
  });

  it('refuses a dead-letter ref like a subscriber ref', () => {
    expect(
      validateDeliverySpec(
        { deadLetterSink: { ref: { kind: 'Broker', name: 'dls' } } },
        'spec.delivery',
      ),
    ).toEqual([
      {
        field: 'spec.delivery.deadLetterSink.ref',
        message:
          'references to Kubernetes objects cannot be resolved; give spec.delivery.deadLetterSink.uri',
      },
    ]);
  });

  it('reports every problem at once', () => {
    expect(
      fields(
        validateDeliverySpec(
          {
            retry: -1,
            backoffPolicy: 'x',
            backoffDelay: 'x',
            timeout: 'PT0S',
            format: 'x',
            extra: 1,
          },
          'spec.delivery',
        ),
      ),
    ).toEqual([
      'spec.delivery.retry',
      'spec.delivery.backoffPolicy',
      'spec.delivery.backoffDelay',
      'spec.delivery.timeout',
      'spec.delivery.format',
      'spec.delivery.extra',
    ]);
  });

  it.each([null, 'x', [], 3])('refuses %j as a spec', (value) => {
    expect(fields(validateDeliverySpec(value, 'spec.delivery'))).toEqual(['spec.delivery']);
  });
});

function broker(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    apiVersion: 'eventing.knative.dev/v1',
    kind: 'Broker',
    metadata: { name: 'default', namespace: 'default' },
    ...overrides,
  };
}

describe('validateBroker', () => {
  it.each<[string, Record<string, unknown>]>([
    ['no spec', broker()],
    ['empty spec', broker({ spec: {} })],
    [
      'a Knative manifest with class annotation, config, delivery and status',
      broker({
        metadata: {
          name: 'b',
          namespace: 'team-a',
          annotations: { 'eventing.knative.dev/broker.class': 'Kafka' },
          uid: 'u',
          generation: 2,
          creationTimestamp: '2026-01-01T00:00:00Z',
        },
        spec: {
          config: { apiVersion: 'v1', kind: 'ConfigMap', name: 'config-br-default-channel' },
          delivery: { retry: 10, backoffPolicy: 'exponential', backoffDelay: 'PT0.2S' },
        },
        status: { address: { url: 'http://x' }, conditions: [] },
      }),
    ],
    ['a retention', broker({ spec: { retention: 'P7D' } })],
  ])('accepts %s', (_name, resource) => {
    expect(validateBroker(resource)).toEqual([]);
  });

  it.each<[string, unknown, string[]]>([
    ['not an object', 'Broker', ['']],
    ['no apiVersion', broker({ apiVersion: undefined }), ['apiVersion']],
    ['apiVersion not a string', broker({ apiVersion: 1 }), ['apiVersion']],
    ['no kind', broker({ kind: undefined }), ['kind']],
    ['wrong kind', broker({ kind: 'Trigger' }), ['kind']],
    ['no metadata', broker({ metadata: undefined }), ['metadata']],
    ['spec not an object', broker({ spec: 'x' }), ['spec']],
    ['config not an object', broker({ spec: { config: 'cm' } }), ['spec.config']],
    ['bad delivery', broker({ spec: { delivery: { retry: -1 } } }), ['spec.delivery.retry']],
    ['unknown spec field', broker({ spec: { delivry: {} } }), ['spec.delivry']],
    ['retention not a duration', broker({ spec: { retention: '7 days' } }), ['spec.retention']],
    ['retention zero', broker({ spec: { retention: 'PT0S' } }), ['spec.retention']],
    ['unknown top-level field', broker({ sepc: {} }), ['sepc']],
    [
      'several problems',
      broker({
        kind: 'Brokr',
        metadata: { name: 'B', namespace: 'v1' },
        spec: { delivery: { format: 'x' } },
      }),
      ['kind', 'metadata.name', 'metadata.namespace', 'spec.delivery.format'],
    ],
  ])('refuses %s', (_name, resource, expected) => {
    expect(fields(validateBroker(resource))).toEqual(expected);
  });

  it('names the expected kind', () => {
    expect(validateBroker(broker({ kind: 'Trigger' }))).toEqual([
      { field: 'kind', message: 'must be "Broker", got "Trigger"' },
    ]);
  });
});

/** What an MnsSource needs besides its sink. */
const MNS = {
  accountId: '1234567890',
  region: 'cn-hangzhou',
  queue: 'orders',
  credentials: { accessKey: { value: 'id' }, secretKey: { env: 'MNS_SECRET' } },
};

function source(kind: string, spec: unknown): Record<string, unknown> {
  return {
    apiVersion: 'sources.knative.dev/v1alpha1',
    kind,
    metadata: { name: 'gh', namespace: 'default' },
    spec,
  };
}

describe('validateSource', () => {
  it('accepts a direct uri sink with a delivery spec', () => {
    expect(
      validateSource(
        source('MnsSource', {
          ...MNS,
          sink: { uri: 'http://svc.example/' },
          delivery: { retry: 3, backoffPolicy: 'linear', backoffDelay: 'PT1S' },
        }),
      ),
    ).toEqual([]);
  });

  it.each<[string, unknown, string[]]>([
    ['unknown kind', source('PingSource', { sink: { uri: 'http://x/' } }), ['kind']],
    ['no kind', source(undefined as unknown as string, { sink: { uri: 'http://x/' } }), ['kind']],
    ['no spec', source('GitHubSource', undefined), ['spec']],
    ['spec not an object', source('GitHubSource', []), ['spec']],
    ['no sink', source('MnsSource', MNS), ['spec.sink']],
    [
      'sink to a Service',
      source('MnsSource', { ...MNS, sink: { ref: { kind: 'Service', name: 's' } } }),
      ['spec.sink.ref.kind'],
    ],
    [
      'a GitHubSource without its repository, with an unknown field',
      source('GitHubSource', { sink: { uri: 'http://x/' }, anything: 1 }),
      ['spec.ownerAndRepository', 'spec.anything'],
    ],
    [
      'bad delivery',
      source('MnsSource', { ...MNS, sink: { uri: 'http://x/' }, delivery: { timeout: 'PT0S' } }),
      ['spec.delivery.timeout'],
    ],
  ])('refuses %s', (_name, resource, expected) => {
    expect(fields(validateSource(resource))).toEqual(expected);
  });

  it('lists the known kinds when the kind is unknown', () => {
    expect(
      validateSource(source('PingSource', { sink: { uri: 'http://x/' } }))[0]?.message,
    ).toContain(
      'GitHubSource, GitLabSource, ApiServerSource, KafkaSource, MnsSource, RocketMQSource',
    );
  });
});
