/**
 * Messages that already are CloudEvents, as the pulling sources recognise them (Kafka records,
 * RocketMQ messages): the binary content mode of the CloudEvents Kafka binding (`ce_<attribute>`
 * headers or properties with the attribute's string, `content-type` = datacontenttype, the
 * payload as data) or the structured mode (`content-type: application/cloudevents+json`, the
 * payload is the JSON event). A message that claims to be one but is not a valid CloudEvent is not
 * one: the source wraps it like any other message.
 */
import { decodeRecord, headerText, type RecordHeadersIn } from '../backends/kafka/codec.js';
import { mediaTypeEssence, validateEventFields } from '../core/codec/index.js';
import { parseStructuredEvent } from '../core/codec/json.js';
import type { CloudEvent } from '../core/event.js';

const STRUCTURED = 'application/cloudevents+json';

function binaryEvent(headers: RecordHeadersIn, payload: Buffer | null): CloudEvent | undefined {
  const decoded = decodeRecord(headers, payload);
  const event: CloudEvent =
    decoded.data === undefined && payload !== null && payload.length > 0
      ? { attributes: decoded.attributes, data: { kind: 'bytes', bytes: new Uint8Array(payload) } }
      : decoded;
  const problems = validateEventFields(event, (attribute) =>
    attribute === 'datacontenttype' ? 'content-type' : `ce_${attribute}`,
  );
  return problems.length === 0 ? event : undefined;
}

function structuredEvent(payload: Buffer | null): CloudEvent | undefined {
  if (payload === null) return undefined;
  try {
    return parseStructuredEvent(payload.toString('utf8'));
  } catch {
    return undefined;
  }
}

/** The CloudEvent the message carries, or undefined when it carries none (or an invalid one). */
export function carriedCloudEvent(
  headers: RecordHeadersIn,
  payload: Buffer | null,
): CloudEvent | undefined {
  if (headerText(headers, 'ce_specversion') !== undefined) return binaryEvent(headers, payload);
  const contentType = headerText(headers, 'content-type');
  if (contentType !== undefined && mediaTypeEssence(contentType) === STRUCTURED) {
    return structuredEvent(payload);
  }
  return undefined;
}

/** `event` with the source's `ceOverrides.extensions` set (last, replacing what it had). */
export function withOverrides(
  event: CloudEvent,
  overrides: Readonly<Record<string, string>>,
): CloudEvent {
  if (Object.keys(overrides).length === 0) return event;
  const attributes = { ...event.attributes, ...overrides };
  return event.data === undefined ? { attributes } : { attributes, data: event.data };
}
