/**
 * The CloudEvents Subscriptions API (reference/cloudevents.md section 7) mapped onto Triggers: a
 * Subscription is stored as a normal Trigger of a broker, labelled with its id, and a Subscription
 * read back is derived from that Trigger. Pure: no I/O.
 *
 * Mapping (a Subscription in namespace `ns` with id `id` is the Trigger `ns/id`):
 * - `config.broker` -> `spec.broker` (default: the namespace's `default` broker);
 * - `source` -> a leading filter `{exact: {source}}`;
 * - `types` -> a filter `{exact: {type}}` for one type, `{any: [{exact: {type}}, ...]}` for more;
 * - `filters` -> the rest of `spec.filters`, `sql` renamed `cesql` (the trigger's dialect name);
 * - `sink` -> `spec.subscriber.uri`; `protocol` must be `HTTP`.
 * `source` and `types` are also kept as annotations so that a read gives them back as given; if
 * the Trigger's filters were edited so that they no longer start with what the annotations say,
 * the read shows every filter under `filters` and no `source` or `types` (same meaning).
 */
import { isUriReference } from '../codec/index.js';
import type { FieldProblem } from '../errors.js';
import type { SubscriptionsFilter, Trigger } from './types.js';
import { DEFAULT_BROKER } from './types.js';
import { validateDestination, validateName, validateSubscriptionsFilter } from './validate.js';

/** The label every Trigger made by the Subscriptions API carries; its value is the subscription id. */
export const SUBSCRIPTION_ID_LABEL = 'subscriptions.cloudevents.io/id';
/** The subscription's `source`, as given. */
export const SUBSCRIPTION_SOURCE_ANNOTATION = 'subscriptions.cloudevents.io/source';
/** The subscription's `types`, as a JSON array. */
export const SUBSCRIPTION_TYPES_ANNOTATION = 'subscriptions.cloudevents.io/types';

/** The protocols the specification names; Tributary delivers over HTTP only. */
export const SPEC_PROTOCOLS: readonly string[] = [
  'HTTP',
  'AMQP',
  'MQTT3',
  'MQTT5',
  'KAFKA',
  'NATS',
];

/** A filter as the Subscriptions API writes it: the CESQL dialect is called `sql`. */
export interface WireFilter {
  exact?: Record<string, string>;
  prefix?: Record<string, string>;
  suffix?: Record<string, string>;
  all?: WireFilter[];
  any?: WireFilter[];
  not?: WireFilter;
  sql?: string;
}

/** A Subscription as the API returns it. */
export interface Subscription {
  id: string;
  source?: string;
  types?: string[];
  config: { broker: string };
  filters?: WireFilter[];
  sink: string;
  protocol: 'HTTP';
}

const FIELDS: ReadonlySet<string> = new Set([
  'id',
  'source',
  'types',
  'config',
  'filters',
  'sink',
  'sinkcredential',
  'protocol',
  'protocolsettings',
]);
const CONFIG_FIELDS: ReadonlySet<string> = new Set(['broker']);

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

const describe = (value: unknown): string =>
  value === null ? 'null' : Array.isArray(value) ? 'a list' : typeof value;

/**
 * A subscription filter with the `sql` dialect renamed `cesql` at every level; `renamed` collects
 * the field paths where that happened, so that problems can be reported with the name the client
 * used.
 */
function toTriggerFilter(filter: unknown, field: string, renamed: Map<string, string>): unknown {
  if (!isObject(filter)) return filter;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(filter)) {
    if (key === 'sql' && !('cesql' in filter)) {
      out.cesql = value;
      renamed.set(`${field}.cesql`, `${field}.sql`);
    } else if ((key === 'all' || key === 'any') && Array.isArray(value)) {
      out[key] = value.map((f, i) => toTriggerFilter(f, `${field}.${key}[${i}]`, renamed));
    } else if (key === 'not') {
      out[key] = toTriggerFilter(value, `${field}.not`, renamed);
    } else {
      out[key] = value;
    }
  }
  return out;
}

/** The API's form of a trigger filter: `cesql` is called `sql`. */
function toWireFilter(filter: SubscriptionsFilter): WireFilter {
  if (filter.cesql !== undefined) return { sql: filter.cesql };
  if (filter.all !== undefined) return { all: filter.all.map(toWireFilter) };
  if (filter.any !== undefined) return { any: filter.any.map(toWireFilter) };
  if (filter.not !== undefined) return { not: toWireFilter(filter.not) };
  return { ...filter };
}

function typesFilter(types: readonly string[]): SubscriptionsFilter {
  return types.length === 1
    ? { exact: { type: types[0]! } }
    : { any: types.map((type) => ({ exact: { type } })) };
}

export interface MappedSubscription {
  readonly trigger?: Trigger;
  readonly problems: FieldProblem[];
}

/**
 * Checks a Subscription request body and maps it to the Trigger `namespace/id`; every problem is
 * named by its field path in the body (`filters[1].prefix`, `protocol`). `idInUrl` says the id
 * comes from the URL (PUT), where a body `id` must equal it; on create a body `id` is ignored,
 * as the specification requires.
 */
export function subscriptionToTrigger(
  body: unknown,
  namespace: string,
  id: string,
  idInUrl: boolean,
): MappedSubscription {
  if (!isObject(body)) {
    return { problems: [{ field: 'body', message: `must be an object, got ${describe(body)}` }] };
  }
  const problems: FieldProblem[] = [];
  const add = (field: string, message: string): void => {
    problems.push({ field, message });
  };

  for (const key of Object.keys(body)) {
    if (!FIELDS.has(key)) {
      add(
        key,
        key === 'filter'
          ? 'unknown field; the list of filters is called "filters"'
          : 'unknown field of a Subscription',
      );
    }
  }

  if (idInUrl) {
    problems.push(...validateName(id, 'id'));
    if (body.id !== undefined && body.id !== id) {
      add('id', `must be "${id}", the id in the URL`);
    }
  }

  // source: a URI-reference, all delivered events must carry it.
  const source = body.source;
  if (source !== undefined) {
    if (typeof source !== 'string' || source === '') {
      add('source', `must be a non-empty URI-reference, got ${describe(source)}`);
    } else if (!isUriReference(source)) {
      add('source', `"${source}" is not a URI-reference`);
    }
  }

  // types: a non-empty list of non-empty strings.
  const types = body.types;
  if (types !== undefined) {
    if (!Array.isArray(types)) {
      add('types', `must be a list of event types, got ${describe(types)}`);
    } else if (types.length === 0) {
      add('types', 'must list at least one type, or be left out to receive every type');
    } else {
      types.forEach((type, i) => {
        if (typeof type !== 'string' || type === '') {
          add(`types[${i}]`, `must be a non-empty string, got ${describe(type)}`);
        }
      });
    }
  }

  // config: the one setting Tributary knows is `broker`.
  let broker = DEFAULT_BROKER;
  const config = body.config;
  if (config !== undefined) {
    if (!isObject(config)) {
      add('config', `must be a map of settings, got ${describe(config)}`);
    } else {
      for (const key of Object.keys(config)) {
        if (!CONFIG_FIELDS.has(key)) {
          add(`config.${key}`, 'unknown setting; the one Tributary knows is "broker"');
        }
      }
      if (config.broker !== undefined) {
        const brokerProblems = validateName(config.broker, 'config.broker');
        problems.push(...brokerProblems);
        if (brokerProblems.length === 0) broker = config.broker as string;
      }
    }
  }

  // filters: the Subscriptions API dialects, validated as a trigger's filters are.
  let filters: SubscriptionsFilter[] = [];
  if (body.filters !== undefined) {
    if (!Array.isArray(body.filters)) {
      add('filters', `must be a list of filters, got ${describe(body.filters)}`);
    } else {
      const renamed = new Map<string, string>();
      const translated = body.filters.map((f, i) => toTriggerFilter(f, `filters[${i}]`, renamed));
      translated.forEach((f, i) => {
        for (const p of validateSubscriptionsFilter(f, `filters[${i}]`)) {
          add(renamed.get(p.field) ?? p.field, p.message.replace('invalid CESQL', 'invalid SQL'));
        }
      });
      filters = translated as SubscriptionsFilter[];
    }
  }

  // sink: an absolute http(s) URL, since the protocol is HTTP.
  if (body.sink === undefined) {
    add('sink', 'required');
  } else {
    for (const p of validateDestination({ uri: body.sink }, 'sink')) {
      add('sink', p.message);
    }
  }

  if (body.sinkcredential !== undefined) {
    add(
      'sinkcredential',
      'not supported: Tributary cannot add credentials to deliveries; give a sink URL that needs none (or carries its own)',
    );
  }

  const protocol = body.protocol;
  if (protocol === undefined) {
    add('protocol', 'required; Tributary delivers over "HTTP"');
  } else if (protocol !== 'HTTP') {
    add(
      'protocol',
      typeof protocol === 'string' && SPEC_PROTOCOLS.includes(protocol)
        ? `"${protocol}" is not supported; Tributary delivers over "HTTP" only`
        : `unknown protocol ${typeof protocol === 'string' ? `"${protocol}"` : describe(protocol)}; use "HTTP"`,
    );
  }

  const settings = body.protocolsettings;
  if (settings !== undefined) {
    if (!isObject(settings)) {
      add('protocolsettings', `must be a map of settings, got ${describe(settings)}`);
    } else {
      for (const [key, value] of Object.entries(settings)) {
        if (key === 'method') {
          if (value !== 'POST') {
            add('protocolsettings.method', 'only "POST" is supported (the default)');
          }
        } else if (key === 'headers') {
          if (!isObject(value) || Object.keys(value).length > 0) {
            add(
              'protocolsettings.headers',
              'not supported: deliveries carry only the CloudEvent headers; leave headers out',
            );
          }
        } else {
          add(`protocolsettings.${key}`, 'unknown HTTP setting; HTTP knows "method" and "headers"');
        }
      }
    }
  }

  if (problems.length > 0) return { problems };

  const sourceText = source as string | undefined;
  const typeList = types as string[] | undefined;
  const generated: SubscriptionsFilter[] = [];
  if (sourceText !== undefined) generated.push({ exact: { source: sourceText } });
  if (typeList !== undefined) generated.push(typesFilter(typeList));
  const allFilters = [...generated, ...filters];

  const annotations: Record<string, string> = {};
  if (sourceText !== undefined) annotations[SUBSCRIPTION_SOURCE_ANNOTATION] = sourceText;
  if (typeList !== undefined) annotations[SUBSCRIPTION_TYPES_ANNOTATION] = JSON.stringify(typeList);

  const trigger: Trigger = {
    apiVersion: 'eventing.knative.dev/v1',
    kind: 'Trigger',
    metadata: {
      name: id,
      namespace,
      labels: { [SUBSCRIPTION_ID_LABEL]: id },
      ...(Object.keys(annotations).length > 0 ? { annotations } : {}),
    },
    spec: {
      broker,
      ...(allFilters.length > 0 ? { filters: allFilters } : {}),
      subscriber: { uri: body.sink as string },
    },
  };
  return { trigger, problems };
}

/** Whether a trigger was made by the Subscriptions API (it carries the id label). */
export function isSubscriptionTrigger(resource: {
  metadata: { labels?: Record<string, string> };
}): boolean {
  return resource.metadata.labels?.[SUBSCRIPTION_ID_LABEL] !== undefined;
}

/** Deep equality of JSON values (filters). */
function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) || Array.isArray(b)) {
    return (
      Array.isArray(a) &&
      Array.isArray(b) &&
      a.length === b.length &&
      a.every((x, i) => sameJson(x, b[i]))
    );
  }
  if (!isObject(a) || !isObject(b)) return false;
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => k in b && sameJson(a[k], b[k]));
}

function parseTypes(text: string | undefined): string[] | undefined {
  if (text === undefined) return undefined;
  try {
    const parsed: unknown = JSON.parse(text);
    return Array.isArray(parsed) &&
      parsed.length > 0 &&
      parsed.every((t) => typeof t === 'string' && t !== '')
      ? (parsed as string[])
      : undefined;
  } catch {
    return undefined;
  }
}

/** The Subscription a Trigger stands for (see the module comment). */
export function triggerToSubscription(trigger: Trigger): Subscription {
  const { metadata, spec } = trigger;
  let filters: SubscriptionsFilter[] = [...(spec.filters ?? [])];
  if (filters.length === 0 && spec.filter?.attributes !== undefined) {
    // A trigger edited to the older `filter.attributes`: "" there means present and non-empty.
    filters = Object.entries(spec.filter.attributes).map(([name, value]) =>
      value === '' ? { cesql: `EXISTS ${name} AND ${name} <> ''` } : { exact: { [name]: value } },
    );
  }
  const source = metadata.annotations?.[SUBSCRIPTION_SOURCE_ANNOTATION];
  const types = parseTypes(metadata.annotations?.[SUBSCRIPTION_TYPES_ANNOTATION]);
  const expected: SubscriptionsFilter[] = [];
  if (source !== undefined) expected.push({ exact: { source } });
  if (types !== undefined) expected.push(typesFilter(types));
  const leading = expected.length > 0 && expected.every((f, i) => sameJson(f, filters[i]));
  const rest = leading ? filters.slice(expected.length) : filters;
  return {
    id: metadata.labels?.[SUBSCRIPTION_ID_LABEL] ?? metadata.name,
    ...(leading && source !== undefined ? { source } : {}),
    ...(leading && types !== undefined ? { types } : {}),
    config: { broker: spec.broker },
    ...(rest.length > 0 ? { filters: rest.map(toWireFilter) } : {}),
    sink: spec.subscriber.uri ?? '',
    protocol: 'HTTP',
  };
}
