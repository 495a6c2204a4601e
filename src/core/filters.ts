/**
 * Trigger filters (reference/knative.md 1.3 and 1.4), compiled once when a trigger changes into a
 * closure that is evaluated per event. Compiling precomputes key and value arrays, so evaluating
 * does only the attribute lookups and string comparisons: no parsing and no allocation beyond what
 * `attributeString` needs to turn a number or boolean into its string form.
 */

import { cesqlMatches, compileCesql } from './cesql/index.js';
import { TributaryError } from './errors.js';
import { attributeString, type CloudEvent } from './event.js';
import type { SubscriptionsFilter, TriggerSpec } from './resources/types.js';

/**
 * An exact condition on `type` or `source` that every event passing a filter meets. Matchers index
 * filters by it (see filter-index.ts), so an event is only checked against the filters that can
 * match it, not against every trigger.
 */
export interface IndexKey {
  readonly attribute: 'type' | 'source';
  readonly value: string;
  /** The filter is this condition and nothing else: an event that meets it passes. */
  readonly sufficient: boolean;
}

/** A filter compiled once per trigger change, evaluated per event; `indexKey` when it has one. */
export type CompiledFilter = ((event: CloudEvent) => boolean) & { readonly indexKey?: IndexKey };

const PASS: CompiledFilter = () => true;

type MatchMode = 'legacy' | 'exact' | 'prefix' | 'suffix';

/**
 * Every listed attribute must be present and match; a missing attribute fails.
 * - legacy (`filter.attributes`): equal, or `""` = present and non-empty;
 * - exact: equal; prefix: startsWith; suffix: endsWith. Comparisons are case-sensitive.
 */
function compileAttributeMatch(
  map: Readonly<Record<string, string>>,
  mode: MatchMode,
): CompiledFilter {
  const names = Object.keys(map);
  const wanted = names.map((name) => map[name] ?? '');
  const n = names.length;
  if (n === 0) return PASS;

  switch (mode) {
    case 'legacy':
      return (event) => {
        for (let i = 0; i < n; i++) {
          const actual = attributeString(event, names[i]!);
          if (actual === undefined) return false;
          const expected = wanted[i]!;
          if (expected === '' ? actual === '' : actual !== expected) return false;
        }
        return true;
      };
    case 'exact':
      if (n === 1) {
        const name = names[0]!;
        const expected = wanted[0]!;
        return (event) => attributeString(event, name) === expected;
      }
      return (event) => {
        for (let i = 0; i < n; i++) {
          if (attributeString(event, names[i]!) !== wanted[i]) return false;
        }
        return true;
      };
    case 'prefix':
      return (event) => {
        for (let i = 0; i < n; i++) {
          const actual = attributeString(event, names[i]!);
          if (actual === undefined || !actual.startsWith(wanted[i]!)) return false;
        }
        return true;
      };
    case 'suffix':
      return (event) => {
        for (let i = 0; i < n; i++) {
          const actual = attributeString(event, names[i]!);
          if (actual === undefined || !actual.endsWith(wanted[i]!)) return false;
        }
        return true;
      };
  }
}

function compileAll(filters: readonly CompiledFilter[]): CompiledFilter {
  const n = filters.length;
  if (n === 0) return PASS;
  if (n === 1) return filters[0]!;
  return (event) => {
    for (let i = 0; i < n; i++) if (!filters[i]!(event)) return false;
    return true;
  };
}

function compileAny(filters: readonly CompiledFilter[]): CompiledFilter {
  const n = filters.length;
  if (n === 1) return filters[0]!;
  return (event) => {
    for (let i = 0; i < n; i++) if (filters[i]!(event)) return true;
    return false;
  };
}

/** Only a clean Boolean TRUE passes; an evaluation error or another type is no match. */
function compileCesqlFilter(expression: string): CompiledFilter {
  const program = compileCesql(expression);
  return (event) => cesqlMatches(program, event);
}

/**
 * Compiles one Subscriptions API filter object (exactly one dialect set; validation guarantees it).
 * Throws TributaryError VALIDATION_FAILED for a filter that validation would have refused.
 */
export function compileSubscriptionsFilter(
  filter: SubscriptionsFilter,
  field = 'filter',
): CompiledFilter {
  if (filter.exact !== undefined) return compileAttributeMatch(filter.exact, 'exact');
  if (filter.prefix !== undefined) return compileAttributeMatch(filter.prefix, 'prefix');
  if (filter.suffix !== undefined) return compileAttributeMatch(filter.suffix, 'suffix');
  if (filter.all !== undefined) {
    return compileAll(
      filter.all.map((f, i) => compileSubscriptionsFilter(f, `${field}.all[${i}]`)),
    );
  }
  if (filter.any !== undefined) {
    return compileAny(
      filter.any.map((f, i) => compileSubscriptionsFilter(f, `${field}.any[${i}]`)),
    );
  }
  if (filter.not !== undefined) {
    const inner = compileSubscriptionsFilter(filter.not, `${field}.not`);
    return (event) => !inner(event);
  }
  if (filter.cesql !== undefined) return compileCesqlFilter(filter.cesql);
  throw new TributaryError('VALIDATION_FAILED', 'a filter has no dialect', {
    problems: [{ field, message: 'one dialect is required' }],
  });
}

/**
 * Compiles a trigger's filter once (on trigger change); the result is evaluated per event.
 * Assumes validateTrigger passed. A non-empty `filters` list (ANDed) replaces `filter.attributes`;
 * an empty or missing one leaves `filter.attributes` in force; no filter at all passes every event.
 */
export function compileTriggerFilter(
  spec: Pick<TriggerSpec, 'filter' | 'filters'>,
): CompiledFilter {
  const compiled = compileUnindexed(spec);
  const indexKey = indexKeyOf(spec);
  if (indexKey === undefined) return compiled;
  // A filter with a key is never the shared PASS: every compile returns a fresh closure.
  return Object.assign(compiled, { indexKey });
}

function compileUnindexed(spec: Pick<TriggerSpec, 'filter' | 'filters'>): CompiledFilter {
  const filters = spec.filters;
  if (filters !== undefined && filters.length > 0) {
    return compileAll(filters.map((f, i) => compileSubscriptionsFilter(f, `spec.filters[${i}]`)));
  }
  const attributes = spec.filter?.attributes;
  if (attributes !== undefined) return compileAttributeMatch(attributes, 'legacy');
  return PASS;
}

const INDEXED = ['type', 'source'] as const;

/** The first exact `type` (else `source`) condition among the filter's conjuncts. */
function keyOfConjuncts(conjuncts: readonly SubscriptionsFilter[]): IndexKey | undefined {
  const found: Partial<Record<IndexKey['attribute'], string>> = {};
  const visit = (filter: SubscriptionsFilter): void => {
    if (filter.exact !== undefined) {
      for (const attribute of INDEXED) {
        const value = filter.exact[attribute];
        if (value !== undefined && value !== '' && found[attribute] === undefined) {
          found[attribute] = value;
        }
      }
    }
    // Every member of `all` must hold too; `any`, `not`, prefix, suffix and cesql promise nothing exact.
    filter.all?.forEach(visit);
  };
  conjuncts.forEach(visit);
  // Sufficient: the whole filter is one exact condition on one attribute.
  const only = conjuncts.length === 1 ? conjuncts[0]!.exact : undefined;
  const sufficient = only !== undefined && Object.keys(only).length === 1;
  for (const attribute of INDEXED) {
    const value = found[attribute];
    if (value !== undefined) return { attribute, value, sufficient };
  }
  return undefined;
}

/**
 * The exact `type` or `source` condition every event passing the trigger's filter meets, if there
 * is one: from the legacy `filter.attributes` (a non-empty value) or an `exact` filter at the top
 * level or inside `all`. Prefers `type`.
 */
export function indexKeyOf(spec: Pick<TriggerSpec, 'filter' | 'filters'>): IndexKey | undefined {
  if (spec.filters !== undefined && spec.filters.length > 0) return keyOfConjuncts(spec.filters);
  const attributes = spec.filter?.attributes;
  return attributes === undefined ? undefined : keyOfConjuncts([{ exact: attributes }]);
}
