/**
 * The token table and scope decisions of src/core/auth.ts, and the token file of src/api/auth.ts:
 * every bad entry is reported with its field path, tokens are held as digests, and each route
 * needs what docs/security.md says.
 */
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadTokens } from '../../src/api/auth.js';
import {
  allows,
  ingressAuthRequired,
  namespacesWritten,
  parseTokens,
  requirementOf,
  writeProblems,
  type Principal,
} from '../../src/core/auth.js';
import { TributaryError } from '../../src/core/errors.js';
import type { Resource } from '../../src/core/resources/types.js';
import { removeTempDirs, tempDir } from '../support/temp-dir.js';

afterAll(() => removeTempDirs());

const hex = (text: string): string => createHash('sha256').update(text).digest('hex');

describe('parseTokens', () => {
  it('builds a table from clear, environment and digest tokens, and authenticates only those', () => {
    const { table, problems } = parseTokens({
      file: {
        tokens: [
          { name: 'a', token: 'token-a-0123456789', namespaces: ['shop'], access: 'write' },
          { name: 'b', tokenEnv: 'B_TOKEN', namespaces: ['shop', 'billing'], access: 'read' },
          { name: 'c', tokenSha256: hex('token-c-0123456789'), namespaces: ['*'], access: 'read' },
        ],
      },
      env: { B_TOKEN: 'token-b-0123456789' },
      adminToken: 'admin-0123456789abcdef',
    });
    expect(problems).toEqual([]);
    expect(table.size).toBe(4);
    expect(table.authenticate('token-a-0123456789')).toEqual({
      name: 'a',
      namespaces: ['shop'],
      access: 'write',
    });
    expect(table.authenticate('token-b-0123456789')?.name).toBe('b');
    expect(table.authenticate('token-c-0123456789')?.name).toBe('c');
    expect(table.authenticate('admin-0123456789abcdef')).toEqual({
      name: 'admin',
      namespaces: ['*'],
      access: 'write',
    });
    // Same length as a right one, one character off.
    expect(table.authenticate('token-a-0123456780')).toBeUndefined();
    expect(table.authenticate('')).toBeUndefined();
  });

  it('accepts a bare list as the file', () => {
    const { table, problems } = parseTokens({
      file: [{ name: 'x', token: 'xxxxxxxxxxxxxxxxxxxx', namespaces: ['a'], access: 'read' }],
      env: {},
    });
    expect(problems).toEqual([]);
    expect(table.names).toEqual(['x']);
  });

  it('lists every bad entry with its field path, and keeps no token when any is bad', () => {
    const { table, problems } = parseTokens({
      file: {
        tokens: [
          { name: 'short', token: 'short', namespaces: ['shop'], access: 'write' },
          { name: 'env', tokenEnv: 'MISSING_VAR', namespaces: ['shop'], access: 'read' },
          {
            name: 'two',
            token: 'aaaaaaaaaaaaaaaaaaaa',
            tokenSha256: hex('x'),
            namespaces: ['shop'],
            access: 'read',
          },
          { name: 'ns', token: 'bbbbbbbbbbbbbbbbbbbb', namespaces: ['Shop', '*'], access: 'admin' },
          { token: 'cccccccccccccccccccc', namespaces: [], access: 'read', colour: 'red' },
          { name: 'digest', tokenSha256: 'abc', namespaces: ['shop'], access: 'read' },
          { name: 'dup', token: 'dddddddddddddddddddd', namespaces: ['shop'], access: 'read' },
          { name: 'dup', token: 'dddddddddddddddddddd', namespaces: ['shop'], access: 'read' },
          'not a mapping',
        ],
        extra: true,
      },
      env: {},
    });
    expect(table.size).toBe(0);
    const fields = problems.map((p) => p.field);
    expect(fields).toEqual([
      'extra',
      'tokens[0].token',
      'tokens[1].tokenEnv',
      'tokens[2].token, tokens[2].tokenSha256',
      'tokens[3].namespaces[0]',
      'tokens[3].access',
      'tokens[4].colour',
      'tokens[4].name',
      'tokens[4].namespaces',
      'tokens[5].tokenSha256',
      'tokens[8]',
      'tokens[7].name',
      'tokens[7]',
    ]);
    const byField = Object.fromEntries(problems.map((p) => [p.field, p.message]));
    expect(byField['tokens[0].token']).toMatch(/at least 16 characters/);
    expect(byField['tokens[1].tokenEnv']).toMatch(/MISSING_VAR is not set/);
    expect(byField['tokens[3].namespaces[0]']).toMatch(/"Shop"/);
    expect(byField['tokens[3].access']).toMatch(/read or write/);
    expect(byField['tokens[7]']).toMatch(/same token as tokens\[6\]/);
  });

  it('refuses a short admin token, naming its variable', () => {
    const { problems } = parseTokens({ env: {}, adminToken: 'short', adminTokenField: 'X' });
    expect(problems).toEqual([{ field: 'X', message: expect.stringMatching(/at least 16/) }]);
  });
});

describe('loadTokens (the token file)', () => {
  it('throws CONFIG_INVALID listing the bad entries of the file', () => {
    const file = join(tempDir(), 'tokens.yaml');
    writeFileSync(
      file,
      'tokens:\n  - name: ok\n    token: aaaaaaaaaaaaaaaaaaaa\n    namespaces: [shop]\n    access: write\n  - name: bad\n    token: bbbbbbbbbbbbbbbbbbbb\n    namespaces: shop\n    access: rw\n',
    );
    let error: unknown;
    try {
      loadTokens({ tokensFile: file }, {});
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(TributaryError);
    const e = error as TributaryError;
    expect(e.code).toBe('CONFIG_INVALID');
    expect(e.problems.map((p) => p.field)).toEqual(['tokens[1].namespaces', 'tokens[1].access']);
    expect(e.message).toContain(file);
    expect(e.message).toContain('tokens[1].access');
  });

  it('refuses an empty file, a missing file and bad YAML', () => {
    const dir = tempDir();
    const empty = join(dir, 'empty.yaml');
    writeFileSync(empty, '');
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'tokens: [');
    for (const tokensFile of [empty, bad, join(dir, 'absent.yaml')]) {
      expect(() => loadTokens({ tokensFile }, {})).toThrowError(TributaryError);
    }
  });

  it('without a file or an admin token, the table is empty (the API is open)', () => {
    expect(loadTokens({}, {}).size).toBe(0);
  });
});

describe('requirementOf', () => {
  const ns = { namespace: 'shop' };
  it.each([
    ['GET', '/healthz', {}, { kind: 'open' }],
    ['GET', '/readyz', {}, { kind: 'open' }],
    ['GET', '/openapi.json', {}, { kind: 'open' }],
    ['GET', '/docs/static/*', {}, { kind: 'open' }],
    ['GET', '/ui/:asset', {}, { kind: 'open' }],
    ['POST', '/webhooks/:namespace/:source', ns, { kind: 'open' }],
    ['GET', undefined, {}, { kind: 'open' }],
    ['GET', '/metrics', {}, { kind: 'all', access: 'read' }],
    ['POST', '/v1/apply', {}, { kind: 'apply' }],
    [
      'GET',
      '/v1/namespaces/:namespace/brokers',
      ns,
      { kind: 'namespace', namespace: 'shop', access: 'read' },
    ],
    [
      'PUT',
      '/v1/namespaces/:namespace/brokers/:name',
      ns,
      { kind: 'namespace', namespace: 'shop', access: 'write' },
    ],
    [
      'DELETE',
      '/v1/namespaces/:namespace/triggers/:name',
      ns,
      { kind: 'namespace', namespace: 'shop', access: 'write' },
    ],
    [
      'GET',
      '/v1/namespaces/:namespace/brokers/:name/events',
      ns,
      { kind: 'namespace', namespace: 'shop', access: 'read' },
    ],
    [
      'POST',
      '/v1/namespaces/:namespace/triggers/:name/replay',
      ns,
      { kind: 'namespace', namespace: 'shop', access: 'write' },
    ],
    [
      'POST',
      '/:namespace/:broker',
      { namespace: 'shop', broker: 'b' },
      { kind: 'ingress', namespace: 'shop', broker: 'b' },
    ],
    ['OPTIONS', '/:namespace/:broker', { namespace: 'shop', broker: 'b' }, { kind: 'open' }],
    // A route no rule names is closed to all but every-namespace tokens.
    ['GET', '/v1/something-new', {}, { kind: 'all', access: 'read' }],
    ['POST', '/admin/thing', {}, { kind: 'all', access: 'write' }],
  ] as const)('%s %s', (method, url, params, expected) => {
    expect(requirementOf(method, url, params)).toEqual(expected);
  });
});

describe('scopes', () => {
  const reader: Principal = { name: 'r', namespaces: ['shop'], access: 'read' };
  const writer: Principal = { name: 'w', namespaces: ['shop'], access: 'write' };
  const everywhere: Principal = { name: 'all', namespaces: ['*'], access: 'write' };

  it('write implies read; a namespace token does not reach another namespace', () => {
    expect(allows(reader, 'shop', 'read')).toBe(true);
    expect(allows(reader, 'shop', 'write')).toBe(false);
    expect(allows(writer, 'shop', 'read')).toBe(true);
    expect(allows(writer, 'billing', 'read')).toBe(false);
    expect(allows(everywhere, 'billing', 'write')).toBe(true);
  });

  it("a source's sink in another namespace needs write there too", () => {
    const source = {
      apiVersion: 'sources.knative.dev/v1alpha1',
      kind: 'GitHubSource',
      metadata: { name: 's', namespace: 'shop' },
      spec: { sink: { ref: { kind: 'Broker', name: 'b', namespace: 'billing' } } },
    } as Resource;
    expect(namespacesWritten(source)).toEqual(['shop', 'billing']);
    expect(writeProblems(writer, [source])).toEqual([
      { field: '[0].spec.sink.ref.namespace', message: expect.stringContaining('"billing"') },
    ]);
    expect(writeProblems(everywhere, [source])).toEqual([]);
  });

  it('the ingress annotation: off values leave it open, anything else requires a token', () => {
    expect(ingressAuthRequired(undefined)).toBe(false);
    expect(ingressAuthRequired({})).toBe(false);
    expect(ingressAuthRequired({ 'tributary.dev/ingress-auth': 'none' })).toBe(false);
    expect(ingressAuthRequired({ 'tributary.dev/ingress-auth': 'required' })).toBe(true);
    expect(ingressAuthRequired({ 'tributary.dev/ingress-auth': 'requierd' })).toBe(true);
  });
});
