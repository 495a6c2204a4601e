/**
 * The CloudEvent model Tributary stores and delivers.
 *
 * It is lossless on purpose (DESIGN.md section 5, "Fidelity"): attribute values keep the form they
 * arrived in (a binary-mode header gives a string, a structured JSON member keeps its JSON type),
 * `time` keeps its original text, and `data` keeps the exact bytes or the exact JSON text it was
 * sent with. Nothing here adds an `id` or a `time`.
 */

/** A context attribute or extension value, as received. */
export type AttributeValue = string | number | boolean;

/**
 * The event payload in the form it arrived in.
 * - `bytes`: the body of a binary-mode message (or any transport payload), byte for byte.
 * - `base64`: the decoded `data_base64` member of a structured event; re-encoded as `data_base64`.
 * - `json`: the `data` member of a structured event, as the exact JSON text that was sent.
 */
export type EventData =
  | { readonly kind: 'bytes'; readonly bytes: Uint8Array }
  | { readonly kind: 'base64'; readonly bytes: Uint8Array }
  | { readonly kind: 'json'; readonly text: string };

export interface CloudEvent {
  /**
   * Context attributes and extensions, in the order they arrived, never `data`/`data_base64`.
   * `specversion`, `id`, `source` and `type` are always present once an event is validated.
   */
  readonly attributes: Readonly<Record<string, AttributeValue>>;
  readonly data?: EventData;
}

export const SPEC_VERSIONS = ['1.0', '0.3'] as const;
export type SpecVersion = (typeof SPEC_VERSIONS)[number];

/** Extensions the broker itself may add to an event (DESIGN.md section 5). */
export const BrokerExtensions = {
  arrivalTime: 'knativearrivaltime',
  ttl: 'knativebrokerttl',
} as const;

/** An attribute as the filters and the legacy Knative semantics see it: its canonical string. */
export function attributeString(event: CloudEvent, name: string): string | undefined {
  // hasOwn: `constructor` is a valid attribute name and must not read Object.prototype.
  if (!Object.hasOwn(event.attributes, name)) return undefined;
  return String(event.attributes[name]);
}

/** Returns a copy of the event with `name` set to `value` (appended if new, replaced in place if present). */
export function withAttribute(event: CloudEvent, name: string, value: AttributeValue): CloudEvent {
  return { attributes: { ...event.attributes, [name]: value }, data: event.data };
}

/** Returns a copy of the event without the attribute `name`. */
export function withoutAttribute(event: CloudEvent, name: string): CloudEvent {
  if (!(name in event.attributes)) return event;
  const attributes = { ...event.attributes };
  delete attributes[name];
  return { attributes, data: event.data };
}

/**
 * About how many bytes `event` takes in memory and on the wire: its data plus its attributes'
 * names and values. Cheap (no encoding); used to bound what waits for the event store.
 */
export function approximateSize(event: CloudEvent): number {
  let size = 0;
  const data = event.data;
  if (data !== undefined) size += data.kind === 'json' ? data.text.length : data.bytes.byteLength;
  for (const name in event.attributes) {
    const value = event.attributes[name];
    size += name.length + (typeof value === 'string' ? value.length : 8);
  }
  return size;
}
