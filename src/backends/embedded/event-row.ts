/**
 * How a CloudEvent is stored in a row, losslessly: the attributes as JSON (JSON keeps their order
 * and their string, number or boolean type) and the data as a kind plus its bytes (the JSON text of
 * a `json` payload as UTF-8).
 */
import type { AttributeValue, CloudEvent, EventData } from '../../core/event.js';

export const DataKind = { none: 0, bytes: 1, base64: 2, json: 3 } as const;
export type DataKind = (typeof DataKind)[keyof typeof DataKind];

export interface EncodedEvent {
  readonly attrs: string;
  readonly kind: DataKind;
  readonly data: Buffer | null;
  /** Rough memory footprint of the decoded event, for cache accounting. */
  readonly size: number;
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export function encodeEvent(event: CloudEvent): EncodedEvent {
  const attrs = JSON.stringify(event.attributes);
  const data = event.data;
  if (data === undefined)
    return { attrs, kind: DataKind.none, data: null, size: attrs.length + 64 };
  if (data.kind === 'json') {
    const buffer = Buffer.from(data.text, 'utf8');
    return {
      attrs,
      kind: DataKind.json,
      data: buffer,
      size: attrs.length + data.text.length * 2 + 64,
    };
  }
  const kind = data.kind === 'bytes' ? DataKind.bytes : DataKind.base64;
  return {
    attrs,
    kind,
    data: asBuffer(data.bytes),
    size: attrs.length + data.bytes.byteLength + 64,
  };
}

function decodeData(kind: number, data: Buffer | null): EventData | undefined {
  switch (kind) {
    case DataKind.none:
      return undefined;
    case DataKind.json:
      return Object.freeze({ kind: 'json', text: (data ?? Buffer.alloc(0)).toString('utf8') });
    case DataKind.bytes:
    case DataKind.base64: {
      const buffer = data ?? Buffer.alloc(0);
      const bytes = new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
      return Object.freeze({ kind: kind === DataKind.bytes ? 'bytes' : 'base64', bytes });
    }
    default:
      throw new Error(`unknown stored data kind ${kind}`);
  }
}

function freezeEvent(
  attributes: Readonly<Record<string, AttributeValue>>,
  data: EventData | undefined,
): CloudEvent {
  return Object.freeze(
    data === undefined
      ? { attributes: Object.freeze(attributes) }
      : { attributes: Object.freeze(attributes), data },
  );
}

/** The event stored in a row, as a frozen object (it is shared between subscriptions). */
export function decodeEvent(attrs: string, kind: number, data: Buffer | null): CloudEvent {
  return freezeEvent(JSON.parse(attrs) as Record<string, AttributeValue>, decodeData(kind, data));
}

/** A frozen copy of an event given to `append`, so the caller's objects are never shared. */
export function copyEvent(event: CloudEvent): CloudEvent {
  const data = event.data;
  let copy: EventData | undefined;
  if (data === undefined) copy = undefined;
  else if (data.kind === 'json') copy = Object.freeze({ kind: 'json', text: data.text });
  // new Uint8Array(view) copies (Buffer#slice would not).
  else copy = Object.freeze({ kind: data.kind, bytes: new Uint8Array(data.bytes) });
  return freezeEvent({ ...event.attributes }, copy);
}
