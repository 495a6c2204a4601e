/**
 * The client commands of the `tributary` CLI (apply, get, delete, send, tail) run as a user runs
 * them, as child processes, against a real server.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { Collector } from '../support/collector.js';
import { useServer } from '../support/e2e.js';
import { CLI } from '../support/server-process.js';
import { tempDir } from '../support/temp-dir.js';

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

const fixture = useServer();

/** Runs `tributary ...args` against the test server (unless --server says otherwise). */
function cli(args: string[], options: { stdin?: string; env?: Record<string, string> } = {}) {
  return new Promise<Run>((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, TRIBUTARY_SERVER: fixture.url, ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(options.stdin ?? '');
  });
}

function file(name: string, content: string): string {
  const full = path.join(tempDir(), name);
  writeFileSync(full, content);
  return full;
}

/** The rows of a table, each split into its cells (columns are separated by 2+ spaces). */
function table(stdout: string): Record<string, string>[] {
  const [header, ...rows] = stdout.trimEnd().split('\n');
  const starts = [...header!.matchAll(/\S+/g)].map((m) => ({ name: m[0], at: m.index }));
  return rows.map((row) =>
    Object.fromEntries(
      starts.map((col, i) => [col.name, row.slice(col.at, starts[i + 1]?.at).trim()]),
    ),
  );
}

function manifests(broker: string, trigger: string, subscriber: string, extra = ''): string {
  return `apiVersion: eventing.knative.dev/v1
kind: Broker
metadata:
  name: ${broker}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: ${trigger}
spec:
  broker: ${broker}
  subscriber:
    uri: ${subscriber}
${extra}`;
}

/** A port nothing listens on: one the system handed out and that was closed again. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('tributary apply, get and delete', () => {
  it('round-trips a broker and a trigger through a YAML file', async () => {
    const receiver = await fixture.receiver();
    const yamlFile = file('shop.yaml', manifests('shop', 'billing', receiver.url));

    const created = await cli(['apply', '-f', yamlFile]);
    expect(created).toMatchObject({ code: 0, stderr: '' });
    expect(created.stdout).toBe('broker/shop created\ntrigger/billing created\n');

    const brokers = await cli(['get', 'brokers']);
    expect(brokers.code).toBe(0);
    expect(brokers.stdout.split('\n')[0]).toMatch(/^NAME\s+READY\s+REASON\s+AGE\s+URL$/);
    const shop = table(brokers.stdout).find((r) => r.NAME === 'shop');
    expect(shop).toMatchObject({ READY: 'True', URL: `${fixture.url}/default/shop` });
    expect(shop!.AGE).toMatch(/^\d+s$/);

    const triggers = await cli(['get', 'tr', 'billing']);
    expect(table(triggers.stdout)).toEqual([
      {
        NAME: 'billing',
        READY: 'True',
        REASON: '',
        AGE: expect.stringMatching(/^\d+s$/),
        BROKER: 'shop',
        SUBSCRIBER: receiver.url,
      },
    ]);

    const json = await cli(['get', 'broker', 'shop', '-o', 'json']);
    expect(json.code).toBe(0);
    const broker = JSON.parse(json.stdout);
    expect(broker).toMatchObject({
      kind: 'Broker',
      metadata: { name: 'shop', namespace: 'default' },
      status: { address: { url: `${fixture.url}/default/shop` } },
    });

    const yaml = await cli(['get', 'triggers', '--output', 'yaml']);
    expect(yaml.code).toBe(0);
    const list = parse(yaml.stdout);
    expect(list.kind).toBe('List');
    const trigger = list.items.find((t: any) => t.metadata.name === 'billing');
    expect(trigger.spec).toEqual({ broker: 'shop', subscriber: { uri: receiver.url } });
    expect(trigger.status.conditions).toContainEqual({ type: 'Ready', status: 'True' });

    // The same file again changes nothing; a changed trigger is configured, from standard input.
    const again = await cli(['apply', '-f', yamlFile]);
    expect(again.stdout).toBe('broker/shop unchanged\ntrigger/billing unchanged\n');
    const changed = manifests(
      'shop',
      'billing',
      receiver.url,
      '  filter:\n    attributes:\n      type: com.example.invoice\n',
    );
    const configured = await cli(['apply', '-f', '-'], { stdin: changed });
    expect(configured).toMatchObject({ code: 0, stderr: '' });
    expect(configured.stdout).toBe('broker/shop unchanged\ntrigger/billing configured\n');
    const reread = JSON.parse((await cli(['get', 'trigger', 'billing', '-o', 'json'])).stdout);
    expect(reread.spec.filter).toEqual({ attributes: { type: 'com.example.invoice' } });
    expect(reread.metadata.generation).toBe(2);

    const deleted = await cli(['delete', 'trigger', 'billing']);
    expect(deleted).toMatchObject({ code: 0, stdout: 'trigger/billing deleted\n' });
    const gone = await cli(['get', 'trigger', 'billing']);
    expect(gone.code).toBe(1);
    expect(gone.stdout).toBe('');
    expect(gone.stderr).toBe('error: No trigger "billing" in namespace "default"\n');
    const deletedAgain = await cli(['delete', 'trigger', 'billing']);
    expect(deletedAgain.code).toBe(1);
  });

  it('applies JSON into the namespace given, where a resource names none', async () => {
    const json = file(
      'brokers.json',
      JSON.stringify([
        { kind: 'Broker', metadata: { name: 'north' } },
        { kind: 'Broker', metadata: { name: 'south', namespace: 'team-b' } },
      ]),
    );
    const applied = await cli(['-n', 'team-a', 'apply', '-f', json, '-o', 'json']);
    expect(applied.code).toBe(0);
    const answer = JSON.parse(applied.stdout);
    expect(answer.items.map((i: any) => [i.namespace, i.name, i.action])).toEqual([
      ['team-a', 'north', 'created'],
      ['team-b', 'south', 'created'],
    ]);
    const teamA = await cli(['get', 'brokers', '--namespace', 'team-a']);
    expect(table(teamA.stdout).map((r) => r.NAME)).toEqual(['north']);
    const teamB = await cli(['get', 'brokers'], { env: { TRIBUTARY_NAMESPACE: 'team-b' } });
    expect(table(teamB.stdout).map((r) => r.NAME)).toEqual(['south']);
    const empty = await cli(['get', 'sources', '-n', 'team-a']);
    expect(empty).toMatchObject({ code: 0, stdout: '' });
    expect(empty.stderr).toContain('No sources in namespace "team-a"');
  });

  it('lists subscriptions and the event types catalog, and deletes a subscription', async () => {
    const broker = await fixture.broker();
    const created = await fetch(`${fixture.url}/v1/namespaces/default/subscriptions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        protocol: 'HTTP',
        sink: 'http://127.0.0.1:9/',
        types: ['com.example.order'],
        config: { broker },
      }),
    });
    expect(created.status).toBeLessThan(300);
    const { id } = (await created.json()) as { id: string };
    const subscriptions = await cli(['get', 'subscriptions']);
    expect(subscriptions.code).toBe(0);
    expect(subscriptions.stdout.split('\n')[0]).toMatch(/^NAME\s+BROKER\s+SOURCE\s+TYPES\s+SINK$/);
    expect(table(subscriptions.stdout)).toContainEqual({
      NAME: id,
      BROKER: broker,
      SOURCE: '',
      TYPES: 'com.example.order',
      SINK: 'http://127.0.0.1:9/',
    });

    const sent = await cli([
      'send',
      '--broker',
      broker,
      '--type',
      'com.example.order',
      '--source',
      '/et',
    ]);
    expect(sent.code).toBe(0);
    // The catalog counts on the event path and shows what this replica counted at once.
    const listed = JSON.parse((await cli(['get', 'eventtypes', '-o', 'json'])).stdout);
    const counted = listed.items.find((t: any) => t.spec.reference.name === broker);
    expect(counted).toMatchObject({
      kind: 'EventType',
      spec: { type: 'com.example.order', source: '/et' },
      status: { count: 1 },
    });
    const eventTypes = await cli(['get', 'et']);
    expect(table(eventTypes.stdout)).toContainEqual(
      expect.objectContaining({
        NAME: counted.metadata.name,
        TYPE: 'com.example.order',
        REFERENCE: `Broker/${broker}`,
        COUNT: '1',
      }),
    );

    const deleted = await cli(['delete', 'sub', id]);
    expect(deleted).toMatchObject({ code: 0, stdout: `subscription/${id} deleted\n` });
    expect((await cli(['get', 'subscription', id])).code).toBe(1);
  });

  it('reports what the server refuses, field by field, and applies nothing', async () => {
    const invalid = file(
      'invalid.yaml',
      manifests('refused', 'no-subscriber', 'x').replace('    uri: x\n', '    {}\n'),
    );
    const refused = await cli(['apply', '-f', invalid]);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toBe('');
    expect(refused.stderr).toContain('error: The apply request is not valid');
    expect(refused.stderr).toContain('\n  [1].spec.subscriber.uri: required\n');
    expect((await cli(['get', 'broker', 'refused'])).code).toBe(1);

    const broken = file('broken.yaml', 'kind: Broker\nmetadata:\n  name: [broken\n');
    const notYaml = await cli(['apply', '-f', broken]);
    expect(notYaml.code).toBe(1);
    expect(notYaml.stderr).toContain('error: The body is not valid YAML');
    expect(notYaml.stderr).toMatch(/\n {2}body: .*line \d+, column \d+/);

    const missing = await cli(['apply', '-f', path.join(tempDir(), 'nothing.yaml')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('ENOENT');
  });
});

describe('tributary send', () => {
  it('sends a binary-mode event that a trigger delivers with the attributes given', async () => {
    const broker = await fixture.broker();
    const receiver = await fixture.subscribe(broker, 'send-all');
    const sent = await cli([
      'send',
      '--broker',
      broker,
      '--type',
      'com.example.order.placed',
      '--source',
      '/shop/orders',
      '--id',
      'order-42',
      '--data',
      '{"order": 42}',
      '--extension',
      'subject=order-42',
      '--extension',
      'note=café au lait',
    ]);
    expect(sent).toMatchObject({ code: 0, stdout: 'order-42\n', stderr: '' });
    const [first] = await receiver.waitFor(1);
    expect(first!.headers).toMatchObject({
      'ce-specversion': '1.0',
      'ce-id': 'order-42',
      'ce-type': 'com.example.order.placed',
      'ce-source': '/shop/orders',
      'ce-subject': 'order-42',
      'content-type': 'application/json',
    });
    expect(decodeURIComponent(String(first!.headers['ce-note']))).toBe('café au lait');
    expect(JSON.parse(first!.body.toString('utf8'))).toEqual({ order: 42 });

    // Without --id, a new id is printed; data from a file with its own media type.
    const note = file('note.txt', 'plain words\n');
    const second = await cli([
      'send',
      '--broker',
      broker,
      '--type',
      'com.example.note',
      '--source',
      '/cli',
      '--data',
      `@${note}`,
      '--content-type',
      'text/plain',
    ]);
    expect(second.code).toBe(0);
    const id = second.stdout.trim();
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    const [, received] = await receiver.waitFor(2);
    expect(received!.headers).toMatchObject({ 'ce-id': id, 'content-type': 'text/plain' });
    expect(received!.body.toString('utf8')).toBe('plain words\n');
    expect(received!.headers['ce-subject']).toBeUndefined();
  });

  it('sends the token as a bearer token', async () => {
    // A receiver stands in for the server, to see the request the CLI makes.
    const server = await fixture.receiver();
    const sent = await cli(
      ['send', '--broker', 'b', '--type', 't', '--source', '/s', '--id', 'x1', '-n', 'ns1'],
      { env: { TRIBUTARY_SERVER: server.url, TRIBUTARY_TOKEN: 'tok-123' } },
    );
    expect(sent).toMatchObject({ code: 0, stdout: 'x1\n' });
    const [request] = await server.waitFor(1);
    expect(request).toMatchObject({ method: 'POST', url: '/ns1/b' });
    expect(request!.headers.authorization).toBe('Bearer tok-123');
  });

  it('refuses a wrong command line with exit code 2 and reports the server refusals with 1', async () => {
    const noBroker = await cli(['send', '--type', 't', '--source', '/s']);
    expect(noBroker).toMatchObject({ code: 2, stdout: '' });
    expect(noBroker.stderr).toContain('--broker is required');
    const notJson = await cli([
      'send',
      '--broker',
      'default',
      '--type',
      't',
      '--source',
      '/s',
      '--data',
      'hello',
    ]);
    expect(notJson.code).toBe(2);
    expect(notJson.stderr).toContain('--content-type');
    const badName = await cli([
      'send',
      '--broker',
      'default',
      '--type',
      't',
      '--source',
      '/s',
      '--extension',
      'Bad_Name=1',
    ]);
    expect(badName.code).toBe(2);
    const unknownBroker = await cli([
      'send',
      '--broker',
      'nowhere',
      '--type',
      't',
      '--source',
      '/s',
    ]);
    expect(unknownBroker.code).toBe(1);
    expect(unknownBroker.stderr).toMatch(/^error: .*nowhere/);
  });
});

/** A running `tributary tail`: its stdout lines as they come, its stderr, its exit. */
function startTail(args: string[]): {
  child: ChildProcess;
  lines: Collector<string>;
  stderr: () => string;
  connected: Promise<void>;
  exited: Promise<number | null>;
} {
  const child = spawn(process.execPath, [CLI, 'tail', ...args], {
    env: { ...process.env, TRIBUTARY_SERVER: fixture.url },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines = new Collector<string>('tail output', 20_000);
  let buffered = '';
  child.stdout.on('data', (c: Buffer) => {
    buffered += c.toString('utf8');
    let end: number;
    while ((end = buffered.indexOf('\n')) >= 0) {
      lines.push(buffered.slice(0, end));
      buffered = buffered.slice(end + 1);
    }
  });
  let stderr = '';
  const exited = new Promise<number | null>((resolve) =>
    child.on('close', (code) => resolve(code)),
  );
  const connected = new Promise<void>((resolve, reject) => {
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString('utf8');
      if (stderr.includes('Following broker')) resolve();
    });
    void exited.then((code) =>
      reject(new Error(`tail exited (${code}) before it connected: ${stderr}`)),
    );
  });
  return { child, lines, stderr: () => stderr, connected, exited };
}

describe('tributary tail', () => {
  it('prints the events a broker stores, filtered, until Ctrl-C', async () => {
    const broker = await fixture.broker();
    const all = startTail(['--broker', broker]);
    const filtered = startTail([
      '--broker',
      broker,
      '-o',
      'json',
      '--filter',
      "type = 'com.example.keep'",
    ]);
    try {
      await Promise.all([all.connected, filtered.connected]);

      await fixture.send(
        broker,
        { id: 'drop-1', type: 'com.example.drop', source: '/tail' },
        '{"n":1}',
        'application/json',
      );
      await fixture.send(
        broker,
        { id: 'keep-1', type: 'com.example.keep', source: '/tail', time: '2026-01-02T03:04:05Z' },
        '{"n":2}',
        'application/json',
      );

      // The filtered tail saw the event sent after the one it keeps out, and only that one.
      const [kept] = await filtered.lines.count(1);
      expect(JSON.parse(kept!)).toMatchObject({
        specversion: '1.0',
        id: 'keep-1',
        type: 'com.example.keep',
        source: '/tail',
        data: { n: 2 },
      });
      const [drop, keep] = await all.lines.count(2);
      expect(drop).toMatch(/^- {2}com\.example\.drop {2}\/tail {2}drop-1 {2}\{"n":1\}$/);
      expect(keep).toBe('2026-01-02T03:04:05Z  com.example.keep  /tail  keep-1  {"n":2}');
      expect(filtered.lines.length).toBe(1);

      all.child.kill('SIGINT');
      filtered.child.kill('SIGINT');
      expect(await all.exited).toBe(0);
      expect(await filtered.exited).toBe(0);
      expect(all.stderr()).not.toContain('error');
    } finally {
      all.child.kill('SIGKILL');
      filtered.child.kill('SIGKILL');
    }
  });

  it('fails with the reason when the broker does not exist or the filter is not CESQL', async () => {
    const [missing, badFilter] = await Promise.all([
      cli(['tail', '--broker', 'not-there']),
      cli(['tail', '--broker', 'default', '--filter', "type = = 'x'"]),
    ]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^error: .*not-there/);
    expect(badFilter.code).toBe(1);
    expect(badFilter.stderr).toMatch(/^error: .*CESQL/);
    expect(badFilter.stderr).toMatch(/\n {2}filter: /);
  });
});

describe('tributary errors and help', () => {
  it('says the server cannot be reached, with exit code 1', async () => {
    const port = await closedPort();
    const run = await cli(['get', 'brokers', '--server', `http://127.0.0.1:${port}`]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`cannot connect to the server at http://127.0.0.1:${port}`);
    expect(run.stderr).toContain('ECONNREFUSED');
  });

  it('refuses unknown commands, kinds, options and formats with exit code 2', async () => {
    const cases = [
      ['frobnicate'],
      ['toString'],
      ['--server', fixture.url, 'frobnicate'],
      ['get', 'widgets'],
      ['get'],
      ['get', 'brokers', '--colour', 'blue'],
      ['get', 'brokers', '-o', 'xml'],
      ['delete', 'broker'],
      ['apply'],
      ['get', 'brokers', '--server', 'not a url'],
    ];
    const runs = await Promise.all(cases.map((args) => cli(args)));
    for (const [i, run] of runs.entries()) {
      expect({ args: cases[i], code: run.code }).toEqual({ args: cases[i], code: 2 });
      expect(run.stderr).toMatch(/^tributary: /);
      expect(run.stdout).toBe('');
    }
  });

  it('describes every command in --help and each command in its own help', async () => {
    const help = await cli(['--help']);
    expect(help.code).toBe(0);
    for (const command of ['serve', 'apply', 'get', 'delete', 'send', 'tail']) {
      expect(help.stdout).toContain(`tributary ${command}`);
    }
    for (const text of [
      '--server',
      'TRIBUTARY_SERVER',
      'TRIBUTARY_TOKEN',
      '--namespace',
      '--output',
    ]) {
      expect(help.stdout).toContain(text);
    }
    const send = await cli(['send', '--help']);
    expect(send.code).toBe(0);
    for (const flag of [
      '--broker',
      '--type',
      '--source',
      '--id',
      '--data',
      '--content-type',
      '--extension',
    ]) {
      expect(send.stdout).toContain(flag);
    }
    const tail = await cli(['tail', '-h']);
    expect(tail.stdout).toContain('--filter');
  });
});
