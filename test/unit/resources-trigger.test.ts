import { describe, expect, it } from 'vitest';
import type { FieldProblem } from '../../src/core/errors.js';
import { isValidAttributeName, validateTrigger } from '../../src/core/resources/validate.js';

const fields = (problems: readonly FieldProblem[]): string[] => problems.map((p) => p.field);

function trigger(
  spec: Record<string, unknown> = {},
  top: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    apiVersion: 'eventing.knative.dev/v1',
    kind: 'Trigger',
    metadata: { name: 'on-push', namespace: 'default' },
    spec: { broker: 'default', subscriber: { uri: 'http://svc.example/' }, ...spec },
    ...top,
  };
}

const problemsOf = (spec: Record<string, unknown>): FieldProblem[] =>
  validateTrigger(trigger(spec));

describe('validateTrigger: the resource', () => {
  it('accepts a minimal trigger', () => {
    expect(validateTrigger(trigger())).toEqual([]);
  });

  it('accepts a Knative manifest read back with GET (server-owned metadata, status)', () => {
    expect(
      validateTrigger(
        trigger(
          {
            filter: { attributes: { type: 'dev.knative.source.github.push' } },
            delivery: { retry: 3, deadLetterSink: { uri: 'https://dls.example/' } },
          },
          {
            metadata: {
              name: 'on-push',
              namespace: 'default',
              uid: '2a7e',
              generation: 4,
              creationTimestamp: '2026-05-01T10:00:00Z',
              labels: { team: 'shop' },
            },
            status: {
              subscriberUri: 'http://svc.example/',
              conditions: [{ type: 'Ready', status: 'True' }],
            },
          },
        ),
      ),
    ).toEqual([]);
  });

  it.each<[string, unknown, string[]]>([
    ['not an object', null, ['']],
    ['wrong kind', trigger({}, { kind: 'Broker' }), ['kind']],
    ['no apiVersion', trigger({}, { apiVersion: undefined }), ['apiVersion']],
    ['no spec', trigger({}, { spec: undefined }), ['spec']],
    ['spec not an object', trigger({}, { spec: 'x' }), ['spec']],
    ['unknown top-level field', trigger({}, { specs: {} }), ['specs']],
    ['no namespace', trigger({}, { metadata: { name: 't' } }), ['metadata.namespace']],
  ])('refuses %s', (_name, resource, expected) => {
    expect(fields(validateTrigger(resource))).toEqual(expected);
  });
});

describe('validateTrigger: broker and subscriber', () => {
  it.each<[string, Record<string, unknown>, string[]]>([
    ['no broker', { broker: undefined }, ['spec.broker']],
    ['empty broker', { broker: '' }, ['spec.broker']],
    ['broker not a DNS label', { broker: 'My_Broker' }, ['spec.broker']],
    ['no subscriber', { subscriber: undefined }, ['spec.subscriber']],
    ['subscriber without uri', { subscriber: {} }, ['spec.subscriber.uri']],
    ['relative subscriber uri', { subscriber: { uri: '/hook' } }, ['spec.subscriber.uri']],
    ['non-http subscriber uri', { subscriber: { uri: 'mailto:a@b.c' } }, ['spec.subscriber.uri']],
    ['unknown spec field', { subscribr: {} }, ['spec.subscribr']],
  ])('refuses %s', (_name, spec, expected) => {
    expect(fields(problemsOf(spec))).toEqual(expected);
  });

  it('refuses spec.brokerRef and says to use spec.broker', () => {
    expect(
      problemsOf({ broker: undefined, brokerRef: { kind: 'Broker', name: 'b', namespace: 'x' } }),
    ).toEqual([{ field: 'spec.brokerRef', message: 'not supported, use spec.broker' }]);
    expect(fields(problemsOf({ broker: 'B', brokerRef: { name: 'b' } }))).toEqual([
      'spec.brokerRef',
      'spec.broker',
    ]);
  });

  it('refuses subscriber.ref and says to give a uri', () => {
    expect(
      problemsOf({
        subscriber: { ref: { apiVersion: 'serving.knative.dev/v1', kind: 'Service', name: 'svc' } },
      }),
    ).toEqual([
      {
        field: 'spec.subscriber.ref',
        message: 'references to Kubernetes objects cannot be resolved; give spec.subscriber.uri',
      },
    ]);
  });
});

describe('validateTrigger: filter.attributes', () => {
  const withAttributes = (attributes: unknown): FieldProblem[] =>
    problemsOf({ filter: { attributes } });

  it('accepts Knative context attribute names and a 20-character extension name', () => {
    const names = [
      'source',
      'id',
      'specversion',
      'type',
      'subject',
      'time',
      'datacontenttype',
      'dataschema',
    ];
    const extension = 'abcdefghij0123456789';
    expect(extension).toHaveLength(20);
    const attributes = Object.fromEntries([...names, extension].map((n) => [n, 'x']));
    expect(withAttributes(attributes)).toEqual([]);
    for (const name of [...names, extension]) expect(isValidAttributeName(name)).toBe(true);
  });

  it.each(['SOURCE', 'Type', 'a_b', 'a-b', 'a b', '1a', '123', 'ñ', 'aé', '', 'a.b'])(
    'refuses the attribute name %j at spec.filter.attributes',
    (name) => {
      expect(isValidAttributeName(name)).toBe(false);
      const problems = withAttributes({ [name]: 'x' });
      expect(fields(problems)).toEqual(['spec.filter.attributes']);
      expect(problems[0]?.message).toContain(`invalid attribute name "${name}"`);
    },
  );

  it('accepts "" as a value (present and non-empty)', () => {
    expect(withAttributes({ subject: '' })).toEqual([]);
  });

  it.each<[string, unknown, string[]]>([
    ['value not a string', { type: 1 }, ['spec.filter.attributes.type']],
    ['attributes not a map', ['type'], ['spec.filter.attributes']],
    ['two bad names', { A: 'x', b_c: 'y' }, ['spec.filter.attributes', 'spec.filter.attributes']],
  ])('refuses %s', (_name, attributes, expected) => {
    expect(fields(withAttributes(attributes))).toEqual(expected);
  });

  it('refuses a filter that is not an object and unknown filter fields', () => {
    expect(fields(problemsOf({ filter: 'type=x' }))).toEqual(['spec.filter']);
    expect(fields(problemsOf({ filter: { attribute: {} } }))).toEqual(['spec.filter.attribute']);
  });
});

describe('validateTrigger: filters dialects', () => {
  const withFilters = (filters: unknown): FieldProblem[] => problemsOf({ filters });

  it('accepts every supported dialect, nested', () => {
    expect(
      withFilters([
        { exact: { type: 'dev.knative.source.github.push' } },
        { prefix: { source: 'https://github.com/' } },
        { suffix: { subject: '.json', type: '.push' } },
        { any: [{ exact: { subject: 'a' } }, { not: { exact: { subject: 'b' } } }] },
        { all: [{ prefix: { type: 'dev.' } }] },
        { not: { all: [{ exact: { myext: 'x' } }] } },
      ]),
    ).toEqual([]);
    expect(withFilters([])).toEqual([]);
  });

  it("refuses several dialects in one filter object with Knative's message", () => {
    expect(withFilters([{ exact: { type: 'x' }, suffix: { source: 'y' } }])).toEqual([
      {
        field: 'spec.filters[0]',
        message: 'multiple dialects found, filters can have only one dialect set',
      },
    ]);
  });

  it('refuses a filter object without a dialect', () => {
    expect(withFilters([{ exact: { type: 'x' } }, {}])).toEqual([
      { field: 'spec.filters[1]', message: 'one dialect is required' },
    ]);
  });

  it('accepts a valid cesql expression and refuses an invalid one with its position', () => {
    expect(withFilters([{ all: [{ cesql: "type = 'x' AND source LIKE '/a%'" }] }])).toEqual([]);
    expect(withFilters([{ all: [{ cesql: "type = 'x' AND" }] }])).toEqual([
      {
        field: 'spec.filters[0].all[0].cesql',
        message: expect.stringMatching(/^invalid CESQL at position \d+: /),
      },
    ]);
    expect(fields(withFilters([{ cesql: '' }]))).toEqual(['spec.filters[0].cesql']);
    expect(fields(withFilters([{ cesql: 42 }]))).toEqual(['spec.filters[0].cesql']);
  });

  it('refuses an unknown dialect', () => {
    const problems = withFilters([{ sql: "type = 'x'" }]);
    expect(fields(problems)).toEqual(['spec.filters[0].sql']);
    expect(problems[0]?.message).toContain('unknown dialect');
  });

  it.each<[string, unknown, string[]]>([
    ['filters not a list', { exact: { type: 'x' } }, ['spec.filters']],
    ['filter not an object', ['type=x'], ['spec.filters[0]']],
    ['empty exact', [{ exact: {} }], ['spec.filters[0].exact']],
    ['empty prefix', [{ prefix: {} }], ['spec.filters[0].prefix']],
    ['empty suffix', [{ suffix: {} }], ['spec.filters[0].suffix']],
    ['exact not a map', [{ exact: 'type' }], ['spec.filters[0].exact']],
    ['empty exact value', [{ exact: { type: '' } }], ['spec.filters[0].exact.type']],
    ['empty prefix value', [{ prefix: { type: '' } }], ['spec.filters[0].prefix.type']],
    ['non-string suffix value', [{ suffix: { type: 3 } }], ['spec.filters[0].suffix.type']],
    ['bad attribute name in prefix', [{ prefix: { Type: 'x' } }], ['spec.filters[0].prefix']],
    ['empty attribute name in exact', [{ exact: { '': 'x' } }], ['spec.filters[0].exact']],
    ['empty all', [{ all: [] }], ['spec.filters[0].all']],
    ['empty any', [{ any: [] }], ['spec.filters[0].any']],
    ['all not a list', [{ all: { exact: { type: 'x' } } }], ['spec.filters[0].all']],
    ['not not an object', [{ not: [] }], ['spec.filters[0].not']],
    ['empty not', [{ not: {} }], ['spec.filters[0].not']],
    [
      'deeply nested problems',
      [
        { exact: { type: 'x' } },
        {
          all: [
            { exact: { type: '' } },
            { any: [{ prefix: { 'a-b': 'x' } }, { not: { suffix: {} } }] },
          ],
        },
      ],
      [
        'spec.filters[1].all[0].exact.type',
        'spec.filters[1].all[1].any[0].prefix',
        'spec.filters[1].all[1].any[1].not.suffix',
      ],
    ],
  ])('refuses %s', (_name, filters, expected) => {
    expect(fields(withFilters(filters))).toEqual(expected);
  });

  it('uses bracket paths for values under invalid attribute names', () => {
    expect(fields(withFilters([{ exact: { 'a-b': '' } }]))).toEqual([
      'spec.filters[0].exact',
      'spec.filters[0].exact[a-b]',
    ]);
  });

  it('reports empty all/any with a clear message', () => {
    expect(withFilters([{ any: [] }])).toEqual([
      { field: 'spec.filters[0].any', message: 'must contain at least one filter' },
    ]);
  });
});

describe('validateTrigger: every problem at once', () => {
  it('returns all problems with their paths, in document order', () => {
    const problems = validateTrigger(
      trigger(
        {
          broker: 'Default',
          filter: { attributes: { SOURCE: 'x' } },
          filters: [{ exact: { type: 'x' } }, { prefix: {} }, { exact: { a: 'x' }, any: [] }],
          subscriber: { uri: 'not-a-url' },
          delivery: {
            retry: -1,
            backoffDelay: '200ms',
            timeout: 'PT0S',
            format: 'xml',
            deadLetterSink: { uri: 'ftp://x/' },
          },
          replyTo: 'x',
        },
        { metadata: { name: 'Bad_Name', namespace: 'healthz' }, kind: 'Triggers' },
      ),
    );
    expect(fields(problems)).toEqual([
      'kind',
      'metadata.name',
      'metadata.namespace',
      'spec.broker',
      'spec.filter.attributes',
      'spec.filters[1].prefix',
      'spec.filters[2]',
      'spec.filters[2].any',
      'spec.subscriber.uri',
      'spec.delivery.deadLetterSink.uri',
      'spec.delivery.retry',
      'spec.delivery.backoffDelay',
      'spec.delivery.timeout',
      'spec.delivery.format',
      'spec.replyTo',
    ]);
    for (const p of problems) expect(p.message.length).toBeGreaterThan(0);
  });
});

describe('validateTrigger: ordering', () => {
  it('accepts delivery.ordering and the Knative annotation, ordered or unordered', () => {
    expect(validateTrigger(trigger({ delivery: { ordering: 'ordered' } }))).toEqual([]);
    expect(validateTrigger(trigger({ delivery: { ordering: 'unordered' } }))).toEqual([]);
    const annotated = trigger(
      {},
      {
        metadata: {
          name: 'on-push',
          namespace: 'default',
          annotations: { 'kafka.eventing.knative.dev/delivery.order': 'ordered' },
        },
      },
    );
    expect(validateTrigger(annotated)).toEqual([]);
  });

  it('refuses other values, naming the field', () => {
    expect(
      validateTrigger(trigger({ delivery: { ordering: 'fifo' } })).map((p) => p.field),
    ).toEqual(['spec.delivery.ordering']);
    const annotated = trigger(
      {},
      {
        metadata: {
          name: 'on-push',
          namespace: 'default',
          annotations: { 'kafka.eventing.knative.dev/delivery.order': 'random' },
        },
      },
    );
    expect(validateTrigger(annotated).map((p) => p.field)).toEqual([
      'metadata.annotations[kafka.eventing.knative.dev/delivery.order]',
    ]);
  });
});
