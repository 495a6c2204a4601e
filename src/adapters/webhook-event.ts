/**
 * What the GitHub and GitLab adapters share: reading a JSON webhook body, and making the
 * CloudEvent (data = the body byte for byte, `datacontenttype: application/json`, `time` = when it
 * arrived, the source's `ceOverrides.extensions` last).
 */
import type { AttributeValue, CloudEvent } from '../core/event.js';
import { TributaryError } from '../core/errors.js';
import type { Resource } from '../core/resources/types.js';
import { header, type WebhookRequest } from '../sources/contracts.js';

/** The media type of a content-type header, lower-case, without parameters. */
export function mediaType(request: WebhookRequest): string | undefined {
  return header(request, 'content-type')?.split(';')[0]?.trim().toLowerCase();
}

/** A JSON body parsed (to check it and read fields from it); 400 when it is not JSON. */
export function parseJsonBody(body: Buffer | string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(typeof body === 'string' ? body : body.toString('utf8'));
  } catch (error) {
    throw new TributaryError(
      'BAD_REQUEST',
      `The webhook body is not valid JSON: ${(error as Error).message}`,
    );
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new TributaryError('BAD_REQUEST', 'The webhook body must be a JSON object');
  }
  return parsed as Record<string, unknown>;
}

/** A header the sender always sends; 400 naming it when it is missing or empty. */
export function requiredHeader(request: WebhookRequest, name: string): string {
  const value = header(request, name);
  if (value === undefined || value.trim() === '') {
    throw new TributaryError('BAD_REQUEST', `The ${name} header is missing`, {
      problems: [{ field: name, message: 'required' }],
    });
  }
  return value.trim();
}

/** The source's `spec.ceOverrides.extensions`, validated when it was applied. */
export function overridesOf(source: Resource): Readonly<Record<string, string>> {
  const spec = source.spec as { ceOverrides?: { extensions?: Record<string, string> } };
  return spec.ceOverrides?.extensions ?? {};
}

export interface WebhookEventParts {
  readonly id: string;
  readonly source: string;
  readonly type: string;
  readonly subject?: string;
  /** Extensions the adapter derives; those without a value are left out. */
  readonly extensions: Readonly<Record<string, AttributeValue | undefined>>;
  readonly overrides: Readonly<Record<string, string>>;
  readonly data: Buffer;
  readonly time: Date;
}

export function webhookEvent(parts: WebhookEventParts): CloudEvent {
  const attributes: Record<string, AttributeValue> = {
    specversion: '1.0',
    id: parts.id,
    source: parts.source,
    type: parts.type,
  };
  if (parts.subject !== undefined && parts.subject !== '') attributes.subject = parts.subject;
  attributes.datacontenttype = 'application/json';
  attributes.time = parts.time.toISOString();
  for (const [name, value] of Object.entries(parts.extensions)) {
    if (value !== undefined && value !== '') attributes[name] = value;
  }
  for (const [name, value] of Object.entries(parts.overrides)) attributes[name] = value;
  return { attributes, data: { kind: 'bytes', bytes: parts.data } };
}
