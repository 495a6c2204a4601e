/**
 * Loads the CESQL TCK (cloudevents/spec `cesql/cesql_tck/*.yaml`, format in its README.md).
 *
 * YAML is read with the `yaml` package's default YAML 1.2 core schema, so an unquoted timestamp
 * stays the string it was written as (a YAML 1.1 loader would turn it into a Date).
 */

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import type { AttributeValue, CloudEvent } from '../../src/core/event.js';
import type { CesqlErrorKind, CesqlValue } from '../../src/core/cesql/index.js';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** $CESQL_TCK_DIR, else `../shared/conformance/cesql-tck` beside the repository. */
export function tckDirectory(): string {
  const fromEnv = process.env.CESQL_TCK_DIR;
  if (fromEnv !== undefined && fromEnv !== '') return resolve(fromEnv);
  return resolve(REPO_ROOT, '../shared/conformance/cesql-tck');
}

export interface TckCase {
  readonly name: string;
  /** As a string: some expressions load as YAML booleans or numbers (`TRUE`, `0`, `-10`). */
  readonly expression: string;
  readonly result?: CesqlValue;
  readonly error?: CesqlErrorKind;
  readonly event: CloudEvent;
}

export interface TckFile {
  readonly file: string;
  readonly name: string;
  readonly cases: readonly TckCase[];
}

const ERROR_KINDS: ReadonlySet<string> = new Set<CesqlErrorKind>([
  'parse',
  'math',
  'cast',
  'missingFunction',
  'functionEvaluation',
  'missingAttribute',
  'generic',
]);

/** "Any valid event" for cases without `event`: the required attributes only. */
const MINIMAL_EVENT: Readonly<Record<string, AttributeValue>> = {
  specversion: '1.0',
  id: 'tck-event-1',
  source: 'https://tributary.test/cesql-tck',
  type: 'io.tributary.test.cesql',
};

function attributeValue(where: string, name: string, value: unknown): AttributeValue {
  if (typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return value;
  throw new Error(`${where}: attribute ${name} has an unsupported value ${JSON.stringify(value)}`);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The input event: `event` as given, else the minimal event with `eventOverrides`; native JSON types kept. */
function buildEvent(where: string, raw: Record<string, unknown>): CloudEvent {
  const attributes: Record<string, AttributeValue> = {};
  let data: CloudEvent['data'];
  const source = isRecord(raw.event) ? raw.event : { ...MINIMAL_EVENT, ...toRecord(raw) };
  for (const [name, value] of Object.entries(source)) {
    if (name === 'data') data = { kind: 'json', text: JSON.stringify(value) };
    else if (name !== 'data_base64') attributes[name] = attributeValue(where, name, value);
  }
  return data === undefined ? { attributes } : { attributes, data };
}

function toRecord(raw: Record<string, unknown>): Record<string, unknown> {
  if (raw.eventOverrides === undefined) return {};
  if (!isRecord(raw.eventOverrides)) throw new Error('eventOverrides must be a mapping');
  return raw.eventOverrides;
}

function scalarText(value: unknown, what: string): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  throw new Error(`${what} must be a string, a number or a boolean`);
}

function loadCase(file: string, raw: unknown, index: number): TckCase {
  const where = `${file} tests[${index}]`;
  if (!isRecord(raw)) throw new Error(`${where}: not a mapping`);
  const { result, error } = raw;
  // Names and expressions load as YAML scalars: `name: TRUE` is a boolean, `expression: -10` a number.
  const name = scalarText(raw.name, `${where}: name`);
  const expression = scalarText(raw.expression, `${where} (${name}): expression`);
  if (result !== undefined && !['boolean', 'number', 'string'].includes(typeof result)) {
    throw new Error(`${where} (${name}): result must be a boolean, an integer or a string`);
  }
  if (error !== undefined && (typeof error !== 'string' || !ERROR_KINDS.has(error))) {
    throw new Error(`${where} (${name}): unknown error kind ${JSON.stringify(error)}`);
  }
  return {
    name,
    expression,
    ...(result === undefined ? {} : { result: result as CesqlValue }),
    ...(error === undefined ? {} : { error: error as CesqlErrorKind }),
    event: buildEvent(`${where} (${name})`, raw),
  };
}

/** Every `*.yaml` file of the folder, sorted by name. */
export function loadTck(directory: string): TckFile[] {
  return readdirSync(directory)
    .filter((file) => file.endsWith('.yaml') || file.endsWith('.yml'))
    .sort()
    .map((file) => {
      const doc: unknown = parse(readFileSync(join(directory, file), 'utf8'));
      if (!isRecord(doc) || !Array.isArray(doc.tests)) {
        throw new Error(`${file}: expected a mapping with a tests list`);
      }
      const tests: unknown[] = doc.tests;
      return {
        file,
        name: typeof doc.name === 'string' ? doc.name : file,
        cases: tests.map((raw, i) => loadCase(file, raw, i)),
      };
    });
}

export function tckExists(directory: string): boolean {
  return existsSync(directory);
}
