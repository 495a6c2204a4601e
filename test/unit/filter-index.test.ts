import { describe, expect, it } from 'vitest';
import type { CloudEvent } from '../../src/core/event.js';
import { FilterIndex } from '../../src/core/filter-index.js';
import { compileTriggerFilter, indexKeyOf } from '../../src/core/filters.js';
import type { TriggerSpec } from '../../src/core/resources/types.js';

type FilterSpec = Pick<TriggerSpec, 'filter' | 'filters'>;

const event = (attributes: Record<string, string>): CloudEvent => ({
  attributes: { specversion: '1.0', id: '1', source: '/s', type: 't', ...attributes },
});

describe('indexKeyOf', () => {
  it.each<[string, FilterSpec, ReturnType<typeof indexKeyOf>]>([
    ['no filter', {}, undefined],
    [
      'legacy type',
      { filter: { attributes: { type: 'a', subject: 'x' } } },
      { attribute: 'type', value: 'a', sufficient: false },
    ],
    [
      'legacy source',
      { filter: { attributes: { source: '/s' } } },
      { attribute: 'source', value: '/s', sufficient: true },
    ],
    [
      'legacy type preferred over source',
      { filter: { attributes: { source: '/s', type: 'a' } } },
      { attribute: 'type', value: 'a', sufficient: false },
    ],
    ['legacy "" is not exact', { filter: { attributes: { type: '' } } }, undefined],
    [
      'exact type',
      { filters: [{ exact: { type: 'a' } }] },
      { attribute: 'type', value: 'a', sufficient: true },
    ],
    [
      'exact in a later top-level filter',
      { filters: [{ prefix: { type: 'x' } }, { exact: { source: '/s' } }] },
      { attribute: 'source', value: '/s', sufficient: false },
    ],
    [
      'exact inside all',
      { filters: [{ all: [{ suffix: { type: 'z' } }, { all: [{ exact: { type: 'a' } }] }] }] },
      { attribute: 'type', value: 'a', sufficient: false },
    ],
    [
      'exact inside any is not required',
      { filters: [{ any: [{ exact: { type: 'a' } }] }] },
      undefined,
    ],
    [
      'exact inside not is not required',
      { filters: [{ not: { exact: { type: 'a' } } }] },
      undefined,
    ],
    ['prefix only', { filters: [{ prefix: { type: 'a' } }] }, undefined],
    ['exact on another attribute', { filters: [{ exact: { subject: 'a' } }] }, undefined],
    [
      'filters override the legacy key',
      { filter: { attributes: { type: 'a' } }, filters: [{ prefix: { type: 'b' } }] },
      undefined,
    ],
    [
      'empty filters keep the legacy key',
      { filter: { attributes: { type: 'a' } }, filters: [] },
      { attribute: 'type', value: 'a', sufficient: true },
    ],
  ])('%s', (_name, spec, key) => {
    expect(indexKeyOf(spec)).toEqual(key);
    expect(compileTriggerFilter(spec).indexKey).toEqual(key);
  });

  it('a filter with a key still evaluates the whole filter', () => {
    const filter = compileTriggerFilter({
      filters: [{ exact: { type: 'a' } }, { prefix: { subject: 'x' } }],
    });
    expect(filter(event({ type: 'a', subject: 'xy' }))).toBe(true);
    expect(filter(event({ type: 'a', subject: 'y' }))).toBe(false);
    expect(filter(event({ type: 'b', subject: 'xy' }))).toBe(false);
  });
});

describe('FilterIndex', () => {
  function build(specs: Record<string, FilterSpec>): FilterIndex<string> {
    const index = new FilterIndex<string>();
    for (const [name, spec] of Object.entries(specs)) index.set(name, compileTriggerFilter(spec));
    return index;
  }
  const candidates = (index: FilterIndex<string>, e: CloudEvent): string[] => {
    const seen: string[] = [];
    index.forEachCandidate(e, (item) => seen.push(item));
    return seen.sort();
  };
  const matches = (index: FilterIndex<string>, e: CloudEvent): string[] => {
    const seen: string[] = [];
    index.forEachMatch(e, (item) => seen.push(item));
    return seen.sort();
  };

  const specs: Record<string, FilterSpec> = {
    typeA: { filters: [{ exact: { type: 'a' } }] },
    typeA2: { filter: { attributes: { type: 'a', subject: 's1' } } },
    typeB: { filters: [{ exact: { type: 'b' } }] },
    sourceX: { filters: [{ exact: { source: '/x' } }] },
    prefix: { filters: [{ prefix: { type: 'a' } }] },
    all: {},
  };

  it('offers only the filters indexed under the event type or source, and the unindexed ones', () => {
    const index = build(specs);
    expect(candidates(index, event({ type: 'a', source: '/y' }))).toEqual([
      'all',
      'prefix',
      'typeA',
      'typeA2',
    ]);
    expect(candidates(index, event({ type: 'b', source: '/x' }))).toEqual([
      'all',
      'prefix',
      'sourceX',
      'typeB',
    ]);
    expect(candidates(index, event({ type: 'c', source: '/z' }))).toEqual(['all', 'prefix']);
  });

  it('evaluates the candidates', () => {
    const index = build(specs);
    expect(matches(index, event({ type: 'a', source: '/x', subject: 's2' }))).toEqual([
      'all',
      'prefix',
      'sourceX',
      'typeA',
    ]);
    expect(matches(index, event({ type: 'a', subject: 's1' }))).toEqual([
      'all',
      'prefix',
      'typeA',
      'typeA2',
    ]);
  });

  it('moves an item when its filter changes, and forgets a deleted one', () => {
    const index = build(specs);
    index.set('typeA', compileTriggerFilter({ filters: [{ exact: { type: 'b' } }] }));
    expect(candidates(index, event({ type: 'a' }))).toEqual(['all', 'prefix', 'typeA2']);
    expect(candidates(index, event({ type: 'b' }))).toEqual(['all', 'prefix', 'typeA', 'typeB']);
    index.delete('typeB');
    index.delete('all');
    index.delete('missing');
    expect(candidates(index, event({ type: 'b' }))).toEqual(['prefix', 'typeA']);
    expect(index.size).toBe(4);
  });

  it('with many indexed filters, offers an event only the ones under its type', () => {
    const index = new FilterIndex<number>();
    for (let i = 0; i < 10_000; i++)
      index.set(i, compileTriggerFilter({ filters: [{ exact: { type: `t${i}` } }] }));
    const seen: number[] = [];
    index.forEachCandidate(event({ type: 't4242' }), (i) => seen.push(i));
    expect(seen).toEqual([4242]);
  });
});
