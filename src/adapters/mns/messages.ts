/**
 * An MNS queue message as the MnsSource turns it into a CloudEvent, pure (docs/sources.md): the
 * event Alibaba Cloud EventBridge makes of an MNS message (reference/peers.md) —
 *
 * - type `mns:Queue:SendMessage`, source `acs:mns`, subject `acs:mns:<region>:<account>:queues/<queue>`
 *   (the queue's resource name; the region is left empty when only an endpoint was given);
 * - id = the MessageId, time = the EnqueueTime;
 * - JSON data `{requestId, messageId, messageBody}`, requestId being MNS's id of the receive
 *   request that handed the message out;
 * - the extension `mnsdequeuecount` (how many times MNS handed the message out, 1 the first time),
 *   `partitionkey` = the message group of a FIFO queue.
 *
 * Producers choose the body's encoding (the Java and Python SDKs send base64 by default): with
 * `base64Decode` the body is decoded first; when the decoded bytes are not UTF-8 text, the data
 * carries them as `messageBodyBase64` instead of `messageBody`. A body that is not base64 at all is
 * kept as it came. The source's `ceOverrides.extensions` are set last.
 */
import type { AttributeValue, CloudEvent } from '../../core/event.js';
import { withOverrides } from '../carried-event.js';

export const MNS_EVENT_TYPE = 'mns:Queue:SendMessage';
export const MNS_EVENT_SOURCE = 'acs:mns';
export const MNS_DEQUEUE_COUNT = 'mnsdequeuecount';

/** The fields of a received message the source reads (the SDK gives every one as text). */
export interface ReceivedMessage {
  readonly MessageId: string;
  readonly MessageBody: string;
  readonly EnqueueTime: string;
  readonly DequeueCount: string;
  readonly MessageGroupId?: string | undefined;
}

export interface QueueOrigin {
  readonly accountId: string;
  readonly region: string;
  readonly queue: string;
  readonly base64Decode: boolean;
  readonly overrides: Readonly<Record<string, string>>;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** The body as the data's member: text, or base64 when decoding gave bytes that are not text. */
function bodyMember(body: string, base64Decode: boolean): Record<string, string> {
  if (!base64Decode || body === '' || !BASE64.test(body)) return { messageBody: body };
  const bytes = Buffer.from(body, 'base64');
  try {
    return { messageBody: utf8.decode(bytes) };
  } catch {
    return { messageBodyBase64: body };
  }
}

/** The queue's resource name in Alibaba Cloud's form. */
export function queueSubject(origin: Pick<QueueOrigin, 'accountId' | 'region' | 'queue'>): string {
  return `acs:mns:${origin.region}:${origin.accountId}:queues/${origin.queue}`;
}

/** The CloudEvent for one received message (see the module comment). */
export function messageToEvent(
  message: ReceivedMessage,
  requestId: string,
  origin: QueueOrigin,
): CloudEvent {
  const data = {
    requestId,
    messageId: message.MessageId,
    ...bodyMember(message.MessageBody, origin.base64Decode),
  };
  const attributes: Record<string, AttributeValue> = {
    specversion: '1.0',
    id: message.MessageId,
    source: MNS_EVENT_SOURCE,
    type: MNS_EVENT_TYPE,
    subject: queueSubject(origin),
    datacontenttype: 'application/json',
  };
  const enqueued = Number(message.EnqueueTime);
  if (message.EnqueueTime !== '' && Number.isFinite(enqueued)) {
    const time = new Date(enqueued);
    if (!Number.isNaN(time.getTime()) && time.getUTCFullYear() <= 9999) {
      attributes.time = time.toISOString();
    }
  }
  const dequeues = Number(message.DequeueCount);
  if (Number.isSafeInteger(dequeues) && dequeues >= 0) attributes[MNS_DEQUEUE_COUNT] = dequeues;
  if (message.MessageGroupId !== undefined && message.MessageGroupId !== '') {
    attributes.partitionkey = message.MessageGroupId;
  }
  const event: CloudEvent = {
    attributes,
    data: { kind: 'bytes', bytes: Buffer.from(JSON.stringify(data), 'utf8') },
  };
  return withOverrides(event, origin.overrides);
}
