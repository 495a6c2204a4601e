/**
 * How an event is kept in a JetStream message: the binary content mode of the CloudEvents NATS
 * binding (reference/cloudevents.md section 4: every attribute, `datacontenttype` included, as a
 * `ce-<name>` header with the HTTP binding's percent-encoding; the payload is the data), plus two
 * headers of ours that make the round trip lossless:
 *
 * - `tributary-types`: the attributes whose JSON type was not a string (`count=n,flag=b`), so that a
 *   structured `"count": 7` comes back as the number 7;
 * - `tributary-data`: the form the data arrived in (`bytes`, `base64` or `json`); absent: no data.
 *
 * Any CloudEvents-aware NATS consumer reads these messages as binary-mode events. Header order is
 * kept by NATS, and it is the attribute order.
 */
import { createHash } from 'node:crypto';
import { headers as natsHeaders, type MsgHdrs } from '@nats-io/transport-node';
import { percentEncodeHeaderValue, tryDecodeHeaderValue } from '../../core/codec/percent.js';
import type { AttributeValue, CloudEvent, EventData } from '../../core/event.js';
import { attributeTypes, parseAttributeTypes, typedValue } from '../attribute-types.js';

export const CE_PREFIX = 'ce-';
export const TYPES_HEADER = 'tributary-types';
export const DATA_HEADER = 'tributary-data';
export const MSG_ID_HEADER = 'Nats-Msg-Id';

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const EMPTY = new Uint8Array(0);

export interface EncodedEvent {
  readonly headers: MsgHdrs;
  readonly payload: Uint8Array;
}

/**
 * The de-duplication id: the CloudEvents identity is `source` plus `id` (two producers may both
 * use id 1), so the hash of both, not the bare `id` (docs/decisions.md).
 */
export function messageId(event: CloudEvent): string {
  return createHash('sha256')
    .update(String(event.attributes.source))
    .update('\0')
    .update(String(event.attributes.id))
    .digest('base64url');
}

/** Headers and payload of `event`; `extra` headers (ours, ASCII) are appended after it. */
export function encodeEvent(
  event: CloudEvent,
  extra?: Readonly<Record<string, string>>,
): EncodedEvent {
  const headers = natsHeaders();
  for (const [name, value] of Object.entries(event.attributes)) {
    if (value === undefined) continue;
    headers.append(CE_PREFIX + name, percentEncodeHeaderValue(String(value)));
  }
  const types = attributeTypes(event.attributes);
  if (types !== '') headers.append(TYPES_HEADER, types);
  const data = event.data;
  let payload: Uint8Array = EMPTY;
  if (data !== undefined) {
    headers.append(DATA_HEADER, data.kind);
    payload = data.kind === 'json' ? encoder.encode(data.text) : data.bytes;
  }
  if (extra !== undefined)
    for (const [name, value] of Object.entries(extra)) headers.append(name, value);
  return { headers, payload };
}

/** The event in a message written by `encodeEvent` (a copy: `payload` is not kept). */
export function decodeEvent(headers: MsgHdrs, payload: Uint8Array): CloudEvent {
  const types = parseAttributeTypes(
    headers.has(TYPES_HEADER) ? headers.get(TYPES_HEADER) : undefined,
  );
  const attributes: Record<string, AttributeValue> = {};
  for (const [key, values] of headers) {
    if (!key.startsWith(CE_PREFIX) || values.length === 0) continue;
    const name = key.slice(CE_PREFIX.length);
    const decoded = tryDecodeHeaderValue(values[0]!);
    // We wrote these headers: an undecodable one can only be damage, kept rather than dropped.
    attributes[name] = typedValue(decoded.ok ? decoded.value : values[0]!, types.get(name));
  }
  Object.freeze(attributes);
  const kind = headers.has(DATA_HEADER) ? headers.get(DATA_HEADER) : undefined;
  let data: EventData | undefined;
  if (kind === 'json') data = Object.freeze({ kind: 'json', text: decoder.decode(payload) });
  else if (kind === 'bytes' || kind === 'base64') {
    data = Object.freeze({ kind, bytes: new Uint8Array(payload) });
  }
  return Object.freeze(data === undefined ? { attributes } : { attributes, data });
}
