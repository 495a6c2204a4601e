/**
 * Transports whose headers carry only strings (NATS and Kafka) lose the JSON type of an attribute
 * (a structured `"count": 7` would come back as `"7"`). The backends write, beside the headers, a
 * list of the attributes that were not strings, `count=n,flag=b`, and read it back with these.
 */
import type { AttributeValue } from '../core/event.js';

/** The list for `attributes`, or '' when every attribute is a string. */
export function attributeTypes(attributes: Readonly<Record<string, AttributeValue>>): string {
  let types = '';
  for (const [name, value] of Object.entries(attributes)) {
    const type = typeof value === 'number' ? 'n' : typeof value === 'boolean' ? 'b' : undefined;
    if (type !== undefined) types += `${types === '' ? '' : ','}${name}=${type}`;
  }
  return types;
}

/** Reads a list written by `attributeTypes`. */
export function parseAttributeTypes(list: string | undefined): Map<string, string> {
  const types = new Map<string, string>();
  for (const entry of (list ?? '').split(',')) {
    const at = entry.lastIndexOf('=');
    if (at > 0) types.set(entry.slice(0, at), entry.slice(at + 1));
  }
  return types;
}

/** A header's text as the attribute value it was, given its entry in the list. */
export function typedValue(text: string, type: string | undefined): AttributeValue {
  if (type === 'n') return Number(text);
  if (type === 'b') return text === 'true';
  return text;
}
