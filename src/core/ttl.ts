/**
 * Loop prevention with `knativebrokerttl` (reference/knative.md 1.11): the number of hops an event
 * has left. An event arriving without one gets the maximum (255 unless configured); each reply a
 * subscriber sends back into the broker is one hop, so it gets its original's TTL minus one; an
 * event with 0 left is refused. The broker strips the TTL before delivering (as Knative's broker
 * filter does), so a subscriber cannot reset it by echoing the event.
 */
import { BrokerExtensions, withAttribute, withoutAttribute, type CloudEvent } from './event.js';

export const DEFAULT_MAX_TTL = 255;

export type TtlOutcome =
  | { readonly ok: true; readonly event: CloudEvent }
  | { readonly ok: false; readonly reason: string };

/** The TTL an event carries, if it carries a valid one. */
function ttlOf(event: CloudEvent): number | 'invalid' | undefined {
  const value = event.attributes[BrokerExtensions.ttl];
  if (value === undefined) return undefined;
  const n = typeof value === 'number' ? value : /^-?\d+$/.test(String(value)) ? Number(value) : NaN;
  return Number.isSafeInteger(n) ? n : 'invalid';
}

/** At the ingress: a missing TTL becomes `maxTtl`; one with no hop left is refused. */
export function admitTtl(event: CloudEvent, maxTtl: number): TtlOutcome {
  const ttl = ttlOf(event);
  if (ttl === undefined)
    return { ok: true, event: withAttribute(event, BrokerExtensions.ttl, maxTtl) };
  if (ttl === 'invalid') return { ok: false, reason: `${BrokerExtensions.ttl} must be an integer` };
  if (ttl <= 0)
    return {
      ok: false,
      reason: `${BrokerExtensions.ttl} is ${ttl}: no hop left, the event may be in a loop`,
    };
  return {
    ok: true,
    event: ttl > maxTtl ? withAttribute(event, BrokerExtensions.ttl, maxTtl) : event,
  };
}

/** A reply to `original`: one hop more than it, whatever TTL the subscriber put on the reply. */
export function replyTtl(reply: CloudEvent, original: CloudEvent, maxTtl: number): TtlOutcome {
  const before = ttlOf(original);
  const left = (typeof before === 'number' ? Math.min(before, maxTtl) : maxTtl) - 1;
  if (left <= 0) {
    return {
      ok: false,
      reason: `the reply would have ${Math.max(left, 0)} hops left: dropped to stop a loop`,
    };
  }
  return { ok: true, event: withAttribute(reply, BrokerExtensions.ttl, left) };
}

/** The event as a subscriber receives it: without the broker's TTL. */
export function forDelivery(event: CloudEvent): CloudEvent {
  return withoutAttribute(event, BrokerExtensions.ttl);
}
