import { describe, expect, it } from 'vitest';
import {
  BROKER_CLASS_ANNOTATION,
  canonicalJson,
  prepareWrite,
  withRequestDefaults,
} from '../../src/core/resources/lifecycle.js';
import type { Resource } from '../../src/core/resources/types.js';

const CREATED = new Date('2030-01-02T03:04:05.678Z');
const LATER = new Date('2030-02-03T04:05:06.789Z');
const CLASS_FIELD = `metadata.annotations["${BROKER_CLASS_ANNOTATION}"]`;

let uidCounter = 0;
function nextUid(): string {
  return `uid-${++uidCounter}`;
}
function noUid(): string {
  throw new Error('no uid is needed on replace');
}

function trigger(overrides: Partial<Resource> = {}, spec: Record<string, unknown> = {}): Resource {
  return {
    apiVersion: 'eventing.knative.dev/v1',
    kind: 'Trigger',
    metadata: { name: 't1', namespace: 'ns' },
    spec: {
      broker: 'default',
      subscriber: { uri: 'http://sink.example/' },
      filters: [{ exact: { type: 'a' } }],
      ...spec,
    },
    ...overrides,
  };
}

function broker(
  annotations?: Record<string, string>,
  spec: Record<string, unknown> = {},
): Resource {
  return {
    apiVersion: 'eventing.knative.dev/v1',
    kind: 'Broker',
    metadata: {
      name: 'b1',
      namespace: 'ns',
      ...(annotations === undefined ? {} : { annotations }),
    },
    spec,
  };
}

/** Stores `incoming` as a new resource, as a create does. */
function created(incoming: Resource): Resource {
  const write = prepareWrite(incoming, undefined, CREATED, nextUid);
  expect(write.problems).toEqual([]);
  return write.resource;
}

describe('withRequestDefaults', () => {
  it('fills kind, apiVersion, namespace, name and an empty spec for a broker', () => {
    expect(withRequestDefaults({}, 'brokers', 'ns', 'b1')).toEqual({
      apiVersion: 'eventing.knative.dev/v1',
      kind: 'Broker',
      metadata: { namespace: 'ns', name: 'b1' },
      spec: {},
    });
  });

  it('fills kind and apiVersion for a trigger, and no spec', () => {
    const out = withRequestDefaults({ metadata: { labels: { a: 'b' } } }, 'triggers', 'ns', 't1');
    expect(out).toEqual({
      apiVersion: 'eventing.knative.dev/v1',
      kind: 'Trigger',
      metadata: { namespace: 'ns', name: 't1', labels: { a: 'b' } },
    });
    expect((out as Record<string, unknown>).spec).toBeUndefined();
  });

  it('gives a source no kind, hence no apiVersion, when the body has none', () => {
    const out = withRequestDefaults({ spec: { x: 1 } }, 'sources', 'ns', 's1') as Record<
      string,
      unknown
    >;
    expect(out.kind).toBeUndefined();
    expect(out.apiVersion).toBeUndefined();
    expect(out.metadata).toEqual({ namespace: 'ns', name: 's1' });
    expect(out.spec).toEqual({ x: 1 });
  });

  it.each([
    ['GitHubSource', 'sources.knative.dev/v1alpha1'],
    ['ApiServerSource', 'sources.knative.dev/v1'],
    ['KafkaSource', 'sources.knative.dev/v1beta1'],
    ['MnsSource', 'sources.tributary.dev/v1alpha1'],
  ])('a %s gets apiVersion %s', (kind, apiVersion) => {
    const out = withRequestDefaults({ kind }, 'sources', 'ns') as Record<string, unknown>;
    expect(out.kind).toBe(kind);
    expect(out.apiVersion).toBe(apiVersion);
  });

  it('an unknown kind gets no apiVersion', () => {
    const out = withRequestDefaults({ kind: 'Service' }, 'sources', 'ns') as Record<
      string,
      unknown
    >;
    expect(out.kind).toBe('Service');
    expect(out.apiVersion).toBeUndefined();
  });

  it("keeps the body's kind and apiVersion, even when they differ from the collection's", () => {
    const out = withRequestDefaults(
      { apiVersion: 'eventing.knative.dev/v1beta1', kind: 'Trigger' },
      'brokers',
      'ns',
      'b1',
    ) as Record<string, unknown>;
    expect(out.kind).toBe('Trigger');
    expect(out.apiVersion).toBe('eventing.knative.dev/v1beta1');
  });

  it('derives apiVersion from the body kind when only the kind is given', () => {
    const out = withRequestDefaults({ kind: 'Trigger' }, 'brokers', 'ns') as Record<
      string,
      unknown
    >;
    expect(out.apiVersion).toBe('eventing.knative.dev/v1');
  });

  it('does not overwrite a namespace or name the body gives', () => {
    const out = withRequestDefaults(
      { metadata: { namespace: 'theirs', name: 'mine' } },
      'triggers',
      'url-ns',
      'url-name',
    ) as Record<string, unknown>;
    expect(out.metadata).toEqual({ namespace: 'theirs', name: 'mine' });
  });

  it('fills only what is absent, and nothing when the URL gives nothing', () => {
    const partial = withRequestDefaults(
      { metadata: { name: 'mine' } },
      'triggers',
      'url-ns',
      'url-name',
    ) as Record<string, unknown>;
    expect(partial.metadata).toEqual({ name: 'mine', namespace: 'url-ns' });
    const none = withRequestDefaults({}, 'triggers', undefined) as Record<string, unknown>;
    expect(none.metadata).toEqual({});
  });

  it('does not modify the body it is given', () => {
    const body = { metadata: { labels: { a: 'b' } }, spec: { broker: 'x' } };
    const before = structuredClone(body);
    withRequestDefaults(body, 'triggers', 'ns', 't1');
    expect(body).toEqual(before);
  });

  it('leaves a metadata that is not an object for validation to report', () => {
    const out = withRequestDefaults({ metadata: 'oops' }, 'brokers', 'ns', 'b1') as Record<
      string,
      unknown
    >;
    expect(out.metadata).toBe('oops');
  });

  it('keeps a broker spec the body gives', () => {
    const spec = { delivery: { retry: 1 } };
    const out = withRequestDefaults({ spec }, 'brokers', 'ns', 'b1') as Record<string, unknown>;
    expect(out.spec).toEqual({ delivery: { retry: 1 } });
  });

  it.each([null, 'text', 42, true, [], [{ kind: 'Broker' }]])(
    'passes %j through unchanged',
    (body) => {
      expect(withRequestDefaults(body, 'brokers', 'ns', 'b1')).toBe(body);
    },
  );
});

describe('prepareWrite on create', () => {
  it('assigns uid, generation 1 and creationTimestamp; drops status and server metadata', () => {
    const incoming = trigger({
      metadata: {
        name: 't1',
        namespace: 'ns',
        uid: 'client-uid',
        generation: 7,
        creationTimestamp: '1999-01-01T00:00:00Z',
        resourceVersion: '42',
        managedFields: [],
        labels: { app: 'x' },
        annotations: { note: 'y' },
      } as Resource['metadata'],
      status: { conditions: [] },
    });
    const write = prepareWrite(incoming, undefined, CREATED, () => 'fresh-uid');
    expect(write.changed).toBe(true);
    expect(write.problems).toEqual([]);
    expect(write.resource).toEqual({
      apiVersion: 'eventing.knative.dev/v1',
      kind: 'Trigger',
      metadata: {
        name: 't1',
        namespace: 'ns',
        uid: 'fresh-uid',
        generation: 1,
        creationTimestamp: '2030-01-02T03:04:05.678Z',
        labels: { app: 'x' },
        annotations: { note: 'y' },
      },
      spec: incoming.spec,
    });
    expect('status' in write.resource).toBe(false);
    expect('resourceVersion' in write.resource.metadata).toBe(false);
  });

  it('calls the uid function once per create', () => {
    let calls = 0;
    const uid = (): string => `u${++calls}`;
    expect(prepareWrite(trigger(), undefined, CREATED, uid).resource.metadata.uid).toBe('u1');
    expect(prepareWrite(trigger(), undefined, CREATED, uid).resource.metadata.uid).toBe('u2');
    expect(calls).toBe(2);
  });

  it("gives a broker without delivery Knative's default delivery", () => {
    const write = prepareWrite(broker(), undefined, CREATED, nextUid);
    expect(write.resource.spec).toEqual({
      delivery: { retry: 10, backoffPolicy: 'exponential', backoffDelay: 'PT0.2S' },
    });
  });

  it("keeps a broker's own delivery as it is, without merging the default into it", () => {
    const write = prepareWrite(
      broker(undefined, { delivery: { retry: 1 }, config: { a: 1 } }),
      undefined,
      CREATED,
      nextUid,
    );
    expect(write.resource.spec).toEqual({ delivery: { retry: 1 }, config: { a: 1 } });
  });

  it('does not default the delivery of a trigger', () => {
    const write = prepareWrite(trigger(), undefined, CREATED, nextUid);
    expect(write.resource.spec.delivery).toBeUndefined();
  });

  it("does not modify the incoming spec or share the default's object", () => {
    const incoming = broker();
    const first = prepareWrite(incoming, undefined, CREATED, nextUid).resource;
    expect(incoming.spec).toEqual({});
    (first.spec.delivery as { retry: number }).retry = 99;
    const second = prepareWrite(broker(), undefined, CREATED, nextUid).resource;
    expect((second.spec.delivery as { retry: number }).retry).toBe(10);
  });

  it('omits labels and annotations when the request has none', () => {
    const meta = prepareWrite(trigger(), undefined, CREATED, nextUid).resource.metadata;
    expect(Object.keys(meta).sort()).toEqual([
      'creationTimestamp',
      'generation',
      'name',
      'namespace',
      'uid',
    ]);
  });
});

describe('prepareWrite on replace', () => {
  it('an identical resource is unchanged: same uid, generation and creationTimestamp', () => {
    const stored = created(trigger());
    const write = prepareWrite(trigger(), stored, LATER, noUid);
    expect(write.changed).toBe(false);
    expect(write.problems).toEqual([]);
    expect(write.resource).toEqual(stored);
  });

  it('a resource read back with status and server metadata applies as unchanged', () => {
    const stored = created(trigger());
    const readBack = {
      ...structuredClone(stored),
      metadata: { ...stored.metadata, resourceVersion: '9', uid: 'other', generation: 5 },
      status: { observedGeneration: 1 },
    } as Resource;
    const write = prepareWrite(readBack, stored, LATER, noUid);
    expect(write.changed).toBe(false);
    expect(write.resource).toEqual(stored);
  });

  it('key order does not make a change', () => {
    const stored = created(
      trigger(undefined, { subscriber: { uri: 'http://sink.example/', audience: 'a' } }),
    );
    const reordered = trigger(undefined, {
      subscriber: { audience: 'a', uri: 'http://sink.example/' },
    });
    reordered.spec = Object.fromEntries(Object.entries(reordered.spec).reverse());
    const write = prepareWrite(reordered, stored, LATER, noUid);
    expect(write.changed).toBe(false);
    expect(write.resource.metadata.generation).toBe(1);
  });

  it('a spec change bumps the generation by one and keeps uid and creationTimestamp', () => {
    const stored = created(trigger());
    const first = prepareWrite(
      trigger(undefined, { filters: [{ exact: { type: 'b' } }] }),
      stored,
      LATER,
      noUid,
    );
    expect(first.changed).toBe(true);
    expect(first.problems).toEqual([]);
    expect(first.resource.metadata).toEqual({
      name: 't1',
      namespace: 'ns',
      uid: stored.metadata.uid,
      generation: 2,
      creationTimestamp: '2030-01-02T03:04:05.678Z',
    });
    const second = prepareWrite(
      trigger(undefined, { filters: [{ exact: { type: 'c' } }] }),
      first.resource,
      LATER,
      noUid,
    );
    expect(second.resource.metadata.generation).toBe(3);
  });

  it('an existing resource without a generation counts as generation 1', () => {
    const stored = created(trigger());
    delete stored.metadata.generation;
    const write = prepareWrite(
      trigger(undefined, { broker: 'default', x: 1 }),
      stored,
      LATER,
      noUid,
    );
    expect(write.resource.metadata.generation).toBe(2);
    const same = prepareWrite(trigger(), stored, LATER, noUid);
    expect(same.resource.metadata.generation).toBe(1);
  });

  it('a label change is a change without a generation bump', () => {
    const stored = created(trigger());
    const incoming = trigger();
    incoming.metadata.labels = { team: 'a' };
    const write = prepareWrite(incoming, stored, LATER, noUid);
    expect(write.changed).toBe(true);
    expect(write.resource.metadata.generation).toBe(1);
    expect(write.resource.metadata.labels).toEqual({ team: 'a' });
  });

  it('an annotation change is a change without a generation bump', () => {
    const stored = created(trigger());
    const incoming = trigger();
    incoming.metadata.annotations = { note: 'x' };
    const write = prepareWrite(incoming, stored, LATER, noUid);
    expect(write.changed).toBe(true);
    expect(write.resource.metadata.generation).toBe(1);
  });

  it('removing all labels is a change; an empty label map equals none', () => {
    const stored = created({
      ...trigger(),
      metadata: { name: 't1', namespace: 'ns', labels: { a: 'b' } },
    });
    expect(prepareWrite(trigger(), stored, LATER, noUid).changed).toBe(true);
    const bare = created(trigger());
    const empty = trigger();
    empty.metadata.labels = {};
    expect(prepareWrite(empty, bare, LATER, noUid).changed).toBe(false);
  });

  it('an apiVersion change is a change without a generation bump', () => {
    const stored = created(trigger());
    const write = prepareWrite(
      trigger({ apiVersion: 'eventing.knative.dev/v1beta1' }),
      stored,
      LATER,
      noUid,
    );
    expect(write.changed).toBe(true);
    expect(write.resource.apiVersion).toBe('eventing.knative.dev/v1beta1');
    expect(write.resource.metadata.generation).toBe(1);
  });

  it("a trigger's spec.broker is immutable", () => {
    const stored = created(trigger());
    const write = prepareWrite(trigger(undefined, { broker: 'other' }), stored, LATER, noUid);
    expect(write.problems).toEqual([
      { field: 'spec.broker', message: 'immutable: a trigger cannot move to another broker' },
    ]);
  });

  it('the kind is immutable', () => {
    const source: Resource = {
      apiVersion: 'sources.knative.dev/v1alpha1',
      kind: 'GitHubSource',
      metadata: { name: 's1', namespace: 'ns' },
      spec: { sink: { uri: 'http://x/' } },
    };
    const stored = created(source);
    const write = prepareWrite({ ...source, kind: 'GitLabSource' }, stored, LATER, noUid);
    expect(write.problems).toEqual([
      {
        field: 'kind',
        message: 'immutable: the resource is a GitHubSource; delete it first to change its kind',
      },
    ]);
  });

  it('a broker re-applied without delivery keeps the defaulted one and is unchanged', () => {
    const stored = created(broker());
    const write = prepareWrite(broker(), stored, LATER, noUid);
    expect(write.changed).toBe(false);
    expect(write.resource.metadata.generation).toBe(1);
    expect(write.resource.spec.delivery).toEqual({
      retry: 10,
      backoffPolicy: 'exponential',
      backoffDelay: 'PT0.2S',
    });
  });

  it("a broker's class annotation cannot change", () => {
    const stored = created(broker({ [BROKER_CLASS_ANNOTATION]: 'MTChannelBasedBroker' }));
    const write = prepareWrite(
      broker({ [BROKER_CLASS_ANNOTATION]: 'Kafka' }),
      stored,
      LATER,
      noUid,
    );
    expect(write.problems).toEqual([
      { field: CLASS_FIELD, message: 'immutable: the broker class cannot change' },
    ]);
  });

  it('the same broker class is no problem and no change', () => {
    const stored = created(broker({ [BROKER_CLASS_ANNOTATION]: 'MTChannelBasedBroker' }));
    const write = prepareWrite(
      broker({ [BROKER_CLASS_ANNOTATION]: 'MTChannelBasedBroker' }),
      stored,
      LATER,
      noUid,
    );
    expect(write.problems).toEqual([]);
    expect(write.changed).toBe(false);
  });

  it('lets a broker created without a class get one later, once', () => {
    const stored = created(broker());
    const write = prepareWrite(
      broker({ [BROKER_CLASS_ANNOTATION]: 'MTChannelBasedBroker' }),
      stored,
      LATER,
      noUid,
    );
    expect(write.problems).toEqual([]);
    expect(write.changed).toBe(true);
    expect(write.resource.metadata.annotations).toEqual({
      [BROKER_CLASS_ANNOTATION]: 'MTChannelBasedBroker',
    });
  });

  it('keeps the class annotation when the new body omits it', () => {
    const stored = created(broker({ [BROKER_CLASS_ANNOTATION]: 'MTChannelBasedBroker' }));
    const bare = prepareWrite(broker(), stored, LATER, noUid);
    expect(bare.problems).toEqual([]);
    expect(bare.changed).toBe(false);
    expect(bare.resource.metadata.annotations).toEqual({
      [BROKER_CLASS_ANNOTATION]: 'MTChannelBasedBroker',
    });
    const other = prepareWrite(broker({ note: 'x' }), stored, LATER, noUid);
    expect(other.problems).toEqual([]);
    expect(other.changed).toBe(true);
    expect(other.resource.metadata.annotations).toEqual({
      note: 'x',
      [BROKER_CLASS_ANNOTATION]: 'MTChannelBasedBroker',
    });
  });

  it('reports every problem at once', () => {
    const stored = created(broker());
    const write = prepareWrite(trigger(), stored, LATER, noUid);
    expect(write.problems.map((p) => p.field)).toEqual(['kind', 'spec.broker']);
  });
});

describe('canonicalJson', () => {
  it('sorts keys at every depth', () => {
    expect(canonicalJson({ b: 1, a: { d: [{ y: 1, x: 2 }], c: 'z' } })).toBe(
      '{"a":{"c":"z","d":[{"x":2,"y":1}]},"b":1}',
    );
  });

  it('equal values in any key order give the same text', () => {
    const one = { spec: { broker: 'b', subscriber: { uri: 'u', audience: 'a' } }, kind: 'T' };
    const two = { kind: 'T', spec: { subscriber: { audience: 'a', uri: 'u' }, broker: 'b' } };
    expect(canonicalJson(one)).toBe(canonicalJson(two));
  });

  it('keeps array order and tells different values apart', () => {
    expect(canonicalJson([1, 2])).not.toBe(canonicalJson([2, 1]));
    expect(canonicalJson({ a: 1 })).not.toBe(canonicalJson({ a: '1' }));
    expect(canonicalJson({ a: 1 })).not.toBe(canonicalJson({ a: 1, b: 2 }));
  });

  it('drops undefined members, as JSON does', () => {
    expect(canonicalJson({ b: undefined, a: 1 })).toBe('{"a":1}');
    expect(canonicalJson('x')).toBe('"x"');
    expect(canonicalJson(null)).toBe('null');
  });
});
