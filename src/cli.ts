#!/usr/bin/env node
/**
 * The `tributary` command. `tributary serve` starts the service; apply, get, delete, send and tail
 * talk to a running one (src/cli/commands.ts); `tributary --help` explains everything.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { CliError } from './cli/client.js';
import { clientCommandsHelp, COMMANDS, runClientCommand } from './cli/commands.js';
import { envName, loadConfig, OPTIONS } from './config.js';
import { isTributaryError } from './core/errors.js';

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

function help(): string {
  const width = Math.max(...OPTIONS.map((o) => o.flag.length)) + 10;
  const indent = ' '.repeat(width + 4);
  const lines = OPTIONS.map((o) => {
    const value = o.kind === 'boolean' ? '[<bool>]' : '<value>';
    const left = `  --${o.flag} ${value}`.padEnd(width + 4);
    const byDefault = o.default === undefined ? 'not set by default' : `default ${o.default}`;
    return `${left}${o.help}\n${indent}${byDefault}; env ${envName(o.flag)}`;
  });
  return `Tributary ${version()}: a CloudEvents event mesh (brokers, triggers, sources) in one service.

Usage:
  tributary serve [options]   start the service
  tributary <command> [args]  talk to a running service: apply, get, delete, send, tail
  tributary --help            show this help
  tributary --version         print the version

Options of serve (flag, then environment variable, then config file, then default):
${lines.join('\n')}
${'  --config <file>'.padEnd(width + 4)}YAML file with any of the options above, keyed by their
${indent}camelCase names (port, dataDir, natsUrl, ...).
${indent}env ${envName('config')}

The nats backend (--backend nats) keeps everything in NATS JetStream and writes nothing to
--data-dir; give at most one of user and password, token, NKey seed file or credentials file.

Endpoints (one port): POST /{namespace}/{broker} (CloudEvents ingress),
/v1/namespaces/{ns}/{brokers,triggers,sources}[/{name}] and POST /v1/apply (management),
GET /v1/namespaces/{ns}/brokers/{name}/events (live events, server-sent), GET /healthz and
/readyz. SIGTERM or SIGINT stops accepting, waits for in-flight deliveries
up to --shutdown-timeout, and closes the store.

${clientCommandsHelp()}`;
}

function fail(message: string): never {
  process.stderr.write(`tributary: ${message}\n`);
  process.exit(2);
}

/**
 * A boolean option given alone (`--nats-tls`, followed by nothing or by another option) means
 * true; `--nats-tls false` and `--nats-tls=no` still work, as every option takes a value.
 */
function withBooleanValues(args: readonly string[]): string[] {
  const booleans = new Set(OPTIONS.filter((o) => o.kind === 'boolean').map((o) => `--${o.flag}`));
  return args.map((arg, i) => {
    const next = args[i + 1];
    return booleans.has(arg) && (next === undefined || next.startsWith('-')) ? `${arg}=true` : arg;
  });
}

async function serve(args: string[]): Promise<void> {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = {
    config: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  };
  for (const o of OPTIONS) options[o.flag] = { type: 'string' };
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: withBooleanValues(args),
      options,
      allowPositionals: false,
      strict: true,
    });
  } catch (error) {
    fail(`${(error as Error).message}\nRun "tributary --help" for the options.`);
  }
  if (parsed.values.help === true) {
    process.stdout.write(help());
    return;
  }
  const flags = parsed.values as Record<string, string | undefined>;
  const configFile = flags.config ?? process.env[envName('config')];
  let config;
  try {
    config = loadConfig({ flags, env: process.env, configFile });
  } catch (error) {
    fail(isTributaryError(error) ? error.message : String(error));
  }
  // Loaded here, not at the top: the client commands start faster without the whole server.
  const { startServer } = await import('./server.js');
  let server: Awaited<ReturnType<typeof startServer>>;
  try {
    server = await startServer(config);
  } catch (error) {
    // Configuration found wrong only at start (a tokens file): the same exit code as a bad option.
    if (isTributaryError(error) && error.code === 'CONFIG_INVALID') fail(error.message);
    throw error;
  }
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    server.log.info({ signal }, 'shutting down');
    server.close().then(
      () => process.exit(0),
      (error: unknown) => {
        server.log.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(help());
    return;
  }
  if (command === '--version' || command === '-v') {
    process.stdout.write(`${version()}\n`);
    return;
  }
  if (command === 'serve') return serve(rest);
  // Client options may come before the command: `tributary -n shop get brokers`.
  const at = commandIndex(argv);
  const name = at === undefined ? undefined : argv[at];
  if (name !== undefined && Object.hasOwn(COMMANDS, name)) {
    return runClientCommand(name, [...argv.slice(0, at), ...argv.slice(at! + 1)]);
  }
  fail(`unknown command "${name ?? command}". Run "tributary --help".`);
}

/** Client options that take a value, so that the value is not taken for the command. */
const VALUE_OPTIONS = new Set(['--server', '--token', '--namespace', '-n', '--output', '-o']);

/** Where the command word is: the first argument that is neither an option nor an option's value. */
function commandIndex(argv: readonly string[]): number | undefined {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('-')) return i;
    if (VALUE_OPTIONS.has(arg)) i++;
  }
  return undefined;
}

/** A CliError prints its message (and details, indented) on stderr and exits with its code. */
function report(error: unknown): never {
  if (error instanceof CliError) {
    const prefix = error.exitCode === 2 ? 'tributary' : 'error';
    const lines = [`${prefix}: ${error.message}`, ...error.details.map((d) => `  ${d}`)];
    process.stderr.write(`${lines.join('\n')}\n`);
    process.exit(error.exitCode);
  }
  process.stderr.write(`tributary: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
}

main(process.argv.slice(2)).catch(report);
