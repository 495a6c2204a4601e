/** Events, names and helpers shared by the conformance suites. */
import { randomUUID } from 'node:crypto';
import type { AttributeValue, CloudEvent, EventData } from '../../src/core/event.js';
import type { BrokerRef } from '../../src/backends/contracts.js';

/** A name no other test uses: a DNS-1123 label, valid for every backend. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${randomUUID().replaceAll('-', '').slice(0, 12)}`;
}

export function uniqueBroker(): BrokerRef {
  return { namespace: 'conformance', name: uniqueName('b') };
}

export function makeEvent(
  id: string,
  extra: Record<string, AttributeValue> = {},
  data?: EventData,
): CloudEvent {
  const attributes = {
    specversion: '1.0',
    id,
    source: '/conformance',
    type: 'test.event',
    ...extra,
  };
  return data === undefined ? { attributes } : { attributes, data };
}

export function makeEvents(prefix: string, count: number): CloudEvent[] {
  return Array.from({ length: count }, (_, i) => makeEvent(`${prefix}-${i}`));
}

export function idOf(event: CloudEvent): string {
  return String(event.attributes.id);
}

/**
 * Waits until the wall clock is past `ms` (a timestamp start position needs events on each side
 * of it). This waits for a condition, it does not assert anything about time.
 */
export async function clockPast(ms: number): Promise<void> {
  while (Date.now() <= ms) await new Promise((resolve) => setTimeout(resolve, 1));
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return (
    Buffer.compare(
      Buffer.from(a.buffer, a.byteOffset, a.byteLength),
      Buffer.from(b.buffer, b.byteOffset, b.byteLength),
    ) === 0
  );
}
