/**
 * Logs are JSON lines (pino) at the configured level, and every error code a user can see is in
 * docs/errors.md: the catalog in src/core/errors.ts and the documented table name the same codes.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ErrorCodes } from '../../src/core/errors.js';
import { ROOT, startServer } from '../support/server-process.js';
import { removeTempDirs, tempDir } from '../support/temp-dir.js';

interface LogLine {
  level: number;
  time: number;
  msg: string;
  code?: string;
  status?: number;
}

function jsonLines(output: string): LogLine[] {
  return output
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as LogLine);
}

afterAll(removeTempDirs);

describe('docs/errors.md', () => {
  const text = readFileSync(path.join(ROOT, 'docs/errors.md'), 'utf8');
  const documented = [...text.matchAll(/^\| `([A-Z_]+)` +\| (\d{3}|—) /gm)].map((m) => ({
    code: m[1]!,
    status: m[2]!,
  }));

  it('documents every code of the catalog with its status, and nothing else', () => {
    expect(documented.map((d) => d.code).sort()).toEqual(Object.keys(ErrorCodes).sort());
    for (const { code, status } of documented) {
      if (code === 'CONFIG_INVALID') continue; // refused at start, never an HTTP answer
      expect(status, code).toBe(String(ErrorCodes[code as keyof typeof ErrorCodes].status));
    }
  });
});

describe('structured logs', () => {
  it('writes JSON lines, and at debug level says which code a refused request got', async () => {
    const server = await startServer({ dataDir: tempDir(), args: ['--log-level', 'debug'] });
    try {
      const response = await fetch(`${server.url}/default/no-such-broker`, {
        method: 'POST',
        headers: {
          'ce-specversion': '1.0',
          'ce-id': '1',
          'ce-type': 't',
          'ce-source': 's',
        },
      });
      expect(response.status).toBe(404);
      expect(((await response.json()) as { code: string }).code).toBe('BROKER_NOT_FOUND');
      await server.waitForOutput('"request refused"');
      const refused = jsonLines(server.output()).find((line) => line.msg === 'request refused');
      expect(refused).toMatchObject({ level: 20, code: 'BROKER_NOT_FOUND', status: 404 });
      expect(typeof refused?.time).toBe('number');
    } finally {
      await server.stop();
    }
  });

  it('stays quiet below the configured level', async () => {
    const server = await startServer({ dataDir: tempDir(), args: ['--log-level', 'info'] });
    try {
      const response = await fetch(`${server.url}/v1/namespaces/default/brokers/missing`);
      expect(response.status).toBe(404);
      // The stop line comes after the request: once it is written, the refusal would have been.
      const stopped = server.stop();
      await server.waitForOutput('"tributary stopped"');
      await stopped;
      const lines = jsonLines(server.output());
      expect(lines.some((line) => line.msg === 'tributary ready' && line.level === 30)).toBe(true);
      expect(lines.filter((line) => line.level < 30)).toEqual([]);
      expect(lines.some((line) => line.msg === 'request refused')).toBe(false);
    } finally {
      await server.stop();
    }
  });
});
