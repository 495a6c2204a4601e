/**
 * Server configuration: one table of options drives the CLI flags, the TRIBUTARY_* environment
 * variables, the YAML config file keys, `--help`, and validation. The result is validated once at
 * start and frozen; nothing reads process.env after that (DESIGN.md section 8).
 *
 * Precedence, highest first: command-line flag, environment variable, config file, default.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { TributaryError, type FieldProblem } from './core/errors.js';
import { parseDuration } from './core/duration.js';

export const BACKENDS = ['embedded'] as const;
export type BackendName = (typeof BACKENDS)[number];
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface Config {
  readonly port: number;
  readonly host: string;
  readonly dataDir: string;
  readonly backend: BackendName;
  /** Largest request body the ingress accepts, in bytes. */
  readonly maxEventSize: number;
  /** Largest size of the embedded database in bytes; 0: no limit. */
  readonly maxStoreSize: number;
  /** How long a shutdown waits for in-flight deliveries, in ms. */
  readonly shutdownTimeout: number;
  /** Deliveries in flight per trigger. */
  readonly triggerConcurrency: number;
  /** Hops an event may take (knativebrokerttl given to events that arrive without one). */
  readonly maxTtl: number;
  /** Per-attempt delivery timeout when a delivery spec sets none, in ms. */
  readonly deliveryTimeout: number;
  /** How long delivered events are kept for replay, in ms. */
  readonly retention: number;
  readonly logLevel: LogLevel;
}

type Kind = 'port' | 'string' | 'backend' | 'size' | 'duration' | 'count' | 'logLevel';

interface OptionSpec {
  readonly key: keyof Config;
  readonly flag: string;
  readonly kind: Kind;
  /** Smallest value of a size option (default 1KiB); 0 allows 0 to mean "no limit". */
  readonly min?: number;
  readonly default: string;
  readonly help: string;
}

export const OPTIONS: readonly OptionSpec[] = [
  {
    key: 'port',
    flag: 'port',
    kind: 'port',
    default: '8080',
    help: 'TCP port to listen on (0 picks a free one).',
  },
  {
    key: 'host',
    flag: 'host',
    kind: 'string',
    default: '127.0.0.1',
    help: 'Address to listen on. Use 0.0.0.0 to accept connections from other machines.',
  },
  {
    key: 'dataDir',
    flag: 'data-dir',
    kind: 'string',
    default: './data',
    help: 'Directory of the embedded backend (its SQLite database and lock file).',
  },
  {
    key: 'backend',
    flag: 'backend',
    kind: 'backend',
    default: 'embedded',
    help: `Where events and resources are kept: ${BACKENDS.join(', ')}.`,
  },
  {
    key: 'maxEventSize',
    flag: 'max-event-size',
    kind: 'size',
    default: '1MiB',
    help: 'Largest request the ingress accepts (bytes, or with KiB/MiB); larger ones get 413.',
  },
  {
    key: 'maxStoreSize',
    flag: 'max-store-size',
    kind: 'size',
    min: 0,
    default: '0',
    help: 'Largest size of the embedded database (0: no limit); when full, the ingress answers 503.',
  },
  {
    key: 'shutdownTimeout',
    flag: 'shutdown-timeout',
    kind: 'duration',
    default: '30s',
    help: 'On SIGTERM/SIGINT, how long to wait for in-flight deliveries (e.g. 30s, PT30S).',
  },
  {
    key: 'triggerConcurrency',
    flag: 'trigger-concurrency',
    kind: 'count',
    default: '100',
    help: 'Deliveries in flight at once per trigger.',
  },
  {
    key: 'maxTtl',
    flag: 'max-ttl',
    kind: 'count',
    default: '255',
    help: 'Hops an event may take through replies (knativebrokerttl); an event with none left gets 400.',
  },
  {
    key: 'deliveryTimeout',
    flag: 'delivery-timeout',
    kind: 'duration',
    default: '30s',
    help: 'Timeout of one delivery attempt when the delivery spec sets none.',
  },
  {
    key: 'retention',
    flag: 'retention',
    kind: 'duration',
    default: '24h',
    help: 'How long events are kept after every trigger is done with them (for replay).',
  },
  {
    key: 'logLevel',
    flag: 'log-level',
    kind: 'logLevel',
    default: 'info',
    help: `Log level: ${LOG_LEVELS.join(', ')}.`,
  },
];

/** Environment variable of an option: --data-dir -> TRIBUTARY_DATA_DIR. */
export function envName(flag: string): string {
  return `TRIBUTARY_${flag.toUpperCase().replaceAll('-', '_')}`;
}

const DECIMAL = /^\d+$/;
const SIZE = /^(\d+)\s*(B|KiB|MiB|GiB|KB|MB|GB)?$/i;
const SIZE_UNITS: Record<string, number> = {
  b: 1,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  kb: 1000,
  mb: 1000 ** 2,
  gb: 1000 ** 3,
};
const SHORT_DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/;
const SHORT_UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/** Parses durations as `500ms`, `30s`, `5m`, `24h`, `7d`, or ISO-8601 (`PT30S`). */
export function parseHumanDuration(text: string): number | undefined {
  const short = SHORT_DURATION.exec(text.trim());
  if (short) return Math.round(Number(short[1]) * (SHORT_UNITS[short[2]!] ?? 1));
  return parseDuration(text.trim());
}

function convert(spec: OptionSpec, raw: unknown): { value?: unknown; problem?: string } {
  const text = typeof raw === 'number' ? String(raw) : raw;
  if (typeof text !== 'string') return { problem: 'must be a string or a number' };
  switch (spec.kind) {
    case 'port': {
      const n = DECIMAL.test(text.trim()) ? Number(text) : NaN;
      return Number.isInteger(n) && n >= 0 && n <= 65535
        ? { value: n }
        : { problem: `"${text}" is not a port number (0-65535)` };
    }
    case 'count': {
      const n = DECIMAL.test(text.trim()) ? Number(text) : NaN;
      return Number.isInteger(n) && n >= 1 && n <= 100_000
        ? { value: n }
        : { problem: `"${text}" is not a whole number between 1 and 100000` };
    }
    case 'size': {
      const m = SIZE.exec(text.trim());
      const n = m ? Number(m[1]) * (SIZE_UNITS[(m[2] ?? 'b').toLowerCase()] ?? 1) : NaN;
      const min = spec.min ?? 1024;
      return Number.isSafeInteger(n) && (n >= 1024 || (min === 0 && n === 0))
        ? { value: n }
        : {
            problem: `"${text}" is not a size of at least 1KiB${min === 0 ? ' (or 0)' : ''} (e.g. 1048576, 512KiB, 1MiB)`,
          };
    }
    case 'duration': {
      const ms = parseHumanDuration(text);
      return ms !== undefined && ms > 0
        ? { value: ms }
        : { problem: `"${text}" is not a positive duration (e.g. 500ms, 30s, 5m, PT30S)` };
    }
    case 'backend':
      return (BACKENDS as readonly string[]).includes(text)
        ? { value: text }
        : { problem: `"${text}" is not a backend; choose one of ${BACKENDS.join(', ')}` };
    case 'logLevel':
      return (LOG_LEVELS as readonly string[]).includes(text)
        ? { value: text }
        : { problem: `"${text}" is not a log level; choose one of ${LOG_LEVELS.join(', ')}` };
    case 'string':
      return text.trim() === '' ? { problem: 'must not be empty' } : { value: text };
  }
}

export interface ConfigSources {
  /** Parsed command-line values by flag name (strings). */
  readonly flags: Readonly<Record<string, string | undefined>>;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Path of a YAML config file, from --config or TRIBUTARY_CONFIG. */
  readonly configFile?: string;
}

function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new TributaryError(
      'CONFIG_INVALID',
      `Cannot read config file ${path}: ${(error as Error).message}`,
    );
  }
  let parsed: unknown;
  try {
    parsed = parseYaml(text);
  } catch (error) {
    throw new TributaryError(
      'CONFIG_INVALID',
      `Config file ${path} is not valid YAML: ${(error as Error).message}`,
    );
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new TributaryError(
      'CONFIG_INVALID',
      `Config file ${path} must hold a mapping of option names to values`,
    );
  }
  return parsed as Record<string, unknown>;
}

/** Builds the frozen configuration; throws CONFIG_INVALID listing every problem. */
export function loadConfig(sources: ConfigSources): Config {
  const file = sources.configFile === undefined ? {} : readConfigFile(sources.configFile);
  const problems: FieldProblem[] = [];
  const known = new Set(OPTIONS.map((o) => o.key as string));
  for (const key of Object.keys(file)) {
    if (!known.has(key)) problems.push({ field: `config file: ${key}`, message: 'unknown option' });
  }
  const result: Record<string, unknown> = {};
  for (const spec of OPTIONS) {
    const env = envName(spec.flag);
    const candidates: [string, unknown][] = [
      [`--${spec.flag}`, sources.flags[spec.flag]],
      // An empty variable (TRIBUTARY_PORT=) counts as not set, as shells and compose files use it.
      [env, sources.env[env] === '' ? undefined : sources.env[env]],
      [`config file: ${spec.key}`, file[spec.key]],
      ['default', spec.default],
    ];
    const [field, raw] = candidates.find(([, value]) => value !== undefined && value !== null)!;
    const { value, problem } = convert(spec, raw);
    if (problem !== undefined) problems.push({ field, message: problem });
    else result[spec.key] = value;
  }
  if (problems.length > 0) {
    const detail = problems.map((p) => `${p.field}: ${p.message}`).join('\n  ');
    throw new TributaryError('CONFIG_INVALID', `Invalid configuration:\n  ${detail}`, { problems });
  }
  return Object.freeze(result as unknown as Config);
}
