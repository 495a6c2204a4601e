/**
 * The trigger sets of the fan-out and memory scenarios, on the default broker, all delivering to
 * the generator's subscriber. The filters are those of benchmarks/filter-matching.ts.
 */
import { fixture, trigger, type Fixture } from './harness.js';

export type FilterKind = 'exact' | 'prefix' | 'cesql';
export const FILTER_KINDS: readonly FilterKind[] = ['exact', 'prefix', 'cesql'];

function filterOf(kind: FilterKind, i: number): unknown {
  switch (kind) {
    case 'exact':
      return { exact: { type: `com.example.t${i}` } };
    case 'prefix':
      return { prefix: { type: `com.example.t${i}.` } };
    case 'cesql':
      return { cesql: `type = 'com.example.t${i}.x' AND source LIKE '/bench%'` };
  }
}

/** The event type that trigger 0 of `kind` matches, and no other trigger of the set. */
export function matchingType(kind: FilterKind): string {
  return kind === 'exact' ? 'com.example.t0' : 'com.example.t0.x';
}

/** `size` triggers of one filter kind; trigger i matches only events of trigger i's type. */
export function oneMatch(kind: FilterKind, size: number, port: number): Fixture {
  const uri = `http://127.0.0.1:${port}/`;
  return fixture(
    `${kind}-${size}`,
    Array.from({ length: size }, (_, i) => trigger(`${kind}-${i}`, [filterOf(kind, i)], uri)),
  );
}

export const ALL_MATCH_TYPE = 'com.example.all';

/** `size` triggers that all match every event of ALL_MATCH_TYPE (an exact filter each). */
export function allMatch(size: number, port: number): Fixture {
  return fixture(
    `all-${size}`,
    Array.from({ length: size }, (_, i) =>
      trigger(`all-${i}`, [{ exact: { type: ALL_MATCH_TYPE } }], `http://127.0.0.1:${port}/t${i}`),
    ),
  );
}
