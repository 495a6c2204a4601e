/** What every ResourceStore does with the keys it is given. */
import { TributaryError } from '../core/errors.js';
import type { ResourceKey } from '../core/resources/types.js';
import type { StoredResource } from './contracts.js';

/** `triggers default/t1`, for messages. */
export function describeKey(key: ResourceKey): string {
  return `${key.collection} ${key.namespace}/${key.name}`;
}

/** A frozen copy of `key` (the caller's object is never kept); BAD_REQUEST when incomplete. */
export function copyKey(key: ResourceKey): ResourceKey {
  const copy = { collection: key.collection, namespace: key.namespace, name: key.name };
  if (
    typeof copy.collection !== 'string' ||
    typeof copy.namespace !== 'string' ||
    typeof copy.name !== 'string'
  ) {
    throw new TributaryError(
      'BAD_REQUEST',
      'A resource key needs a collection, a namespace and a name',
    );
  }
  return Object.freeze(copy);
}

/** The order of `ResourceStore.list`: by collection, then namespace, then name (code units). */
export function compareKeys(a: StoredResource, b: StoredResource): number {
  const pairs: [string, string][] = [
    [a.key.collection, b.key.collection],
    [a.key.namespace, b.key.namespace],
    [a.key.name, b.key.name],
  ];
  for (const [x, y] of pairs) if (x !== y) return x < y ? -1 : 1;
  return 0;
}
