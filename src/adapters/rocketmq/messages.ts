/**
 * A RocketMQ message as the RocketMQSource turns it into a CloudEvent, pure (docs/sources.md):
 *
 * - a message that carries a CloudEvent passes through unchanged: its user properties are the
 *   binary mode of the CloudEvents Kafka binding (`ce_<attribute>`, `content-type`) with the body
 *   as data, or its `content-type` property is `application/cloudevents+json` and the body is the
 *   event (carried-event.ts);
 * - any other message becomes the event Alibaba Cloud EventBridge makes of a RocketMQ message
 *   (reference/peers.md): type `mq:Topic:SendMessage`, source `acs:mq`, subject the topic (with
 *   its namespace, `<namespace>%<topic>`, as RocketMQ names it), id = the message id, time = when
 *   the producer made it, and JSON data `{topic, systemProperties, userProperties, body}`; the tag,
 *   the keys and the message group are the extensions `rocketmqtag`, `rocketmqkeys` (space
 *   separated, as RocketMQ joins them) and `partitionkey`.
 *
 * The source's `ceOverrides.extensions` are set last on both.
 */
import type { AttributeValue, CloudEvent } from '../../core/event.js';
import { carriedCloudEvent, withOverrides } from '../carried-event.js';

export const ROCKETMQ_EVENT_TYPE = 'mq:Topic:SendMessage';
export const ROCKETMQ_EVENT_SOURCE = 'acs:mq';

/** The parts of an SDK MessageView the source reads. */
export interface SourceMessage {
  readonly messageId: string;
  readonly topic: string;
  readonly body: Buffer;
  readonly tag?: string | undefined;
  readonly keys: readonly string[];
  readonly messageGroup?: string | undefined;
  readonly bornHost: string;
  readonly bornTimestamp?: Date | undefined;
  readonly deliveryAttempt?: number | undefined;
  readonly deliveryTimestamp?: Date | undefined;
  readonly properties: ReadonlyMap<string, string>;
}

export interface MessageOrigin {
  /** The RocketMQ namespace of the source ('' for none). */
  readonly namespace: string;
  readonly overrides: Readonly<Record<string, string>>;
}

export interface MessageEvent {
  readonly event: CloudEvent;
  readonly passedThrough: boolean;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The body as text when it is UTF-8; undefined when it is not. */
function bodyText(body: Buffer): string | undefined {
  try {
    return utf8.decode(body);
  } catch {
    return undefined;
  }
}

/** RocketMQ's own names for what the SDK tells of a message (EventBridge's systemProperties). */
function systemProperties(message: SourceMessage): Record<string, string> {
  const system: Record<string, string> = { UNIQ_KEY: message.messageId };
  if (message.tag !== undefined && message.tag !== '') system.TAGS = message.tag;
  if (message.keys.length > 0) system.KEYS = message.keys.join(' ');
  if (message.messageGroup !== undefined && message.messageGroup !== '') {
    system.MSG_GROUP = message.messageGroup;
  }
  if (message.bornHost !== '') system.BORN_HOST = message.bornHost;
  if (message.bornTimestamp !== undefined) {
    system.BORN_TIMESTAMP = String(message.bornTimestamp.getTime());
  }
  if (message.deliveryTimestamp !== undefined) {
    system.DELIVERY_TIMESTAMP = String(message.deliveryTimestamp.getTime());
  }
  if (message.deliveryAttempt !== undefined) {
    // RocketMQ counts redeliveries (RECONSUME_TIMES); the SDK counts attempts from 1.
    system.RECONSUME_TIMES = String(Math.max(0, message.deliveryAttempt - 1));
  }
  return system;
}

/** The CloudEvent for one message (see the module comment). */
export function messageToEvent(message: SourceMessage, origin: MessageOrigin): MessageEvent {
  const properties = Object.fromEntries(message.properties);
  const carried = carriedCloudEvent(properties, message.body);
  if (carried !== undefined) {
    return { event: withOverrides(carried, origin.overrides), passedThrough: true };
  }
  const text = bodyText(message.body);
  const data = {
    topic: message.topic,
    systemProperties: systemProperties(message),
    userProperties: properties,
    // A body that is not UTF-8 text is given in base64 instead, under its own name.
    ...(text === undefined ? { bodyBase64: message.body.toString('base64') } : { body: text }),
  };
  const attributes: Record<string, AttributeValue> = {
    specversion: '1.0',
    id: message.messageId,
    source: ROCKETMQ_EVENT_SOURCE,
    type: ROCKETMQ_EVENT_TYPE,
    subject: origin.namespace === '' ? message.topic : `${origin.namespace}%${message.topic}`,
    datacontenttype: 'application/json',
  };
  if (message.bornTimestamp !== undefined && !Number.isNaN(message.bornTimestamp.getTime())) {
    attributes.time = message.bornTimestamp.toISOString();
  }
  if (message.tag !== undefined && message.tag !== '') attributes.rocketmqtag = message.tag;
  if (message.keys.length > 0) attributes.rocketmqkeys = message.keys.join(' ');
  if (message.messageGroup !== undefined && message.messageGroup !== '') {
    attributes.partitionkey = message.messageGroup;
  }
  const event: CloudEvent = {
    attributes,
    data: { kind: 'bytes', bytes: Buffer.from(JSON.stringify(data), 'utf8') },
  };
  return { event: withOverrides(event, origin.overrides), passedThrough: false };
}
