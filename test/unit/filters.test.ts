import { describe, expect, it } from 'vitest';
import type { AttributeValue, CloudEvent } from '../../src/core/event.js';
import { compileSubscriptionsFilter, compileTriggerFilter } from '../../src/core/filters.js';
import type { SubscriptionsFilter, TriggerSpec } from '../../src/core/resources/types.js';

function event(extra: Record<string, AttributeValue> = {}): CloudEvent {
  return {
    attributes: {
      specversion: '1.0',
      id: 'e-1',
      source: 'https://github.com/acme/shop',
      type: 'dev.knative.source.github.push',
      ...extra,
    },
  };
}

type Spec = Pick<TriggerSpec, 'filter' | 'filters'>;
const matches = (spec: Spec, e: CloudEvent): boolean => compileTriggerFilter(spec)(e);
const one = (filter: SubscriptionsFilter, e: CloudEvent): boolean =>
  compileSubscriptionsFilter(filter)(e);

describe('no filter', () => {
  it.each<[string, Spec]>([
    ['no filter at all', {}],
    ['an empty filter', { filter: {} }],
    ['empty attributes', { filter: { attributes: {} } }],
    ['empty filters', { filters: [] }],
  ])('%s passes every event', (_name, spec) => {
    expect(matches(spec, event())).toBe(true);
    expect(matches(spec, { attributes: {} })).toBe(true);
  });
});

describe('legacy filter.attributes', () => {
  const spec = (attributes: Record<string, string>): Spec => ({ filter: { attributes } });

  it('matches when every attribute equals exactly (AND)', () => {
    const s = spec({
      type: 'dev.knative.source.github.push',
      source: 'https://github.com/acme/shop',
    });
    expect(matches(s, event())).toBe(true);
    expect(matches(s, event({ source: 'https://github.com/acme/other' }))).toBe(false);
    expect(matches(s, event({ type: 'dev.knative.source.github.issues' }))).toBe(false);
  });

  it('is case-sensitive and never a prefix match', () => {
    expect(matches(spec({ type: 'Dev.knative.source.github.push' }), event())).toBe(false);
    expect(matches(spec({ type: 'dev.knative.source.github' }), event())).toBe(false);
  });

  it('fails when the attribute is missing, whatever the value', () => {
    expect(matches(spec({ subject: 'x' }), event())).toBe(false);
    expect(matches(spec({ subject: '' }), event())).toBe(false);
  });

  it('"" means present and non-empty', () => {
    expect(matches(spec({ subject: '' }), event({ subject: 'anything' }))).toBe(true);
    expect(matches(spec({ subject: '' }), event({ subject: '' }))).toBe(false);
  });

  it('matches extensions like any other attribute', () => {
    expect(matches(spec({ myext: 'v' }), event({ myext: 'v' }))).toBe(true);
    expect(matches(spec({ myext: 'v' }), event({ myext: 'w' }))).toBe(false);
  });

  it('compares number and boolean values as strings', () => {
    expect(matches(spec({ count: '42' }), event({ count: 42 }))).toBe(true);
    expect(matches(spec({ count: '42.0' }), event({ count: 42 }))).toBe(false);
    expect(matches(spec({ flag: 'true' }), event({ flag: true }))).toBe(true);
    expect(matches(spec({ flag: 'false' }), event({ flag: true }))).toBe(false);
    expect(matches(spec({ zero: '' }), event({ zero: 0 }))).toBe(true);
  });

  it('does not see inherited Object.prototype properties as attributes', () => {
    expect(matches(spec({ constructor: '' }), event())).toBe(false);
    expect(matches(spec({ constructor: 'c' }), event({ constructor: 'c' }))).toBe(true);
  });
});

describe('dialects', () => {
  it('exact: every attribute present and equal', () => {
    expect(one({ exact: { type: 'dev.knative.source.github.push' } }, event())).toBe(true);
    expect(one({ exact: { type: 'dev.knative.source.github' } }, event())).toBe(false);
    expect(one({ exact: { type: 'DEV.knative.source.github.push' } }, event())).toBe(false);
    const two = { exact: { type: 'dev.knative.source.github.push', subject: 's' } };
    expect(one(two, event({ subject: 's' }))).toBe(true);
    expect(one(two, event({ subject: 't' }))).toBe(false);
    expect(one(two, event())).toBe(false);
  });

  it('prefix: every attribute present and starting with the value', () => {
    expect(one({ prefix: { type: 'dev.knative.source.' } }, event())).toBe(true);
    expect(one({ prefix: { type: 'dev.knative.source.github.push' } }, event())).toBe(true);
    expect(one({ prefix: { type: 'dev.knative.sources.' } }, event())).toBe(false);
    expect(one({ prefix: { type: 'dev.', source: 'https://' } }, event())).toBe(true);
    expect(one({ prefix: { type: 'dev.', source: 'http://' } }, event())).toBe(false);
  });

  it('suffix: every attribute present and ending with the value', () => {
    expect(one({ suffix: { type: '.push' } }, event())).toBe(true);
    expect(one({ suffix: { type: '.issues' } }, event())).toBe(false);
    expect(one({ suffix: { type: '.push', source: '/shop' } }, event())).toBe(true);
    expect(one({ suffix: { type: '.push', source: '/cart' } }, event())).toBe(false);
  });

  it.each<[string, SubscriptionsFilter]>([
    ['exact', { exact: { subject: 'x' } }],
    ['prefix', { prefix: { subject: 'x' } }],
    ['suffix', { suffix: { subject: 'x' } }],
  ])('%s fails when the attribute is missing', (_name, filter) => {
    expect(one(filter, event())).toBe(false);
    expect(one(filter, event({ subject: 'x' }))).toBe(true);
  });

  it('exact/prefix/suffix compare number and boolean values as strings', () => {
    expect(one({ exact: { count: '42' } }, event({ count: 42 }))).toBe(true);
    expect(one({ prefix: { count: '4' } }, event({ count: 42 }))).toBe(true);
    expect(one({ suffix: { count: '2' } }, event({ count: 42 }))).toBe(true);
    expect(one({ exact: { flag: 'true' } }, event({ flag: true }))).toBe(true);
    expect(one({ exact: { flag: 'true' } }, event({ flag: false }))).toBe(false);
  });

  it('all: every nested filter must match', () => {
    const f = { all: [{ prefix: { type: 'dev.' } }, { suffix: { type: '.push' } }] };
    expect(one(f, event())).toBe(true);
    expect(one(f, event({ type: 'dev.x.issues' }))).toBe(false);
    expect(one(f, event({ type: 'com.x.push' }))).toBe(false);
  });

  it('any: at least one nested filter must match', () => {
    const f = { any: [{ exact: { subject: 'a' } }, { exact: { subject: 'b' } }] };
    expect(one(f, event({ subject: 'a' }))).toBe(true);
    expect(one(f, event({ subject: 'b' }))).toBe(true);
    expect(one(f, event({ subject: 'c' }))).toBe(false);
    expect(one(f, event())).toBe(false);
  });

  it('not: negates the nested filter, so a missing attribute passes not(exact)', () => {
    const f = { not: { exact: { subject: 'a' } } };
    expect(one(f, event({ subject: 'a' }))).toBe(false);
    expect(one(f, event({ subject: 'b' }))).toBe(true);
    expect(one(f, event())).toBe(true);
  });

  it('nests any, all and not', () => {
    // (type ends with .push AND NOT subject = main) OR source starts with https://gitlab.com/
    const f: SubscriptionsFilter = {
      any: [
        { all: [{ suffix: { type: '.push' } }, { not: { exact: { subject: 'main' } } }] },
        { prefix: { source: 'https://gitlab.com/' } },
      ],
    };
    expect(one(f, event({ subject: 'feature' }))).toBe(true);
    expect(one(f, event({ subject: 'main' }))).toBe(false);
    expect(one(f, event({ subject: 'main', source: 'https://gitlab.com/acme' }))).toBe(true);
    expect(one(f, event({ type: 'x.issues', subject: 'feature' }))).toBe(false);
    expect(one(f, event({ type: 'x.issues', source: 'https://gitlab.com/acme' }))).toBe(true);
  });

  it('compiles cesql: only a clean Boolean TRUE passes', () => {
    const f = compileSubscriptionsFilter({ cesql: "type = 'x' AND INT(count) > 1" });
    expect(f(event({ type: 'x', count: '2' }))).toBe(true);
    expect(f(event({ type: 'x', count: '1' }))).toBe(false);
    expect(f(event({ type: 'x', count: 'many' }))).toBe(false); // cast error
    expect(f(event({ type: 'x' }))).toBe(false); // missing attribute
    expect(compileSubscriptionsFilter({ cesql: 'type' })(event({ type: 'true' }))).toBe(false);
  });

  it('refuses a dialect-less filter at compile time', () => {
    expect(() => compileSubscriptionsFilter({})).toThrow('no dialect');
  });
});

describe('trigger filters combined', () => {
  it('top-level filters are ANDed', () => {
    const spec: Spec = { filters: [{ prefix: { type: 'dev.' } }, { exact: { subject: 's' } }] };
    expect(matches(spec, event({ subject: 's' }))).toBe(true);
    expect(matches(spec, event({ subject: 't' }))).toBe(false);
    expect(matches(spec, event({ subject: 's', type: 'com.x' }))).toBe(false);
  });

  it('a non-empty filters list overrides filter.attributes', () => {
    const spec: Spec = {
      filter: { attributes: { type: 'never.matches' } },
      filters: [{ exact: { type: 'dev.knative.source.github.push' } }],
    };
    expect(matches(spec, event())).toBe(true);
    expect(matches(spec, event({ type: 'never.matches' }))).toBe(false);
  });

  it('an empty filters list keeps filter.attributes', () => {
    const spec: Spec = { filter: { attributes: { type: 'only.this' } }, filters: [] };
    expect(matches(spec, event())).toBe(false);
    expect(matches(spec, event({ type: 'only.this' }))).toBe(true);
  });

  it('compiles once and evaluates many events with stable results', () => {
    const f = compileTriggerFilter({ filters: [{ suffix: { type: '.push' } }] });
    const results = ['a.push', 'b.pull', 'c.push'].map((type) => f(event({ type })));
    expect(results).toEqual([true, false, true]);
  });
});
