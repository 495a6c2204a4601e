/**
 * CloudEvent validation (core spec v1.0.2, and the 0.3 attribute set), shared by every content
 * mode. It reports every problem, never just the first, and never changes the event.
 */

import type { AttributeValue, CloudEvent } from '../event.js';
import { SPEC_VERSIONS } from '../event.js';
import type { FieldProblem } from '../errors.js';

const NAME = /^[a-z0-9]+$/;
const INT32_MIN = -2_147_483_648;
const INT32_MAX = 2_147_483_647;
const REQUIRED = ['id', 'source', 'specversion', 'type'] as const;

/** Maps an attribute name to the field a problem is reported on (`source`, `[2].time`, `ce-id`). */
export type FieldNamer = (attribute: string) => string;

/** Attribute names: lower-case ASCII letters and digits, never `data` (no length limit enforced). */
export function isValidAttributeName(name: string): boolean {
  return NAME.test(name) && name !== 'data';
}

/** An Integer of the CloudEvents type system: a whole number in the signed 32-bit range. */
export function isInt32(value: number): boolean {
  return Number.isInteger(value) && value >= INT32_MIN && value <= INT32_MAX;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Why `value` is not an allowed attribute value (String, Boolean or Integer), or undefined. */
export function attributeValueProblem(value: unknown): string | undefined {
  switch (typeof value) {
    case 'string':
      // The String type excludes unpaired surrogates; they could not be carried in UTF-8 either.
      return LONE_SURROGATE.test(value) ? 'must not contain unpaired surrogates' : undefined;
    case 'boolean':
      return undefined;
    case 'number':
      return isInt32(value)
        ? undefined
        : 'must be a string, a boolean or an integer in the 32-bit range';
    default:
      return 'must be a string, a boolean or an integer in the 32-bit range';
  }
}

const RFC3339 =
  /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(?:[Zz]|([+-])(\d{2}):(\d{2}))$/;

function daysInMonth(year: number, month: number): number {
  if (month === 2) {
    const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
    return leap ? 29 : 28;
  }
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

/** An RFC 3339 `date-time` whose date and time exist (second 60 is allowed for leap seconds). */
export function isRfc3339Timestamp(text: string): boolean {
  const m = RFC3339.exec(text);
  if (m === null) return false;
  const year = Number(m[1]);
  const month = Number(m[2]);
  const day = Number(m[3]);
  const hour = Number(m[4]);
  const minute = Number(m[5]);
  const second = Number(m[6]);
  if (month < 1 || month > 12) return false;
  if (day < 1 || day > daysInMonth(year, month)) return false;
  if (hour > 23 || minute > 59 || second > 60) return false;
  if (m[7] !== undefined) {
    if (Number(m[8]) > 23 || Number(m[9]) > 59) return false;
  }
  return true;
}

const SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:/;

/**
 * A URI-reference (RFC 3986 4.1), checked leniently: no whitespace, control characters or
 * characters RFC 3986 never allows (`"<>\^`{|}`), and every `%` starts a `%XY` escape. Characters
 * above U+007F are tolerated (IRIs are common in the wild).
 */
export function isUriReference(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code <= 0x20 || (code >= 0x7f && code <= 0x9f)) return false;
    switch (code) {
      case 0x22: // "
      case 0x3c: // <
      case 0x3e: // >
      case 0x5c: // \
      case 0x5e: // ^
      case 0x60: // `
      case 0x7b: // {
      case 0x7c: // |
      case 0x7d: // }
        return false;
      case 0x25: // %
        if (!/^[0-9A-Fa-f]{2}$/.test(text.slice(i + 1, i + 3))) return false;
        break;
      default:
        break;
    }
  }
  return true;
}

/** An absolute URI: a URI-reference with a scheme. */
export function isAbsoluteUri(text: string): boolean {
  return SCHEME.test(text) && isUriReference(text);
}

/** A plausible media type value: visible ASCII, space and tab only (it travels as a header). */
function isHeaderSafe(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code !== 0x09 && (code < 0x20 || code > 0x7e)) return false;
  }
  return true;
}

function validateAttributesInto(
  attributes: Readonly<Record<string, AttributeValue>>,
  fieldOf: FieldNamer,
  problems: FieldProblem[],
): void {
  const specversion = attributes.specversion;
  const v03 = specversion === '0.3';

  for (const name of REQUIRED) {
    const value = attributes[name];
    if (value === undefined) {
      problems.push({ field: fieldOf(name), message: 'required attribute is missing' });
    } else if (typeof value !== 'string') {
      problems.push({ field: fieldOf(name), message: 'must be a string' });
    } else if (value.length === 0) {
      problems.push({ field: fieldOf(name), message: 'must not be empty' });
    } else {
      const problem = attributeValueProblem(value);
      if (problem !== undefined) problems.push({ field: fieldOf(name), message: problem });
    }
  }
  if (
    typeof specversion === 'string' &&
    specversion.length > 0 &&
    !(SPEC_VERSIONS as readonly string[]).includes(specversion)
  ) {
    problems.push({
      field: fieldOf('specversion'),
      message: `unsupported specversion "${specversion}" (supported: ${SPEC_VERSIONS.join(', ')})`,
    });
  }

  for (const name of Object.keys(attributes)) {
    const value = attributes[name];
    if (!isValidAttributeName(name)) {
      problems.push({
        field: fieldOf(name),
        message:
          name === 'data'
            ? '"data" is reserved and cannot be an attribute'
            : 'attribute names must consist of lower-case letters a-z and digits 0-9',
      });
      continue;
    }
    if ((REQUIRED as readonly string[]).includes(name)) continue; // checked above
    const valueProblem = attributeValueProblem(value);
    if (valueProblem !== undefined) {
      problems.push({ field: fieldOf(name), message: valueProblem });
      continue;
    }
    const problem = optionalAttributeProblem(name, value, v03);
    if (problem !== undefined) problems.push({ field: fieldOf(name), message: problem });
  }
}

function optionalAttributeProblem(
  name: string,
  value: AttributeValue | undefined,
  v03: boolean,
): string | undefined {
  switch (name) {
    case 'subject':
      if (typeof value !== 'string') return 'must be a string';
      return value.length === 0 ? 'must not be empty' : undefined;
    case 'time':
      if (typeof value !== 'string') return 'must be an RFC 3339 timestamp string';
      return isRfc3339Timestamp(value) ? undefined : `"${value}" is not a valid RFC 3339 timestamp`;
    case 'datacontenttype':
      if (typeof value !== 'string') return 'must be a string';
      if (value.trim().length === 0) return 'must not be empty';
      return isHeaderSafe(value) ? undefined : 'must be a media type (printable ASCII)';
    case 'dataschema':
      if (v03) return undefined; // an extension in 0.3
      if (typeof value !== 'string') return 'must be a string';
      if (value.length === 0) return 'must not be empty';
      return isAbsoluteUri(value) ? undefined : 'must be an absolute URI';
    case 'schemaurl':
      if (!v03) return undefined; // an extension in 1.0
      if (typeof value !== 'string') return 'must be a string';
      if (value.length === 0) return 'must not be empty';
      return isUriReference(value) ? undefined : 'must be a URI-reference';
    case 'datacontentencoding':
      if (!v03) return undefined; // an extension in 1.0
      if (typeof value !== 'string') return 'must be a string';
      return value.length === 0 ? 'must not be empty' : undefined;
    default:
      return undefined;
  }
}

/**
 * Validates an event's context attributes. `path` prefixes every field (`[3]` gives `[3].source`).
 * Returns every problem found; an empty array means the event is valid.
 */
export function validateEvent(event: CloudEvent, path?: string): FieldProblem[] {
  const problems: FieldProblem[] = [];
  const fieldOf: FieldNamer =
    path === undefined || path === '' ? (name) => name : (name) => `${path}.${name}`;
  validateAttributesInto(event.attributes, fieldOf, problems);
  return problems;
}

/** Like validateEvent, with the fields named by `fieldOf` (binary mode names the header). */
export function validateEventFields(event: CloudEvent, fieldOf: FieldNamer): FieldProblem[] {
  const problems: FieldProblem[] = [];
  validateAttributesInto(event.attributes, fieldOf, problems);
  return problems;
}
