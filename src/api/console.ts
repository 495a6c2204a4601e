/**
 * The web console: `GET /ui` answers the page and `GET /ui/<asset>` its script, style sheet and
 * icon. The files are plain HTML, CSS and ES modules in the package's `console/` folder (no build
 * step); the page talks to the server through the public HTTP API only.
 *
 * The files are read once, when the plugin is registered, and only those are ever served: a
 * request names a file of that list or gets a 404, so no path from a request reaches the file
 * system. Every answer carries a strict Content-Security-Policy (scripts, styles and connections
 * from this origin only; no inline script or style) and an ETag, so a browser revalidates cheaply.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
// For its typing of the route schemas' OpenAPI fields (summary, tags, hide).
import type {} from '@fastify/swagger';
import { TributaryError } from '../core/errors.js';

/**
 * Where the assets are: `console/` at the package root. This module runs as dist/api/console.js
 * (from a checkout or an npm install), so the folder is two levels up from it.
 */
export const CONSOLE_DIR = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  'console',
);

/** Nothing but this origin, and nothing inline: rendered data can never run as code. */
export const CONSOLE_CSP = [
  "default-src 'self'",
  "base-uri 'none'",
  "object-src 'none'",
  "frame-ancestors 'none'",
  "form-action 'self'",
].join('; ');

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

interface Asset {
  readonly body: Buffer;
  readonly contentType: string;
  readonly etag: string;
}

/** The servable files of `dir`: those with a known content type, by file name. */
function loadAssets(dir: string): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  for (const name of readdirSync(dir)) {
    const contentType = CONTENT_TYPES[path.extname(name)];
    if (contentType === undefined) continue;
    const body = readFileSync(path.join(dir, name));
    const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`;
    assets.set(name, { body, contentType, etag });
  }
  return assets;
}

function send(request: FastifyRequest, reply: FastifyReply, asset: Asset): FastifyReply {
  void reply
    .header('content-security-policy', CONSOLE_CSP)
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'no-referrer')
    // No hashed file names (no build step): the browser keeps a copy but asks each time.
    .header('cache-control', 'no-cache')
    .header('etag', asset.etag);
  const known = request.headers['if-none-match'];
  if (known !== undefined && known.split(',').some((tag) => tag.trim() === asset.etag)) {
    return reply.code(304).send();
  }
  return reply.code(200).type(asset.contentType).send(asset.body);
}

export interface ConsoleOptions {
  /** The folder of the assets; CONSOLE_DIR unless a test says otherwise. */
  readonly dir?: string;
}

const pageSchema = {
  summary: 'The web console',
  description:
    'An HTML page that shows the brokers, triggers and sources of a namespace with their status ' +
    'and counters, a broker’s live events, and a trigger’s kept dead letters with redrive.',
  tags: ['console'],
};

const assetSchema = {
  summary: 'A file of the web console (script, style sheet, icon)',
  tags: ['console'],
  hide: true,
  params: {
    type: 'object',
    properties: { asset: { type: 'string' } },
    required: ['asset'],
  },
};

export function consolePlugin(options: ConsoleOptions = {}): FastifyPluginAsync {
  return async (app: FastifyInstance) => {
    const assets = loadAssets(options.dir ?? CONSOLE_DIR);
    const page = assets.get('index.html');
    if (page === undefined) {
      throw new Error(`the web console has no index.html in ${options.dir ?? CONSOLE_DIR}`);
    }

    app.get('/ui', { schema: pageSchema }, async (request, reply) => send(request, reply, page));

    app.get<{ Params: { asset: string } }>(
      '/ui/:asset',
      { schema: assetSchema },
      async (request, reply) => {
        const asset = assets.get(request.params.asset);
        if (asset === undefined) {
          throw new TributaryError(
            'NOT_FOUND',
            `The console has no file "${request.params.asset}"`,
          );
        }
        return send(request, reply, asset);
      },
    );
  };
}
