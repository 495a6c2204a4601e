/**
 * What the client commands print: aligned tables for people (NAME, READY, REASON, AGE and a few
 * columns per kind), or the server's JSON as JSON or YAML for programs.
 */
import { stringify } from 'yaml';

export const OUTPUT_FORMATS = ['table', 'json', 'yaml'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

type Json = Record<string, unknown>;

function asObject(value: unknown): Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Json)
    : {};
}

function text(value: unknown): string {
  if (value === undefined || value === null) return '';
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** A value for JSON or YAML output, ending with a newline. */
export function formatDocument(value: unknown, format: 'json' | 'yaml'): string {
  return format === 'json' ? `${JSON.stringify(value, null, 2)}\n` : stringify(value);
}

/** Columns left-aligned, separated by three spaces, as kubectl does. */
export function formatTable(
  header: readonly string[],
  rows: readonly (readonly string[])[],
): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
      .join('   ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

/** An age as kubectl shows it: 42s, 5m, 3h, 12d (the largest whole unit). */
export function formatAge(timestamp: unknown, now = Date.now()): string {
  if (typeof timestamp !== 'string') return '<unknown>';
  const since = now - Date.parse(timestamp);
  if (!Number.isFinite(since)) return '<unknown>';
  const seconds = Math.max(0, Math.floor(since / 1000));
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 120) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours}h`;
  return `${Math.floor(hours / 24)}d`;
}

/** Where a Destination points: its URI, or `Kind/name` of its reference. */
function destination(value: unknown): string {
  const dest = asObject(value);
  if (typeof dest.uri === 'string' && dest.ref === undefined) return dest.uri;
  const ref = asObject(dest.ref);
  const target = typeof ref.name === 'string' ? `${text(ref.kind) || 'ref'}/${ref.name}` : '';
  return [target, text(dest.uri)].filter((s) => s !== '').join(' ');
}

interface KindColumns {
  /** False for records without conditions or creation time: no READY, REASON, AGE columns. */
  readonly common?: boolean;
  readonly header: readonly string[];
  cells(resource: Json): string[];
}

/** The columns each kind adds after NAME, READY, REASON, AGE. */
const EXTRA_COLUMNS: Record<string, KindColumns> = {
  brokers: {
    header: ['URL'],
    cells: (r) => [text(asObject(asObject(r.status).address).url)],
  },
  triggers: {
    header: ['BROKER', 'SUBSCRIBER'],
    cells: (r) => {
      const spec = asObject(r.spec);
      const status = asObject(r.status);
      const subscriber =
        typeof status.subscriberUri === 'string'
          ? status.subscriberUri
          : destination(spec.subscriber);
      return [text(spec.broker), subscriber];
    },
  },
  sources: {
    header: ['KIND', 'SINK'],
    cells: (r) => {
      const status = asObject(r.status);
      const sink =
        typeof status.sinkUri === 'string' ? status.sinkUri : destination(asObject(r.spec).sink);
      return [text(r.kind), sink];
    },
  },
  eventtypes: {
    common: false,
    header: ['TYPE', 'SOURCE', 'REFERENCE', 'COUNT', 'LAST SEEN'],
    cells: (r) => {
      const spec = asObject(r.spec);
      const status = asObject(r.status);
      const reference = asObject(spec.reference);
      return [
        text(spec.type),
        text(spec.source),
        reference.name === undefined ? '' : `${text(reference.kind)}/${text(reference.name)}`,
        text(status.count),
        status.lastSeen === undefined ? '' : `${formatAge(status.lastSeen)} ago`,
      ];
    },
  },
  subscriptions: {
    common: false,
    header: ['BROKER', 'SOURCE', 'TYPES', 'SINK'],
    cells: (r) => [
      text(asObject(r.config).broker),
      text(r.source),
      Array.isArray(r.types) ? r.types.map(text).join(',') : '',
      text(r.sink),
    ],
  },
};

function nameOf(resource: Json): string {
  const metadata = asObject(resource.metadata);
  for (const candidate of [metadata.name, resource.name, resource.id, resource.type]) {
    if (typeof candidate === 'string') return candidate;
  }
  return '';
}

function readyOf(resource: Json): { ready: string; reason: string } {
  const conditions = asObject(resource.status).conditions;
  if (!Array.isArray(conditions)) return { ready: '', reason: '' };
  const ready = conditions.map(asObject).find((c) => c.type === 'Ready');
  if (ready === undefined) return { ready: 'Unknown', reason: '' };
  return { ready: text(ready.status), reason: text(ready.reason) };
}

/** A table of resources of one collection (brokers, triggers, sources, or any other list). */
export function resourceTable(
  collection: string,
  items: readonly unknown[],
  now = Date.now(),
): string {
  const extra = EXTRA_COLUMNS[collection];
  const common = extra?.common !== false;
  const header = ['NAME', ...(common ? ['READY', 'REASON', 'AGE'] : []), ...(extra?.header ?? [])];
  const rows = items.map((item) => {
    const resource = asObject(item);
    const { ready, reason } = readyOf(resource);
    const created = asObject(resource.metadata).creationTimestamp;
    return [
      nameOf(resource),
      ...(common ? [ready, reason, created === undefined ? '' : formatAge(created, now)] : []),
      ...(extra?.cells(resource) ?? []),
    ];
  });
  return formatTable(header, rows);
}

/** The shortened data of an event for a one-line view. */
function shortData(event: Json, width = 80): string {
  let data: string;
  if (typeof event.data_base64 === 'string') {
    data = `<${Buffer.from(event.data_base64, 'base64').length} bytes>`;
  } else if (event.data === undefined) {
    data = '';
  } else {
    data = text(event.data).replace(/\s+/g, ' ');
  }
  return data.length > width ? `${data.slice(0, width - 1)}…` : data;
}

/** One line per event: time, type, source, id, then the data, shortened. */
export function eventLine(event: unknown): string {
  const e = asObject(event);
  return [text(e.time) || '-', text(e.type), text(e.source), text(e.id), shortData(e)]
    .filter((cell, i) => i < 4 || cell !== '')
    .join('  ');
}
