/**
 * Validation of Broker, Trigger and source manifests (DESIGN.md section 2, reference/knative.md
 * 1.1-1.5). Every function returns every problem it finds, each with its field path (such as
 * `spec.filters[1].prefix`), and [] when the input is valid; nothing throws (Knative `FieldError`).
 *
 * Knative manifests are accepted as they are: server-owned metadata (`uid`, `generation`,
 * `creationTimestamp`, ...) and a top-level `status` are ignored, so a manifest read back with GET
 * can be applied again. Unknown fields inside `spec` are rejected so that typos are caught.
 */

import { CesqlParseError, compileCesql } from '../cesql/index.js';
import type { FieldProblem } from '../errors.js';
import { durationError, parseDuration } from '../duration.js';
import type { OutboundPolicy } from '../outbound.js';
import { SOURCE_KINDS } from './manifest.js';
import { REDACTED } from './secrets.js';
import {
  BACKOFF_POLICIES,
  DELIVERY_FORMATS,
  DELIVERY_ORDER_ANNOTATION,
  DELIVERY_ORDERINGS,
} from './types.js';

type JsonObject = Record<string, unknown>;

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function problem(field: string, message: string): FieldProblem {
  return { field, message };
}

/** `base.key` for identifier-like keys, `base[key]` otherwise (label keys, invalid attribute names). */
function fieldPath(base: string, key: string): string {
  if (base === '') return key;
  return /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(key) ? `${base}.${key}` : `${base}[${key}]`;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return `a ${typeof value}`;
}

const REQUIRED = 'required';
const UNKNOWN_FIELD = 'unknown field';

function mustBeObject(field: string, value: unknown): FieldProblem {
  return problem(field, `must be an object, got ${describe(value)}`);
}

function unknownFields(
  object: JsonObject,
  known: ReadonlySet<string>,
  field: string,
  message = UNKNOWN_FIELD,
): FieldProblem[] {
  const problems: FieldProblem[] = [];
  for (const key of Object.keys(object)) {
    if (!known.has(key)) problems.push(problem(fieldPath(field, key), message));
  }
  return problems;
}

function nonEmptyString(value: unknown, field: string): FieldProblem[] {
  if (value === undefined) return [problem(field, REQUIRED)];
  if (typeof value !== 'string')
    return [problem(field, `must be a string, got ${describe(value)}`)];
  if (value === '') return [problem(field, 'must not be empty')];
  return [];
}

function optionalString(value: unknown, field: string): FieldProblem[] {
  if (value === undefined || typeof value === 'string') return [];
  return [problem(field, `must be a string, got ${describe(value)}`)];
}

function oneOf(value: unknown, allowed: readonly string[], field: string): FieldProblem[] {
  if (typeof value === 'string' && allowed.includes(value)) return [];
  const shown = typeof value === 'string' ? `"${value}"` : describe(value);
  return [problem(field, `must be one of ${allowed.join(', ')}, got ${shown}`)];
}

// ---------------------------------------------------------------------------------------------
// Names and metadata

export const MAX_NAME_LENGTH = 63;
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** Namespace names that would collide with the server's own top-level paths (DESIGN.md section 3). */
export const RESERVED_NAMESPACES: ReadonlySet<string> = new Set([
  'v1',
  'webhooks',
  'docs',
  'metrics',
  'healthz',
  'readyz',
  'openapi.json',
  'ui',
]);

/** A DNS-1123 label: ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$, at most 63 characters. */
export function validateName(name: unknown, field: string): FieldProblem[] {
  const basic = nonEmptyString(name, field);
  if (basic.length > 0 || typeof name !== 'string') return basic;
  const problems: FieldProblem[] = [];
  if (name.length > MAX_NAME_LENGTH) {
    problems.push(
      problem(field, `must be at most ${MAX_NAME_LENGTH} characters, has ${name.length}`),
    );
  }
  if (!DNS1123_LABEL.test(name)) {
    problems.push(
      problem(
        field,
        `"${name}" is not a DNS-1123 label: use lower-case letters, digits and '-', starting and ending with a letter or digit`,
      ),
    );
  }
  return problems;
}

/** A DNS-1123 label that is not one of RESERVED_NAMESPACES. */
export function validateNamespace(ns: unknown, field: string): FieldProblem[] {
  if (typeof ns === 'string' && RESERVED_NAMESPACES.has(ns)) {
    return [problem(field, `"${ns}" is reserved and cannot be used as a namespace`)];
  }
  return validateName(ns, field);
}

/**
 * Standard Kubernetes ObjectMeta fields a manifest read back from Knative or from our own GET may
 * carry. They are owned by the server and ignored; anything else unknown is a typo and rejected.
 */
const SERVER_OWNED_METADATA = [
  'uid',
  'generation',
  'creationTimestamp',
  'resourceVersion',
  'selfLink',
  'managedFields',
  'ownerReferences',
  'finalizers',
  'generateName',
  'deletionTimestamp',
  'deletionGracePeriodSeconds',
];
const METADATA_FIELDS: ReadonlySet<string> = new Set([
  'name',
  'namespace',
  'labels',
  'annotations',
  ...SERVER_OWNED_METADATA,
]);

function validateStringMap(value: unknown, field: string): FieldProblem[] {
  if (value === undefined) return [];
  if (!isObject(value)) return [problem(field, `must be a map of strings, got ${describe(value)}`)];
  const problems: FieldProblem[] = [];
  for (const [key, entry] of Object.entries(value)) {
    if (key === '') problems.push(problem(field, 'keys must not be empty'));
    if (typeof entry !== 'string') {
      problems.push(problem(fieldPath(field, key), `must be a string, got ${describe(entry)}`));
    }
  }
  return problems;
}

/** `name`, `namespace` (both required), `labels` and `annotations` (string maps). */
export function validateMetadata(meta: unknown, field = 'metadata'): FieldProblem[] {
  if (meta === undefined) return [problem(field, REQUIRED)];
  if (!isObject(meta)) return [mustBeObject(field, meta)];
  return [
    ...validateName(meta.name, `${field}.name`),
    ...validateNamespace(meta.namespace, `${field}.namespace`),
    ...validateStringMap(meta.labels, `${field}.labels`),
    ...validateStringMap(meta.annotations, `${field}.annotations`),
    ...unknownFields(meta, METADATA_FIELDS, field),
  ];
}

// ---------------------------------------------------------------------------------------------
// Destinations

const DESTINATION_FIELDS: ReadonlySet<string> = new Set(['ref', 'uri', 'CACerts', 'audience']);
const REF_FIELDS: ReadonlySet<string> = new Set(['apiVersion', 'kind', 'name', 'namespace']);

function validateHttpUrl(value: unknown, field: string): FieldProblem[] {
  const basic = nonEmptyString(value, field);
  if (basic.length > 0 || typeof value !== 'string') return basic;
  const message = `"${value}" is not an absolute http or https URL`;
  if (value.trim() !== value) return [problem(field, `${message} (surrounding whitespace)`)];
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return [problem(field, message)];
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.hostname === '') {
    return [problem(field, message)];
  }
  return [];
}

function validateBrokerRef(ref: unknown, field: string, destinationField: string): FieldProblem[] {
  if (!isObject(ref)) return [mustBeObject(field, ref)];
  const problems: FieldProblem[] = [];
  if (ref.kind === undefined) {
    problems.push(problem(`${field}.kind`, REQUIRED));
  } else if (ref.kind !== 'Broker') {
    const shown = typeof ref.kind === 'string' ? `"${ref.kind}"` : describe(ref.kind);
    problems.push(
      problem(
        `${field}.kind`,
        `only kind Broker can be referenced, got ${shown}; to deliver to a service give ${destinationField}.uri`,
      ),
    );
  }
  problems.push(...validateName(ref.name, `${field}.name`));
  if (ref.namespace !== undefined) {
    problems.push(...validateNamespace(ref.namespace, `${field}.namespace`));
  }
  problems.push(...optionalString(ref.apiVersion, `${field}.apiVersion`));
  problems.push(...unknownFields(ref, REF_FIELDS, field));
  return problems;
}

/**
 * A Destination. Without `allowBrokerRef` (trigger subscribers, dead-letter sinks) it needs `uri`,
 * an absolute http(s) URL, and a `ref` is refused because Kubernetes objects cannot be resolved.
 * With `allowBrokerRef` (source sinks) it needs exactly one of `ref` (to kind Broker) and `uri`.
 */
export function validateDestination(
  dest: unknown,
  field: string,
  options: { allowBrokerRef?: boolean } = {},
): FieldProblem[] {
  if (dest === undefined) return [problem(field, REQUIRED)];
  if (!isObject(dest)) return [mustBeObject(field, dest)];
  const problems: FieldProblem[] = [];
  const hasRef = dest.ref !== undefined;
  const hasUri = dest.uri !== undefined;
  if (options.allowBrokerRef === true) {
    if (hasRef && hasUri)
      problems.push(problem(field, 'give exactly one of ref and uri, not both'));
    if (!hasRef && !hasUri) problems.push(problem(field, 'one of ref or uri is required'));
    if (hasRef) problems.push(...validateBrokerRef(dest.ref, `${field}.ref`, field));
  } else {
    if (hasRef) {
      problems.push(
        problem(
          `${field}.ref`,
          `references to Kubernetes objects cannot be resolved; give ${field}.uri`,
        ),
      );
    } else if (!hasUri) {
      problems.push(problem(`${field}.uri`, REQUIRED));
    }
  }
  if (hasUri) problems.push(...validateHttpUrl(dest.uri, `${field}.uri`));
  problems.push(...optionalString(dest.CACerts, `${field}.CACerts`));
  problems.push(...optionalString(dest.audience, `${field}.audience`));
  problems.push(...unknownFields(dest, DESTINATION_FIELDS, field));
  return problems;
}

/** The destination URIs a resource delivers to: subscriber, sink and dead-letter sink. */
const DESTINATION_URI_PATHS = [
  ['subscriber', 'uri'],
  ['sink', 'uri'],
  ['delivery', 'deadLetterSink', 'uri'],
] as const;

/**
 * The upstream addresses a source connects to, by kind: URLs (MNS endpoint, Kubernetes API server)
 * and host:port lists (Kafka bootstrap servers, RocketMQ proxy endpoints).
 */
const UPSTREAM_PATHS: Readonly<Record<string, readonly (readonly string[])[]>> = {
  MnsSource: [['endpoint']],
  ApiServerSource: [['cluster', 'server']],
  KafkaSource: [['bootstrapServers']],
  RocketMQSource: [['endpoints']],
};

function valueAt(spec: unknown, path: readonly string[]): unknown {
  let value: unknown = spec;
  for (const key of path) value = isObject(value) ? value[key] : undefined;
  return value;
}

/** The hosts of a URL, or of a host:port list (a string, `;`/`,`-separated, or an array of them). */
function hostsOf(value: unknown): string[] {
  if (typeof value === 'string' && /^https?:\/\//i.test(value)) {
    return validateHttpUrl(value, '').length > 0 ? [] : [new URL(value).hostname];
  }
  const items = typeof value === 'string' ? [value] : Array.isArray(value) ? value : [];
  return items
    .filter((item): item is string => typeof item === 'string')
    .flatMap((item) => item.split(/[;,]/))
    .map((address) => address.trim().replace(/:\d{1,5}$/, ''))
    .filter((host) => host !== '');
}

/**
 * Checks a resource's outbound addresses against the outbound policy, as far as the address alone
 * tells: the destination URIs of a Broker, Trigger or source (subscriber, sink, dead-letter sink)
 * and the upstream a source reads from. An IP literal or a known metadata host name the policy
 * refuses is a problem at its field path. Host names of destinations are checked again when they
 * are resolved, at delivery; upstream clients resolve names themselves (docs/outbound.md).
 * Values that are not valid addresses are left to the other validators.
 */
export function validateOutbound(resource: unknown, policy: OutboundPolicy): FieldProblem[] {
  const spec = isObject(resource) ? resource.spec : undefined;
  const kind = isObject(resource) && typeof resource.kind === 'string' ? resource.kind : '';
  const problems: FieldProblem[] = [];
  for (const path of DESTINATION_URI_PATHS) {
    const value = valueAt(spec, path);
    if (typeof value !== 'string' || validateHttpUrl(value, '').length > 0) continue;
    const verdict = policy.checkHost(new URL(value).hostname);
    if (verdict.allowed === false) {
      problems.push(problem(`spec.${path.join('.')}`, `"${value}": ${verdict.reason}`));
    }
  }
  for (const path of UPSTREAM_PATHS[kind] ?? []) {
    for (const host of hostsOf(valueAt(spec, path))) {
      const verdict = policy.checkHost(host);
      if (verdict.allowed === false) {
        problems.push(problem(`spec.${path.join('.')}`, `"${host}": ${verdict.reason}`));
      }
    }
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------
// DeliverySpec

const DELIVERY_FIELDS: ReadonlySet<string> = new Set([
  'deadLetterSink',
  'retry',
  'backoffPolicy',
  'backoffDelay',
  'timeout',
  'retryAfterMax',
  'format',
  'ordering',
]);
const MAX_INT32 = 2_147_483_647;

function validateDurationField(
  value: unknown,
  field: string,
  mustBePositive: boolean,
): FieldProblem[] {
  if (value === undefined) return [];
  const error = durationError(value);
  if (error !== undefined) return [problem(field, error)];
  if (mustBePositive && parseDuration(value as string) === 0) {
    return [problem(field, 'must be greater than zero')];
  }
  return [];
}

/** Knative's DeliverySpec (reference/knative.md 1.5). Absent (undefined) is valid. */
export function validateDeliverySpec(spec: unknown, field: string): FieldProblem[] {
  if (spec === undefined) return [];
  if (!isObject(spec)) return [mustBeObject(field, spec)];
  const problems: FieldProblem[] = [];
  if (spec.deadLetterSink !== undefined) {
    problems.push(...validateDestination(spec.deadLetterSink, `${field}.deadLetterSink`));
  }
  if (spec.retry !== undefined) {
    const retry = spec.retry;
    if (typeof retry !== 'number' || !Number.isInteger(retry) || retry < 0 || retry > MAX_INT32) {
      const shown = typeof retry === 'number' ? String(retry) : describe(retry);
      problems.push(problem(`${field}.retry`, `must be an integer >= 0, got ${shown}`));
    }
  }
  if (spec.backoffPolicy !== undefined) {
    problems.push(...oneOf(spec.backoffPolicy, BACKOFF_POLICIES, `${field}.backoffPolicy`));
  }
  problems.push(...validateDurationField(spec.backoffDelay, `${field}.backoffDelay`, false));
  problems.push(...validateDurationField(spec.timeout, `${field}.timeout`, true));
  problems.push(...validateDurationField(spec.retryAfterMax, `${field}.retryAfterMax`, false));
  if (spec.format !== undefined) {
    problems.push(...oneOf(spec.format, DELIVERY_FORMATS, `${field}.format`));
  }
  if (spec.ordering !== undefined) {
    problems.push(...oneOf(spec.ordering, DELIVERY_ORDERINGS, `${field}.ordering`));
  }
  problems.push(...unknownFields(spec, DELIVERY_FIELDS, field));
  return problems;
}

// ---------------------------------------------------------------------------------------------
// Filters

const ATTRIBUTE_NAME = /^[a-z][a-z0-9]*$/;

/** A CloudEvents attribute name as Knative filters accept it: ^[a-z][a-z0-9]*$. */
export function isValidAttributeName(name: string): boolean {
  return ATTRIBUTE_NAME.test(name);
}

function validateAttributeMap(
  value: unknown,
  field: string,
  options: { requireEntries: boolean; allowEmptyValues: boolean },
): FieldProblem[] {
  if (!isObject(value)) {
    return [problem(field, `must be a map of attribute names to strings, got ${describe(value)}`)];
  }
  const entries = Object.entries(value);
  if (options.requireEntries && entries.length === 0) {
    return [problem(field, 'must name at least one attribute')];
  }
  const problems: FieldProblem[] = [];
  for (const [key, wanted] of entries) {
    if (!isValidAttributeName(key)) {
      problems.push(
        problem(
          field,
          `invalid attribute name "${key}": attribute names are lower-case letters and digits, starting with a letter`,
        ),
      );
    }
    if (typeof wanted !== 'string') {
      problems.push(problem(fieldPath(field, key), `must be a string, got ${describe(wanted)}`));
    } else if (wanted === '' && !options.allowEmptyValues) {
      problems.push(problem(fieldPath(field, key), 'must not be empty'));
    }
  }
  return problems;
}

const DIALECTS: ReadonlySet<string> = new Set([
  'exact',
  'prefix',
  'suffix',
  'all',
  'any',
  'not',
  'cesql',
]);

/**
 * A CESQL expression must parse (the CESQL spec and the Subscriptions API: reject invalid
 * expressions at subscription time); the problem names the position and the reason.
 */
function validateCesql(expression: unknown, field: string): FieldProblem[] {
  if (typeof expression !== 'string' || expression.trim() === '') {
    return [problem(field, `must be a non-empty CESQL expression, got ${describe(expression)}`)];
  }
  try {
    compileCesql(expression);
    return [];
  } catch (error) {
    if (error instanceof CesqlParseError) return [problem(field, `invalid CESQL ${error.message}`)];
    throw error;
  }
}

function validateFilterList(value: unknown, field: string, depth: number): FieldProblem[] {
  if (!Array.isArray(value))
    return [problem(field, `must be a list of filters, got ${describe(value)}`)];
  if (value.length === 0) return [problem(field, 'must contain at least one filter')];
  return value.flatMap((nested, i) =>
    validateSubscriptionsFilter(nested, `${field}[${i}]`, depth + 1),
  );
}

/**
 * How deep all/any/not may nest: filters are checked and evaluated recursively, and a body of a
 * few hundred KB could otherwise nest deep enough to overflow the stack.
 */
export const MAX_FILTER_DEPTH = 32;

/** One Subscriptions API filter object (reference/knative.md 1.4): exactly one dialect. */
export function validateSubscriptionsFilter(
  filter: unknown,
  field: string,
  depth = 0,
): FieldProblem[] {
  if (depth > MAX_FILTER_DEPTH) {
    return [problem(field, `filters nest deeper than ${MAX_FILTER_DEPTH} levels`)];
  }
  if (!isObject(filter)) return [mustBeObject(field, filter)];
  const keys = Object.keys(filter);
  const dialects = keys.filter((key) => DIALECTS.has(key));
  const problems: FieldProblem[] = [];
  if (keys.length === 0) {
    problems.push(problem(field, 'one dialect is required'));
  } else if (dialects.length > 1) {
    problems.push(problem(field, 'multiple dialects found, filters can have only one dialect set'));
  }
  for (const key of keys) {
    const value = filter[key];
    const path = fieldPath(field, key);
    switch (key) {
      case 'exact':
      case 'prefix':
      case 'suffix':
        problems.push(
          ...validateAttributeMap(value, path, { requireEntries: true, allowEmptyValues: false }),
        );
        break;
      case 'all':
      case 'any':
        problems.push(...validateFilterList(value, path, depth));
        break;
      case 'not':
        problems.push(...validateSubscriptionsFilter(value, path, depth + 1));
        break;
      case 'cesql':
        problems.push(...validateCesql(value, path));
        break;
      default:
        problems.push(
          problem(path, 'unknown dialect; use one of exact, prefix, suffix, all, any, not'),
        );
    }
  }
  return problems;
}

const LEGACY_FILTER_FIELDS: ReadonlySet<string> = new Set(['attributes']);

function validateLegacyFilter(filter: unknown, field: string): FieldProblem[] {
  if (!isObject(filter)) return [mustBeObject(field, filter)];
  const problems: FieldProblem[] = [];
  if (filter.attributes !== undefined) {
    problems.push(
      ...validateAttributeMap(filter.attributes, `${field}.attributes`, {
        requireEntries: false,
        allowEmptyValues: true,
      }),
    );
  }
  problems.push(...unknownFields(filter, LEGACY_FILTER_FIELDS, field));
  return problems;
}

// ---------------------------------------------------------------------------------------------
// Resources

const TOP_LEVEL_FIELDS: ReadonlySet<string> = new Set([
  'apiVersion',
  'kind',
  'metadata',
  'spec',
  'status',
]);

/** apiVersion, kind, metadata and unknown top-level fields; `status` is ignored. */
function validateEnvelope(
  resource: JsonObject,
  kindProblems: (kind: unknown) => FieldProblem[],
): FieldProblem[] {
  return [
    ...nonEmptyString(resource.apiVersion, 'apiVersion'),
    ...kindProblems(resource.kind),
    ...validateMetadata(resource.metadata, 'metadata'),
    ...unknownFields(resource, TOP_LEVEL_FIELDS, ''),
  ];
}

function expectKind(expected: string): (kind: unknown) => FieldProblem[] {
  return (kind) => {
    if (kind === undefined) return [problem('kind', REQUIRED)];
    if (kind === expected) return [];
    const shown = typeof kind === 'string' ? `"${kind}"` : describe(kind);
    return [problem('kind', `must be "${expected}", got ${shown}`)];
  };
}

const ROOT_NOT_OBJECT = (resource: unknown): FieldProblem =>
  problem('', `the resource must be an object, got ${describe(resource)}`);

const BROKER_SPEC_FIELDS: ReadonlySet<string> = new Set(['delivery', 'config', 'retention']);

/** A Broker: `spec` is optional; `spec.delivery` is a DeliverySpec; `spec.config` any object, kept. */
export function validateBroker(resource: unknown): FieldProblem[] {
  if (!isObject(resource)) return [ROOT_NOT_OBJECT(resource)];
  const problems = validateEnvelope(resource, expectKind('Broker'));
  const spec = resource.spec;
  if (spec === undefined) return problems;
  if (!isObject(spec)) return [...problems, mustBeObject('spec', spec)];
  problems.push(...validateDeliverySpec(spec.delivery, 'spec.delivery'));
  if (spec.config !== undefined && !isObject(spec.config)) {
    problems.push(mustBeObject('spec.config', spec.config));
  }
  problems.push(...validateDurationField(spec.retention, 'spec.retention', true));
  problems.push(...unknownFields(spec, BROKER_SPEC_FIELDS, 'spec'));
  return problems;
}

const TRIGGER_SPEC_FIELDS: ReadonlySet<string> = new Set([
  'broker',
  'brokerRef',
  'filter',
  'filters',
  'subscriber',
  'delivery',
]);

/** A Trigger (reference/knative.md 1.1, 1.3, 1.4, 1.5). */
export function validateTrigger(resource: unknown): FieldProblem[] {
  if (!isObject(resource)) return [ROOT_NOT_OBJECT(resource)];
  const problems = validateEnvelope(resource, expectKind('Trigger'));
  const spec = resource.spec;
  if (spec === undefined) return [...problems, problem('spec', REQUIRED)];
  if (!isObject(spec)) return [...problems, mustBeObject('spec', spec)];

  if (spec.brokerRef !== undefined) {
    problems.push(problem('spec.brokerRef', 'not supported, use spec.broker'));
    // spec.broker missing is then the same problem; report it once.
    if (spec.broker !== undefined) problems.push(...validateName(spec.broker, 'spec.broker'));
  } else {
    problems.push(...validateName(spec.broker, 'spec.broker'));
  }
  if (spec.filter !== undefined) problems.push(...validateLegacyFilter(spec.filter, 'spec.filter'));
  problems.push(...validateSpecFilters(spec.filters));
  problems.push(...validateDestination(spec.subscriber, 'spec.subscriber'));
  problems.push(...validateDeliverySpec(spec.delivery, 'spec.delivery'));
  problems.push(...unknownFields(spec, TRIGGER_SPEC_FIELDS, 'spec'));
  const order =
    isObject(resource.metadata) && isObject(resource.metadata.annotations)
      ? resource.metadata.annotations[DELIVERY_ORDER_ANNOTATION]
      : undefined;
  if (order !== undefined) {
    problems.push(
      ...oneOf(order, DELIVERY_ORDERINGS, `metadata.annotations[${DELIVERY_ORDER_ANNOTATION}]`),
    );
  }
  return problems;
}

/**
 * A source, generically: a known source kind, a `spec` object whose `sink` is a Destination (a
 * ref to kind Broker, or a uri) and whose optional `delivery` is a DeliverySpec. Kind-specific
 * spec fields are left to each adapter.
 */
export function validateSource(resource: unknown): FieldProblem[] {
  if (!isObject(resource)) return [ROOT_NOT_OBJECT(resource)];
  const problems = validateEnvelope(resource, (kind) => {
    if (kind === undefined) return [problem('kind', REQUIRED)];
    if (typeof kind === 'string' && SOURCE_KINDS.includes(kind)) return [];
    const shown = typeof kind === 'string' ? `"${kind}"` : describe(kind);
    return [
      problem('kind', `unknown source kind ${shown}; expected one of ${SOURCE_KINDS.join(', ')}`),
    ];
  });
  const spec = resource.spec;
  if (spec === undefined) return [...problems, problem('spec', REQUIRED)];
  if (!isObject(spec)) return [...problems, mustBeObject('spec', spec)];
  problems.push(...validateDestination(spec.sink, 'spec.sink', { allowBrokerRef: true }));
  problems.push(...validateDeliverySpec(spec.delivery, 'spec.delivery'));
  const kindSpec = typeof resource.kind === 'string' ? SOURCE_SPECS[resource.kind] : undefined;
  if (kindSpec !== undefined) {
    problems.push(...validateCeOverrides(spec.ceOverrides, 'spec.ceOverrides'));
    problems.push(...kindSpec.validate(spec, resource));
    problems.push(
      ...unknownFields(spec, new Set([...COMMON_SOURCE_FIELDS, ...kindSpec.fields]), 'spec'),
    );
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------
// Source kinds with an adapter: their own spec fields

const COMMON_SOURCE_FIELDS = ['sink', 'delivery', 'ceOverrides', 'serviceAccountName'];

/** Attributes a source sets itself; `ceOverrides.extensions` may not replace them. */
const CONTEXT_ATTRIBUTES: ReadonlySet<string> = new Set([
  'specversion',
  'id',
  'source',
  'type',
  'subject',
  'time',
  'datacontenttype',
  'dataschema',
  'data',
  'data_base64',
]);

/** Knative's CloudEventOverrides: `{extensions: {name: value}}` added to every event. */
function validateCeOverrides(value: unknown, field: string): FieldProblem[] {
  if (value === undefined) return [];
  if (!isObject(value)) return [mustBeObject(field, value)];
  const problems = unknownFields(value, new Set(['extensions']), field);
  if (value.extensions === undefined) return problems;
  const extensions = `${field}.extensions`;
  problems.push(
    ...validateAttributeMap(value.extensions, extensions, {
      requireEntries: false,
      allowEmptyValues: true,
    }),
  );
  if (isObject(value.extensions)) {
    for (const name of Object.keys(value.extensions)) {
      if (CONTEXT_ATTRIBUTES.has(name)) {
        problems.push(
          problem(
            fieldPath(extensions, name),
            `"${name}" is set by the source and cannot be overridden`,
          ),
        );
      }
    }
  }
  return problems;
}

const SECRET_FIELDS: ReadonlySet<string> = new Set(['value', 'env', 'secretKeyRef']);
const SECRET_KEY_REF_FIELDS: ReadonlySet<string> = new Set(['name', 'key', 'optional']);
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * A secret (DESIGN.md section 2): exactly one of `value` (the secret itself), `env` (an
 * environment variable of the server) and Knative's `secretKeyRef {name, key}` (the file
 * `<--secrets-dir>/<name>/<key>`, as Kubernetes mounts a secret).
 */
export function validateSecretRef(value: unknown, field: string): FieldProblem[] {
  if (value === undefined) return [];
  if (!isObject(value)) return [mustBeObject(field, value)];
  const given = Object.keys(value).filter((k) => SECRET_FIELDS.has(k));
  const problems = unknownFields(value, SECRET_FIELDS, field);
  if (given.length !== 1) {
    problems.push(problem(field, 'give exactly one of value, env and secretKeyRef'));
  }
  problems.push(
    ...(value.value === undefined ? [] : nonEmptyString(value.value, `${field}.value`)),
  );
  if (value.env !== undefined) {
    problems.push(...nonEmptyString(value.env, `${field}.env`));
    if (typeof value.env === 'string' && value.env !== '' && !ENV_NAME.test(value.env)) {
      problems.push(problem(`${field}.env`, `"${value.env}" is not an environment variable name`));
    }
  }
  const ref = value.secretKeyRef;
  if (ref !== undefined) {
    const refField = `${field}.secretKeyRef`;
    if (!isObject(ref)) {
      problems.push(mustBeObject(refField, ref));
    } else {
      problems.push(...validateName(ref.name, `${refField}.name`));
      problems.push(...nonEmptyString(ref.key, `${refField}.key`));
      if (typeof ref.key === 'string' && !/^[-._a-zA-Z0-9]+$/.test(ref.key)) {
        problems.push(problem(`${refField}.key`, 'must consist of letters, digits, -, _ and .'));
      }
      problems.push(...unknownFields(ref, SECRET_KEY_REF_FIELDS, refField));
    }
  }
  return problems;
}

function validateStringList(
  value: unknown,
  field: string,
  check: (item: string, field: string) => FieldProblem[] = () => [],
): FieldProblem[] {
  if (value === undefined) return [];
  if (!Array.isArray(value))
    return [problem(field, `must be a list of strings, got ${describe(value)}`)];
  return value.flatMap((item: unknown, i) =>
    typeof item === 'string' && item !== ''
      ? check(item, `${field}[${i}]`)
      : [problem(`${field}[${i}]`, `must be a non-empty string, got ${describe(item)}`)],
  );
}

const GITHUB_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9._-]*)$/;

/** Knative's GitHubSource spec (reference/knative.md 4.4). */
function validateGitHubSpec(spec: JsonObject): FieldProblem[] {
  const problems = nonEmptyString(spec.ownerAndRepository, 'spec.ownerAndRepository');
  const owner = spec.ownerAndRepository;
  if (typeof owner === 'string' && owner !== '') {
    const parts = owner.split('/');
    if (parts.length > 2 || !parts.every((p) => GITHUB_NAME.test(p))) {
      problems.push(
        problem(
          'spec.ownerAndRepository',
          `"${owner}" is not "owner/repository" or an organization name`,
        ),
      );
    }
  }
  problems.push(
    ...validateStringList(spec.eventTypes, 'spec.eventTypes', (item, field) =>
      /^[a-z0-9_]+$/.test(item)
        ? []
        : [
            problem(
              field,
              `"${item}" is not a GitHub webhook event name (such as push or pull_request)`,
            ),
          ],
    ),
  );
  problems.push(...validateSecretRef(spec.secretToken, 'spec.secretToken'));
  problems.push(...validateSecretRef(spec.accessToken, 'spec.accessToken'));
  if (spec.githubAPIURL !== undefined)
    problems.push(...validateHttpUrl(spec.githubAPIURL, 'spec.githubAPIURL'));
  if (spec.secure !== undefined && typeof spec.secure !== 'boolean') {
    problems.push(problem('spec.secure', `must be a boolean, got ${describe(spec.secure)}`));
  }
  return problems;
}

/** Knative's GitLabSource spec (reference/knative.md 4.5), plus the Standard Webhooks signing token. */
function validateGitLabSpec(spec: JsonObject): FieldProblem[] {
  const problems = validateHttpUrl(spec.projectUrl, 'spec.projectUrl');
  problems.push(
    ...validateStringList(spec.eventTypes, 'spec.eventTypes', (item, field) =>
      /^[a-z_]+_events$/.test(item)
        ? []
        : [problem(field, `"${item}" is not a GitLab webhook trigger (such as push_events)`)],
    ),
  );
  problems.push(...validateSecretRef(spec.secretToken, 'spec.secretToken'));
  problems.push(...validateSecretRef(spec.signingToken, 'spec.signingToken'));
  problems.push(...validateSecretRef(spec.accessToken, 'spec.accessToken'));
  if (spec.sslverify !== undefined && typeof spec.sslverify !== 'boolean') {
    problems.push(problem('spec.sslverify', `must be a boolean, got ${describe(spec.sslverify)}`));
  }
  return problems;
}

/** A list of `host:port` addresses; an item may hold several, separated by commas (as Knative's). */
function validateHostPorts(value: unknown, field: string, required: boolean): FieldProblem[] {
  if (value === undefined) return required ? [problem(field, REQUIRED)] : [];
  const problems = validateStringList(value, field, (item, itemField) =>
    item
      .split(',')
      .map((address) => address.trim())
      .every((address) => /^(\[[0-9a-fA-F:.]+\]|[^\s:/[\]]+):\d{1,5}$/.test(address))
      ? []
      : [problem(itemField, `"${item}" is not a list of host:port addresses`)],
  );
  if (problems.length === 0 && (value as unknown[]).length === 0) {
    problems.push(problem(field, 'must name at least one address'));
  }
  return problems;
}

function validateEnum(value: unknown, field: string, allowed: readonly string[]): FieldProblem[] {
  if (value === undefined || (typeof value === 'string' && allowed.includes(value))) return [];
  return [problem(field, `must be one of ${allowed.join(', ')}, got ${describe(value)}`)];
}

function validateBoolean(value: unknown, field: string): FieldProblem[] {
  return value === undefined || typeof value === 'boolean'
    ? []
    : [problem(field, `must be a boolean, got ${describe(value)}`)];
}

/** An object of secret refs (and booleans such as `enable`), with only the given fields. */
function validateSecretGroup(
  value: unknown,
  field: string,
  secrets: readonly string[],
  booleans: readonly string[] = [],
  others: readonly string[] = [],
): FieldProblem[] {
  if (value === undefined) return [];
  if (!isObject(value)) return [mustBeObject(field, value)];
  const problems = unknownFields(value, new Set([...secrets, ...booleans, ...others]), field);
  for (const name of secrets) problems.push(...validateSecretRef(value[name], `${field}.${name}`));
  for (const name of booleans) problems.push(...validateBoolean(value[name], `${field}.${name}`));
  return problems;
}

const KAFKA_TOPIC = /^[a-zA-Z0-9._-]{1,249}$/;
export const KAFKA_KEY_TYPE_LABEL = 'kafkasources.sources.knative.dev/key-type';
export const KAFKA_KEY_TYPES = ['string', 'int', 'float', 'byte-array'] as const;
export const KAFKA_SASL_TYPES: readonly string[] = ['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512'];

/** Knative's KafkaSource spec (reference/knative.md 4.6) and its key-type label. */
function validateKafkaSpec(spec: JsonObject, resource: JsonObject): FieldProblem[] {
  const problems = validateHostPorts(spec.bootstrapServers, 'spec.bootstrapServers', true);
  if (spec.topics === undefined) problems.push(problem('spec.topics', REQUIRED));
  else {
    const topicProblems = validateStringList(spec.topics, 'spec.topics', (item, field) =>
      KAFKA_TOPIC.test(item) && item !== '.' && item !== '..'
        ? []
        : [problem(field, `"${item}" is not a Kafka topic name (letters, digits, ., _ and -)`)],
    );
    if (topicProblems.length === 0 && (spec.topics as unknown[]).length === 0) {
      topicProblems.push(problem('spec.topics', 'must name at least one topic'));
    }
    problems.push(...topicProblems);
  }
  if (spec.consumerGroup !== undefined) {
    problems.push(...nonEmptyString(spec.consumerGroup, 'spec.consumerGroup'));
  }
  problems.push(...validateEnum(spec.initialOffset, 'spec.initialOffset', ['earliest', 'latest']));
  problems.push(...validateEnum(spec.ordering, 'spec.ordering', ['ordered', 'unordered']));
  problems.push(...validateInteger(spec.consumers, 'spec.consumers', 1));
  const net = spec.net;
  if (net !== undefined) {
    if (!isObject(net)) problems.push(mustBeObject('spec.net', net));
    else {
      problems.push(...unknownFields(net, new Set(['sasl', 'tls']), 'spec.net'));
      problems.push(
        ...validateSecretGroup(net.sasl, 'spec.net.sasl', ['user', 'password', 'type'], ['enable']),
      );
      problems.push(
        ...validateSecretGroup(net.tls, 'spec.net.tls', ['cert', 'key', 'caCert'], ['enable']),
      );
      const sasl = isObject(net.sasl) ? net.sasl : undefined;
      if (sasl?.enable === true && (sasl.user === undefined || sasl.password === undefined)) {
        problems.push(problem('spec.net.sasl', 'SASL needs a user and a password'));
      }
      const sasltype = sasl !== undefined && isObject(sasl.type) ? sasl.type.value : undefined;
      // REDACTED: a manifest read back; the stored value, checked when it was written, stays.
      if (
        typeof sasltype === 'string' &&
        sasltype !== REDACTED &&
        !KAFKA_SASL_TYPES.includes(sasltype.toUpperCase())
      ) {
        problems.push(
          problem(
            'spec.net.sasl.type.value',
            `must be one of ${KAFKA_SASL_TYPES.join(', ')}, got "${sasltype}"`,
          ),
        );
      }
    }
  }
  const labels = isObject(resource.metadata) ? resource.metadata.labels : undefined;
  const keyType = isObject(labels) ? labels[KAFKA_KEY_TYPE_LABEL] : undefined;
  if (keyType !== undefined) {
    problems.push(
      ...validateEnum(keyType, fieldPath('metadata.labels', KAFKA_KEY_TYPE_LABEL), KAFKA_KEY_TYPES),
    );
  }
  return problems;
}

/** The credentials of Alibaba Cloud's services (RocketMQ, MNS): an AccessKey pair and STS token. */
const ACCESS_KEYS = ['accessKey', 'secretKey', 'securityToken'];

/** The RocketMQSource spec (DESIGN.md section 2): the RocketMQ 5 proxy's gRPC endpoints. */
function validateRocketMQSpec(spec: JsonObject): FieldProblem[] {
  const problems = validateHostPorts(
    typeof spec.endpoints === 'string' ? spec.endpoints.split(';') : spec.endpoints,
    'spec.endpoints',
    true,
  );
  problems.push(...nonEmptyString(spec.topic, 'spec.topic'));
  if (
    typeof spec.topic === 'string' &&
    spec.topic !== '' &&
    !/^[%|a-zA-Z0-9_-]{1,127}$/.test(spec.topic)
  ) {
    problems.push(problem('spec.topic', `"${spec.topic}" is not a RocketMQ topic name`));
  }
  problems.push(...nonEmptyString(spec.consumerGroup, 'spec.consumerGroup'));
  if (
    typeof spec.consumerGroup === 'string' &&
    spec.consumerGroup !== '' &&
    !/^[%|a-zA-Z0-9_-]{1,255}$/.test(spec.consumerGroup)
  ) {
    problems.push(
      problem('spec.consumerGroup', `"${spec.consumerGroup}" is not a RocketMQ group name`),
    );
  }
  if (spec.tag !== undefined) problems.push(...nonEmptyString(spec.tag, 'spec.tag'));
  if (spec.namespace !== undefined && typeof spec.namespace !== 'string') {
    problems.push(problem('spec.namespace', `must be a string, got ${describe(spec.namespace)}`));
  }
  problems.push(...validateSecretGroup(spec.credentials, 'spec.credentials', ACCESS_KEYS));
  const credentials = isObject(spec.credentials) ? spec.credentials : undefined;
  if (
    credentials !== undefined &&
    (credentials.accessKey === undefined) !== (credentials.secretKey === undefined)
  ) {
    problems.push(problem('spec.credentials', 'give both accessKey and secretKey, or neither'));
  }
  problems.push(...validateBoolean(spec.tls, 'spec.tls'));
  problems.push(...validateDurationField(spec.invisibleDuration, 'spec.invisibleDuration', true));
  const invisible =
    typeof spec.invisibleDuration === 'string' ? parseDuration(spec.invisibleDuration) : undefined;
  if (
    invisible !== undefined &&
    invisible > 0 &&
    (invisible < ROCKETMQ_MIN_INVISIBLE_MS || invisible > ROCKETMQ_MAX_INVISIBLE_MS)
  ) {
    problems.push(
      problem(
        'spec.invisibleDuration',
        "must be between 10 seconds and 12 hours (the proxy's limits)",
      ),
    );
  }
  return problems;
}

/** `spec.filters`: a list of Subscriptions API filters (ANDed), as triggers and Knative's
 * ApiServerSource take them. Absent is valid. */
function validateSpecFilters(value: unknown): FieldProblem[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) {
    return [problem('spec.filters', `must be a list of filters, got ${describe(value)}`)];
  }
  return value.flatMap((filter: unknown, i) =>
    validateSubscriptionsFilter(filter, `spec.filters[${i}]`),
  );
}

/** An optional integer of at least `min` (and at most `max`). */
function validateInteger(
  value: unknown,
  field: string,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): FieldProblem[] {
  if (value === undefined) return [];
  if (Number.isInteger(value) && (value as number) >= min && (value as number) <= max) return [];
  const range = max === Number.MAX_SAFE_INTEGER ? `of at least ${min}` : `from ${min} to ${max}`;
  return [problem(field, `must be an integer ${range}, got ${describe(value)}`)];
}

/** MNS's queue names, and what one receive may ask for and wait (reference/sources.md 3.1). */
const MNS_QUEUE = /^[a-zA-Z][a-zA-Z0-9-]{0,255}$/;
export const MNS_MAX_WAIT_SECONDS = 30;
export const MNS_MAX_BATCH = 16;
const MNS_MAX_VISIBILITY_MS = 43_200_000;

/** The MnsSource spec (DESIGN.md section 2, docs/sources.md). */
function validateMnsSpec(spec: JsonObject): FieldProblem[] {
  const problems = nonEmptyString(spec.accountId, 'spec.accountId');
  if (spec.endpoint !== undefined) {
    const endpoint = validateHttpUrl(spec.endpoint, 'spec.endpoint');
    if (endpoint.length === 0) {
      const url = new URL(spec.endpoint as string);
      if (url.pathname !== '/' || url.search !== '' || (spec.endpoint as string).endsWith('/')) {
        endpoint.push(
          problem('spec.endpoint', 'must be scheme://host[:port], without a path or a slash'),
        );
      }
    }
    problems.push(...endpoint);
  }
  if (spec.region === undefined) {
    if (spec.endpoint === undefined) {
      problems.push(problem('spec.region', 'required when spec.endpoint is not given'));
    }
  } else {
    problems.push(...nonEmptyString(spec.region, 'spec.region'));
    if (typeof spec.region === 'string' && !/^[a-z0-9-]*$/.test(spec.region)) {
      problems.push(problem('spec.region', `"${spec.region}" is not a region id (cn-hangzhou)`));
    }
  }
  problems.push(...nonEmptyString(spec.queue, 'spec.queue'));
  if (typeof spec.queue === 'string' && spec.queue !== '' && !MNS_QUEUE.test(spec.queue)) {
    problems.push(
      problem('spec.queue', `"${spec.queue}" is not an MNS queue name (letters, digits and -)`),
    );
  }
  problems.push(...validateSecretGroup(spec.credentials, 'spec.credentials', ACCESS_KEYS));
  const credentials = isObject(spec.credentials) ? spec.credentials : undefined;
  if (credentials === undefined || credentials.accessKey === undefined) {
    problems.push(problem('spec.credentials.accessKey', REQUIRED));
  }
  if (credentials === undefined || credentials.secretKey === undefined) {
    problems.push(problem('spec.credentials.secretKey', REQUIRED));
  }
  problems.push(
    ...validateInteger(spec.waitSeconds, 'spec.waitSeconds', 0, MNS_MAX_WAIT_SECONDS),
    ...validateInteger(spec.batchSize, 'spec.batchSize', 1, MNS_MAX_BATCH),
    ...validateInteger(spec.concurrency, 'spec.concurrency', 1, 1_000),
    ...validateInteger(spec.maxDequeueCount, 'spec.maxDequeueCount', 1),
    ...validateBoolean(spec.base64Decode, 'spec.base64Decode'),
    ...validateDurationField(spec.visibilityTimeout, 'spec.visibilityTimeout', true),
  );
  const visibility =
    typeof spec.visibilityTimeout === 'string' ? parseDuration(spec.visibilityTimeout) : undefined;
  if (visibility !== undefined && (visibility < 1_000 || visibility > MNS_MAX_VISIBILITY_MS)) {
    problems.push(
      problem('spec.visibilityTimeout', "must be between 1 second and 12 hours (MNS's limits)"),
    );
  }
  const delivery = isObject(spec.delivery) ? spec.delivery : undefined;
  if (spec.maxDequeueCount !== undefined && delivery?.deadLetterSink === undefined) {
    problems.push(
      problem(
        'spec.maxDequeueCount',
        'needs spec.delivery.deadLetterSink, where messages handed out more often go',
      ),
    );
  }
  return problems;
}

const LABEL_OPERATORS = ['In', 'NotIn', 'Exists', 'DoesNotExist'] as const;
const KUBE_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_KEY = /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;

/** A Kubernetes LabelSelector: `matchLabels` and `matchExpressions`. */
function validateLabelSelector(value: unknown, field: string): FieldProblem[] {
  if (value === undefined) return [];
  if (!isObject(value)) return [mustBeObject(field, value)];
  const problems = unknownFields(value, new Set(['matchLabels', 'matchExpressions']), field);
  const labels = value.matchLabels;
  if (labels !== undefined) {
    if (!isObject(labels)) problems.push(mustBeObject(`${field}.matchLabels`, labels));
    else {
      for (const [key, v] of Object.entries(labels)) {
        const at = fieldPath(`${field}.matchLabels`, key);
        if (!LABEL_KEY.test(key)) problems.push(problem(at, `"${key}" is not a label key`));
        if (typeof v !== 'string' || !LABEL_VALUE.test(v) || v.length > 63) {
          problems.push(problem(at, `must be a label value, got ${describe(v)}`));
        }
      }
    }
  }
  const expressions = value.matchExpressions;
  if (expressions !== undefined) {
    if (!Array.isArray(expressions)) {
      problems.push(problem(`${field}.matchExpressions`, 'must be an array'));
    } else {
      expressions.forEach((expression: unknown, i) => {
        const at = `${field}.matchExpressions[${i}]`;
        if (!isObject(expression)) return problems.push(mustBeObject(at, expression));
        problems.push(...unknownFields(expression, new Set(['key', 'operator', 'values']), at));
        if (typeof expression.key !== 'string' || !LABEL_KEY.test(expression.key)) {
          problems.push(
            problem(`${at}.key`, `must be a label key, got ${describe(expression.key)}`),
          );
        }
        problems.push(...validateEnum(expression.operator, `${at}.operator`, LABEL_OPERATORS));
        if (expression.operator === undefined) problems.push(problem(`${at}.operator`, REQUIRED));
        const withValues = expression.operator === 'In' || expression.operator === 'NotIn';
        if (expression.values !== undefined || withValues) {
          const values = validateStringList(expression.values, `${at}.values`, (item, f) =>
            LABEL_VALUE.test(item) ? [] : [problem(f, `"${item}" is not a label value`)],
          );
          if (withValues && values.length === 0 && !(expression.values as unknown[]).length) {
            values.push(problem(`${at}.values`, `${String(expression.operator)} needs values`));
          }
          if (!withValues && (expression.values as unknown[] | undefined)?.length) {
            values.push(problem(`${at}.values`, `${String(expression.operator)} takes no values`));
          }
          problems.push(...values);
        }
        return undefined;
      });
    }
  }
  return problems;
}

/** Knative's ApiServerSource spec (reference/knative.md 4.1) and how to reach the cluster. */
function validateApiServerSpec(spec: JsonObject): FieldProblem[] {
  const problems: FieldProblem[] = [];
  const resources = spec.resources;
  if (resources === undefined) problems.push(problem('spec.resources', REQUIRED));
  else if (!Array.isArray(resources)) problems.push(problem('spec.resources', 'must be an array'));
  else if (resources.length === 0) {
    problems.push(problem('spec.resources', 'must name at least one resource'));
  } else {
    resources.forEach((resource: unknown, i) => {
      const at = `spec.resources[${i}]`;
      if (!isObject(resource)) return problems.push(mustBeObject(at, resource));
      problems.push(
        ...unknownFields(resource, new Set(['apiVersion', 'kind', 'selector']), at),
        ...nonEmptyString(resource.apiVersion, `${at}.apiVersion`),
        ...nonEmptyString(resource.kind, `${at}.kind`),
        ...validateLabelSelector(resource.selector, `${at}.selector`),
      );
      return undefined;
    });
  }
  problems.push(...validateEnum(spec.mode, 'spec.mode', ['Reference', 'Resource']));
  if (spec.owner !== undefined) {
    if (!isObject(spec.owner)) problems.push(mustBeObject('spec.owner', spec.owner));
    else {
      problems.push(
        ...unknownFields(spec.owner, new Set(['apiVersion', 'kind']), 'spec.owner'),
        ...optionalString(spec.owner.apiVersion, 'spec.owner.apiVersion'),
        ...optionalString(spec.owner.kind, 'spec.owner.kind'),
      );
    }
  }
  if (spec.namespaces !== undefined) {
    problems.push(
      ...validateStringList(spec.namespaces, 'spec.namespaces', (item, f) =>
        KUBE_NAME.test(item) && item.length <= 63
          ? []
          : [problem(f, `"${item}" is not a Kubernetes namespace name`)],
      ),
    );
    if (spec.namespaceSelector !== undefined) {
      problems.push(problem('spec.namespaces', 'give namespaces or namespaceSelector, not both'));
    }
  }
  problems.push(...validateLabelSelector(spec.namespaceSelector, 'spec.namespaceSelector'));
  problems.push(...validateSpecFilters(spec.filters));
  const cluster = spec.cluster;
  if (cluster !== undefined) {
    if (!isObject(cluster)) problems.push(mustBeObject('spec.cluster', cluster));
    else {
      problems.push(
        ...validateSecretGroup(
          cluster,
          'spec.cluster',
          ['token', 'caCert'],
          ['inCluster', 'insecureSkipTLSVerify'],
          ['kubeconfig', 'context', 'server'],
        ),
        ...optionalString(cluster.kubeconfig, 'spec.cluster.kubeconfig'),
        ...optionalString(cluster.context, 'spec.cluster.context'),
      );
      if (cluster.server !== undefined) {
        problems.push(...validateHttpUrl(cluster.server, 'spec.cluster.server'));
        if (cluster.kubeconfig !== undefined || cluster.inCluster === true) {
          problems.push(
            problem('spec.cluster', 'give one of server, kubeconfig and inCluster, not several'),
          );
        }
      } else if (cluster.token !== undefined || cluster.caCert !== undefined) {
        problems.push(problem('spec.cluster.server', 'required with a token or a caCert'));
      }
      if (cluster.kubeconfig !== undefined && cluster.inCluster === true) {
        problems.push(problem('spec.cluster', 'give kubeconfig or inCluster, not both'));
      }
    }
  }
  return problems;
}

/** The RocketMQ 5 proxy's bounds of a received message's invisible duration. */
export const ROCKETMQ_MIN_INVISIBLE_MS = 10_000;
export const ROCKETMQ_MAX_INVISIBLE_MS = 12 * 60 * 60 * 1000;

const SOURCE_SPECS: Record<
  string,
  {
    fields: readonly string[];
    validate: (spec: JsonObject, resource: JsonObject) => FieldProblem[];
  }
> = {
  GitHubSource: {
    fields: [
      'ownerAndRepository',
      'eventTypes',
      'secretToken',
      'accessToken',
      'githubAPIURL',
      'secure',
    ],
    validate: validateGitHubSpec,
  },
  GitLabSource: {
    fields: ['projectUrl', 'eventTypes', 'secretToken', 'signingToken', 'accessToken', 'sslverify'],
    validate: validateGitLabSpec,
  },
  KafkaSource: {
    fields: [
      'bootstrapServers',
      'topics',
      'consumerGroup',
      'consumers',
      'initialOffset',
      'ordering',
      'net',
    ],
    validate: validateKafkaSpec,
  },
  RocketMQSource: {
    fields: [
      'endpoints',
      'topic',
      'consumerGroup',
      'tag',
      'namespace',
      'credentials',
      'tls',
      'invisibleDuration',
    ],
    validate: validateRocketMQSpec,
  },
  ApiServerSource: {
    fields: ['resources', 'owner', 'mode', 'namespaces', 'namespaceSelector', 'filters', 'cluster'],
    validate: validateApiServerSpec,
  },
  MnsSource: {
    fields: [
      'endpoint',
      'accountId',
      'region',
      'queue',
      'credentials',
      'waitSeconds',
      'batchSize',
      'concurrency',
      'visibilityTimeout',
      'maxDequeueCount',
      'base64Decode',
    ],
    validate: validateMnsSpec,
  },
};
