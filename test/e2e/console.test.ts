/**
 * The web console at /ui, end to end: the real server, and Debian's Chromium driven by
 * playwright-core. The page must show what the API says (resources, Ready, counters that follow
 * deliveries), a broker's live events with a CESQL filter, and a trigger's kept dead letters with
 * redrive, without a single error in the browser's console. With bearer tokens required, the page
 * shows the 401 or 403 problem, and once given a token (kept in sessionStorage only) reads the
 * lists and streams live events with it, reconnecting after the server went away. Screenshots go
 * to test-artifacts/console/.
 *
 * Under CI=true a missing /usr/bin/chromium fails the file; elsewhere it is skipped, saying why.
 */
import { createHmac, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { useServer } from '../support/e2e.js';
import { deadLetters, getJson, idOf } from '../support/delivery.js';
import { unavailable } from '../support/required.js';
import {
  binaryEvent,
  putResource,
  ROOT,
  startServer,
  type ServerProcess,
} from '../support/server-process.js';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = path.join(ROOT, 'test-artifacts', 'console');
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
  '--disable-sync',
];
/** How long the page may take to show what the test awaits (a bound on liveness only). */
const SHOWN_MS = 15_000;

const haveChromium =
  existsSync(CHROMIUM) ||
  unavailable('the web console tests', `${CHROMIUM} is missing (apt-get install chromium)`);

describe.runIf(haveChromium)('the web console at /ui', () => {
  const fx = useServer();
  let browser: Browser;
  /** Errors the page reported in the current test, and those the test expects (by pattern). */
  let errors: string[] = [];
  let expected: RegExp[] = [];
  const pages: Page[] = [];

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
    });
  });
  afterAll(async () => {
    await browser?.close();
  });
  afterEach(async () => {
    for (const page of pages.splice(0)) await page.close();
    const unexpected = errors.filter((e) => !expected.some((pattern) => pattern.test(e)));
    errors = [];
    expected = [];
    expect(unexpected, 'errors in the browser console').toEqual([]);
  });

  /**
   * Opens the console of the server at `base` (refreshing every second) and records what the page
   * reports as errors.
   */
  async function openConsole(query = '', base = fx.url): Promise<Page> {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    pages.push(page);
    page.on('console', (message) => {
      if (message.type() === 'error') errors.push(`console: ${message.text()}`);
    });
    page.on('pageerror', (error) => errors.push(`pageerror: ${error.message}`));
    const response = await page.goto(`${base}/ui?refresh=1${query}`);
    expect(response?.status()).toBe(200);
    return page;
  }

  /**
   * Waits until the cell of `table` (by its heading) in the row whose first cell reads `row`,
   * under the column headed `column`, reads `text`; resolves with what it read.
   */
  async function cell(
    page: Page,
    table: string,
    row: string,
    column: string,
    text: string | RegExp,
  ): Promise<string> {
    const pattern =
      typeof text === 'string' ? `^${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$` : text.source;
    const handle = await page.waitForFunction(
      ([tableName, rowName, columnName, source]) => {
        // Runs in the page (this project compiles without the DOM library, hence `any`).
        const doc = (globalThis as any).document;
        const found = [...doc.querySelectorAll('table')].find(
          (t: any) =>
            doc.getElementById(t.getAttribute('aria-labelledby') ?? '')?.textContent === tableName,
        );
        if (found === undefined) return false;
        const headers = [...found.tHead.rows[0].cells].map((c: any) => c.textContent.trim());
        const index = headers.indexOf(columnName);
        const tr: any = [...found.tBodies[0].rows].find(
          (r: any) => r.cells[0]?.textContent.trim() === rowName,
        );
        const value: string | undefined = tr?.cells[index]?.textContent.trim();
        return value !== undefined && new RegExp(source).test(value) ? value : false;
      },
      [table, row, column, pattern] as const,
      { timeout: SHOWN_MS },
    );
    return (await handle.jsonValue()) as string;
  }

  async function screenshot(page: Page, name: string): Promise<void> {
    await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
  }

  /** Opens the live events of `broker` and waits until the stream is connected. */
  async function watch(page: Page, broker: string): Promise<void> {
    await page
      .getByRole('region', { name: 'Brokers' })
      .getByRole('button', { name: broker, exact: true })
      .click();
    await page.getByRole('heading', { name: `Live events of broker ${broker}` }).waitFor();
    await page
      .getByRole('status')
      .filter({ hasText: /^Connected/ })
      .waitFor({ timeout: SHOWN_MS });
  }

  const eventsTable = (page: Page) => page.locator('#events tbody');

  it('serves the page and its files with a strict Content-Security-Policy and revalidation', async () => {
    const page = await fetch(`${fx.url}/ui`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    const csp = page.headers.get('content-security-policy') ?? '';
    expect(csp.split('; ')).toContain("default-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    expect(page.headers.get('x-content-type-options')).toBe('nosniff');
    expect(page.headers.get('cache-control')).toBe('no-cache');
    const html = await page.text();
    // No inline script or style: every script has a src, and no element has a style attribute.
    expect(html.match(/<script\b[^>]*>/g)).toEqual(['<script type="module" src="/ui/app.js">']);
    expect(html).not.toMatch(/\sstyle=|<style|\son[a-z]+=/i);

    for (const [file, type] of [
      ['app.js', 'text/javascript; charset=utf-8'],
      ['style.css', 'text/css; charset=utf-8'],
      ['favicon.svg', 'image/svg+xml'],
    ] as const) {
      const response = await fetch(`${fx.url}/ui/${file}`);
      expect(response.status, file).toBe(200);
      expect(response.headers.get('content-type'), file).toBe(type);
      expect(response.headers.get('content-security-policy'), file).toBe(csp);
      const etag = response.headers.get('etag');
      expect(etag, file).toMatch(/^"[\w-]+"$/);
      await response.arrayBuffer();
      const again = await fetch(`${fx.url}/ui/${file}`, { headers: { 'if-none-match': etag! } });
      expect(again.status, file).toBe(304);
    }

    const missing = await fetch(`${fx.url}/ui/..%2Fpackage.json`);
    expect(missing.status).toBe(404);
    expect(missing.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(((await missing.json()) as { code: string }).code).toBe('NOT_FOUND');
  });

  it('shows brokers, triggers and sources with their Ready state, and counters that follow deliveries', async () => {
    const broker = await fx.broker();
    const receiver = await fx.subscribe(broker, 'shown');
    // A trigger whose broker does not exist: not Ready, and the page says why.
    const orphan = await putResource(fx.url, 'triggers', 'default', 'orphan', {
      spec: { broker: 'nowhere', subscriber: { uri: receiver.url } },
    });
    expect(orphan.status).toBe(201);
    const source = await putResource(fx.url, 'sources', 'default', 'widgets', {
      kind: 'GitHubSource',
      spec: {
        ownerAndRepository: 'acme/widgets',
        secretToken: { value: 'console-secret' },
        sink: { ref: { kind: 'Broker', name: broker } },
      },
    });
    expect(source.status).toBe(201);

    const page = await openConsole();
    expect(await cell(page, 'Brokers', broker, 'Ready', 'True')).toBe('True');
    await cell(page, 'Brokers', broker, 'URL', `${fx.url}/default/${broker}`);
    await cell(page, 'Brokers', 'default', 'Ready', 'True');
    await cell(page, 'Triggers', 'shown', 'Ready', 'True');
    await cell(page, 'Triggers', 'shown', 'Broker', broker);
    await cell(page, 'Triggers', 'shown', 'Subscriber', receiver.url);
    await cell(page, 'Triggers', 'shown', 'Delivered', '0');
    await cell(page, 'Triggers', 'orphan', 'Ready', 'False');
    await cell(page, 'Triggers', 'orphan', 'Reason', /^BrokerDoesNotExist: Broker "nowhere"/);
    await cell(page, 'Sources', 'widgets', 'Kind', 'GitHubSource');
    await cell(page, 'Sources', 'widgets', 'Sink', `Broker ${broker}`);
    await cell(page, 'Sources', 'widgets', 'Ready', 'True');
    await cell(page, 'Sources', 'widgets', 'Counters', /^received: 0, forwarded: 0,/);

    // Two events delivered: the page shows the new count on one of its refreshes.
    await fx.send(broker);
    await fx.send(broker);
    await receiver.waitFor(2);
    await cell(page, 'Triggers', 'shown', 'Delivered', '2');
    await cell(page, 'Triggers', 'shown', 'Retried', '0');

    // A signed GitHub delivery: the source's counters move.
    const body = JSON.stringify({ ref: 'refs/heads/main' });
    const webhook = await fetch((source.body.status as { webhookUrl: string }).webhookUrl, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-github-event': 'push',
        'x-github-delivery': randomUUID(),
        'x-hub-signature-256': `sha256=${createHmac('sha256', 'console-secret').update(body).digest('hex')}`,
      },
      body,
    });
    expect(webhook.status).toBe(202);
    await cell(page, 'Sources', 'widgets', 'Counters', /^received: 1, forwarded: 1,/);
    await cell(page, 'Triggers', 'shown', 'Delivered', '3');
    await screenshot(page, 'resources');

    // Another namespace: empty lists, and the address says which.
    await page.getByLabel('Namespace').fill('elsewhere');
    await page.getByRole('button', { name: 'Show', exact: true }).click();
    await page.getByText('No brokers in this namespace.').waitFor();
    expect(new URL(page.url()).searchParams.get('namespace')).toBe('elsewhere');
    expect(await page.locator('#triggers tbody tr').count()).toBe(0);
  });

  it('streams a broker’s events as they arrive, newest first, showing markup as text', async () => {
    const broker = await fx.broker();
    const page = await openConsole();
    await watch(page, broker);

    const first = await fx.send(
      broker,
      { type: 'com.example.first' },
      '{"n":1}',
      'application/json',
    );
    await eventsTable(page).getByRole('cell', { name: first, exact: true }).waitFor();
    const markup = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">';
    const second = await fx.send(
      broker,
      { type: 'com.example.markup', source: '/<b>bold</b>' },
      markup,
      'text/plain',
    );
    await eventsTable(page).getByRole('cell', { name: second, exact: true }).waitFor();

    const rows = await eventsTable(page)
      .locator('tr')
      .evaluateAll((trs) =>
        trs.map((tr: any) => [...tr.cells].map((c: any) => c.textContent as string)),
      );
    expect(rows).toHaveLength(2);
    expect(rows[0]!.slice(0, 3)).toEqual(['com.example.markup', '/<b>bold</b>', second]);
    expect(rows[0]![4]).toBe(markup);
    expect(rows[1]!.slice(0, 3)).toEqual(['com.example.first', '/test', first]);
    expect(rows[1]![4]).toBe('{"n":1}');
    // Shown as text: no element came out of the values, and nothing ran.
    expect(
      await page.locator('#events tbody script, #events tbody img, #events tbody b').count(),
    ).toBe(0);
    expect(await page.evaluate(() => (globalThis as { pwned?: number }).pwned)).toBeUndefined();
    await screenshot(page, 'live-events');
  });

  it('filters the live events with CESQL, and shows the server’s error for a bad filter', async () => {
    const broker = await fx.broker();
    const page = await openConsole();
    await watch(page, broker);

    await page.getByLabel('Filter (CESQL)').fill("type = 'com.example.wanted'");
    await page.getByRole('button', { name: 'Apply filter' }).click();
    await page
      .getByRole('status')
      .filter({ hasText: "Connected: showing events where type = 'com.example.wanted'" })
      .waitFor({ timeout: SHOWN_MS });
    const unwanted = await fx.send(broker, { type: 'com.example.unwanted' });
    const wanted = await fx.send(broker, { type: 'com.example.wanted' });
    await eventsTable(page).getByRole('cell', { name: wanted, exact: true }).waitFor();
    // The stream delivers in order, so the unwanted one would be on the page by now.
    expect(await eventsTable(page).getByRole('cell', { name: unwanted, exact: true }).count()).toBe(
      0,
    );
    expect(await eventsTable(page).locator('tr').count()).toBe(1);
    await screenshot(page, 'filtered-events');

    // A filter the server refuses: its problem (400, field `filter`) is shown on the page.
    const bad = "type = = 'x'";
    const refused = await fetch(
      `${fx.url}/v1/namespaces/default/brokers/${broker}/events?filter=${encodeURIComponent(bad)}`,
    );
    expect(refused.status).toBe(400);
    const problem = (await refused.json()) as { errors: { field: string; message: string }[] };
    const fieldProblem = problem.errors.find((e) => e.field === 'filter');
    expect(fieldProblem).toBeDefined();
    // Chromium reports the refused request in the console; that is the expected error.
    expected.push(/status of 400/);
    await page.getByLabel('Filter (CESQL)').fill(bad);
    await page.getByRole('button', { name: 'Apply filter' }).click();
    const alert = page.getByRole('alert').filter({ hasText: fieldProblem!.message });
    await alert.waitFor({ timeout: SHOWN_MS });
    expect(await alert.textContent()).toContain(`filter: ${fieldProblem!.message}`);
    await screenshot(page, 'bad-filter');
  });

  it('reads the event-stream format: multi-line data, CR and CRLF lines, comments, other types', async () => {
    const broker = await fx.broker();
    const page = await openConsole();
    // The page's stream requests are answered here: first a handmade stream, which then ends;
    // the page connects again and is refused with a problem, which it shows and stops at.
    const answered: string[] = [];
    await page.route(`**/v1/namespaces/default/brokers/${broker}/events*`, async (route) => {
      answered.push(route.request().headers().accept ?? '');
      if (answered.length === 1) {
        await route.fulfill({
          status: 200,
          contentType: 'text/event-stream',
          body: [
            ': connected\r\n\r\n',
            'event: cloudevent\r\nid: multi\r\n',
            'data: {"specversion":"1.0","id":"multi",\r\n',
            'data: "source":"/crafted","type":"com.example.lines"}\r\n\r\n',
            'event: cloudevent\ndata: first line\ndata:second line\n\n',
            'event: other\ndata: {"id":"other-type"}\n\n',
            ':a comment\n',
            'data: {"id":"untyped"}\n\n',
            'event:cloudevent\rdata:{"id":"cr-only","type":"com.example.cr","source":"/s"}\r\r',
            'event: cloudevent\ndata: {"id":"unfinished"}\n',
          ].join(''),
        });
      } else {
        await route.fulfill({
          status: 404,
          contentType: 'application/problem+json',
          body: JSON.stringify({ status: 404, detail: 'The crafted stream is over' }),
        });
      }
    });
    expected.push(/status of 404/);
    await page
      .getByRole('region', { name: 'Brokers' })
      .getByRole('button', { name: broker, exact: true })
      .click();
    const refused = page.locator('#stream-error').filter({ hasText: 'The crafted stream is over' });
    await refused.waitFor({ timeout: SHOWN_MS });
    expect(await refused.textContent()).toContain('(404)');
    await page
      .getByRole('status')
      .filter({ hasText: /^Not connected/ })
      .waitFor();
    expect(answered).toEqual(['text/event-stream', 'text/event-stream']);

    // Only the complete cloudevent messages, newest first; data lines joined by a line feed (data
    // that is not JSON is shown as it came).
    const rows = await eventsTable(page)
      .locator('tr')
      .evaluateAll((trs) =>
        trs.map((tr: any) => [...tr.cells].map((c: any) => c.textContent as string)),
      );
    expect(rows.map((r) => [...r.slice(0, 3), r[4]])).toEqual([
      ['com.example.cr', '/s', 'cr-only', ''],
      ['', '', '', 'first line\nsecond line'],
      ['com.example.lines', '/crafted', 'multi', ''],
    ]);
  });

  it('lists a trigger’s kept dead letters and redrives them, one or all', async () => {
    const broker = await fx.broker();
    // No dead-letter sink and a subscriber that answers 400: each event is kept at once.
    const receiver = await fx.subscribe(broker, 'refusing', { delivery: { retry: 0 } });
    let accept = false;
    receiver.responder = () =>
      accept
        ? { status: 200 }
        : { status: 400, headers: { 'content-type': 'text/plain' }, body: 'no thanks' };
    const kept = deadLetters(fx.url, 'refusing');
    const one = await fx.send(broker, { type: 'com.example.kept' });
    await kept.untilTotal(1);

    const page = await openConsole();
    await page
      .getByRole('region', { name: 'Triggers' })
      .getByRole('button', { name: 'refusing', exact: true })
      .click();
    await page.getByRole('heading', { name: 'Dead letters of trigger refusing' }).waitFor();
    await cell(page, 'Dead letters of trigger refusing', one, 'Type', 'com.example.kept');
    await cell(page, 'Dead letters of trigger refusing', one, 'Last status', '400');
    await cell(page, 'Dead letters of trigger refusing', one, 'Attempts', '1');
    await cell(page, 'Triggers', 'refusing', 'Dead letters held', '1');
    await screenshot(page, 'dead-letters');

    // Redrive that one, now that the subscriber accepts: it arrives again, and leaves the list.
    accept = true;
    await page.getByRole('button', { name: `Redrive ${one}`, exact: true }).click();
    const [, again] = await receiver.waitFor(2);
    expect(idOf(again!)).toBe(one);
    await page.getByText('0 kept').waitFor({ timeout: SHOWN_MS });
    expect(await page.locator('#deadletters tbody tr').count()).toBe(0);
    await cell(page, 'Triggers', 'refusing', 'Delivered', '1');

    // Two more kept; Redrive all sends both again.
    accept = false;
    const two = await fx.send(broker, { type: 'com.example.kept' });
    const three = await fx.send(broker, { type: 'com.example.kept' });
    await kept.untilTotal(2);
    await cell(page, 'Dead letters of trigger refusing', two, 'Last status', '400');
    await cell(page, 'Dead letters of trigger refusing', three, 'Last status', '400');
    expect(await page.getByRole('button', { name: 'Redrive all' }).isEnabled()).toBe(true);
    accept = true;
    await page.getByRole('button', { name: 'Redrive all' }).click();
    const all = await receiver.waitFor(6);
    expect(all.slice(4).map(idOf).sort()).toEqual([two, three].sort());
    await page.getByText('0 kept').waitFor({ timeout: SHOWN_MS });
    expect(await page.getByRole('button', { name: 'Redrive all' }).isDisabled()).toBe(true);
    expect(
      (await getJson(`${fx.url}/v1/namespaces/default/triggers/refusing/deadletters`)).body.total,
    ).toBe(0);
  });

  describe('when the server requires bearer tokens', () => {
    const ADMIN = 'console-admin-token-0123456789';
    const SHOP_READER = 'console-shop-reader-token-000001';
    let dir: string;
    let server: ServerProcess;
    /** The server's options, the same at a restart (a restart also keeps its port). */
    const serverArgs = (): string[] => [
      '--admin-token',
      ADMIN,
      '--tokens-file',
      path.join(dir, 'tokens.yaml'),
    ];

    beforeAll(async () => {
      dir = mkdtempSync(path.join(tmpdir(), 'tributary-console-tokens-'));
      writeFileSync(
        path.join(dir, 'tokens.yaml'),
        `tokens:
  - name: shop-reader
    token: ${SHOP_READER}
    namespaces: [shop]
    access: read
`,
      );
      mkdirSync(path.join(dir, 'data'));
      server = await startServer({ dataDir: path.join(dir, 'data'), args: serverArgs() });
      for (const [namespace, name] of [
        ['default', 'guarded'],
        ['shop', 'orders'],
      ] as const) {
        const response = await asAdmin('PUT', `/v1/namespaces/${namespace}/brokers/${name}`, {});
        expect(response.status).toBe(201);
      }
    });
    afterAll(async () => {
      await server?.stop();
      if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    });

    async function asAdmin(method: string, apiPath: string, body?: unknown): Promise<Response> {
      const response = await fetch(`${server.url}${apiPath}`, {
        method,
        headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      await response.arrayBuffer();
      return response;
    }

    /** Sends an event through the (open) ingress of `namespace/broker`; returns its id. */
    async function send(namespace: string, broker: string): Promise<string> {
      const id = randomUUID();
      const response = await fetch(
        `${server.url}/${namespace}/${broker}`,
        binaryEvent(
          { specversion: '1.0', id, source: '/console-tokens', type: 'com.example.token' },
          '{"ok":true}',
          'application/json',
        ),
      );
      expect(response.status).toBe(202);
      return id;
    }

    const loadError = (page: Page) => page.locator('#load-error');

    /** What the page keeps: the token in sessionStorage, and how many localStorage keys. */
    const storage = (page: Page) =>
      page.evaluate(() => {
        const g = globalThis as any;
        return {
          session: g.sessionStorage.getItem('tributary.token'),
          local: g.localStorage.length,
        };
      });

    async function enterToken(page: Page, token: string): Promise<void> {
      await page.getByLabel('API token').fill(token);
      await page.getByRole('button', { name: 'Use token' }).click();
    }

    it('shows the 401 problem without a token, and with one reads the lists, streams live events and reconnects', async () => {
      // Chromium reports refused requests, and those cut off or refused while the server restarts.
      // A server that is shutting down answers 503 (SHUTTING_DOWN) until it is gone.
      expected.push(
        /status of 401/,
        /status of 503/,
        /net::ERR_(CONNECTION_REFUSED|CONNECTION_RESET|CONNECTION_CLOSED|EMPTY_RESPONSE)/,
      );
      const page = await openConsole('', server.url);

      const unauthorized = loadError(page).filter({ hasText: 'This request needs a token' });
      await unauthorized.waitFor({ timeout: SHOWN_MS });
      expect(await unauthorized.textContent()).toContain('(401)');
      expect(await unauthorized.textContent()).toContain('enter one in the API token field');
      expect(await page.locator('#brokers tbody tr').count()).toBe(0);
      const field = page.getByLabel('API token');
      expect(await field.getAttribute('type')).toBe('password');
      expect(await field.getAttribute('autocomplete')).toBe('off');
      expect(await page.getByRole('button', { name: 'Forget token' }).isDisabled()).toBe(true);
      await screenshot(page, 'token-missing');

      await enterToken(page, ADMIN);
      await cell(page, 'Brokers', 'guarded', 'Ready', 'True');
      await loadError(page).waitFor({ state: 'hidden', timeout: SHOWN_MS });
      // Kept in this tab's sessionStorage only: not in localStorage, the address or the field.
      expect(await storage(page)).toEqual({ session: ADMIN, local: 0 });
      expect(page.url()).not.toContain(ADMIN);
      expect(await field.inputValue()).toBe('');

      // A reload of the tab keeps the token: the lists load with it, and the live stream sends it.
      await page.reload();
      await cell(page, 'Brokers', 'guarded', 'Ready', 'True');
      await watch(page, 'guarded');
      const first = await send('default', 'guarded');
      await eventsTable(page).getByRole('cell', { name: first, exact: true }).waitFor();
      await screenshot(page, 'token-in-use');

      // The server goes away (it ends every stream) and comes back on the same port: the page
      // says so and reconnects by itself, with the token.
      const port = new URL(server.url).port;
      await server.stop();
      await page
        .getByRole('status')
        .filter({ hasText: /^Connection lost; reconnecting/ })
        .waitFor({ timeout: SHOWN_MS });
      server = await startServer({
        dataDir: path.join(dir, 'data'),
        args: [...serverArgs(), '--port', port],
      });
      expect(server.url).toBe(`http://127.0.0.1:${port}`);
      await page
        .getByRole('status')
        .filter({ hasText: /^Connected/ })
        .waitFor({ timeout: SHOWN_MS });
      const second = await send('default', 'guarded');
      await eventsTable(page).getByRole('cell', { name: second, exact: true }).waitFor();
      expect(await eventsTable(page).locator('tr').count()).toBe(2);

      // Forgetting the token: the lists and the stream are refused again, and say why.
      await page.getByRole('button', { name: 'Forget token' }).click();
      await unauthorized.waitFor({ timeout: SHOWN_MS });
      const streamRefused = page
        .locator('#stream-error')
        .filter({ hasText: 'This request needs a token' });
      await streamRefused.waitFor({ timeout: SHOWN_MS });
      expect(await streamRefused.textContent()).toContain('(401)');
      await page
        .getByRole('status')
        .filter({ hasText: /^Not connected/ })
        .waitFor();
      expect(await storage(page)).toEqual({ session: null, local: 0 });
    });

    it('shows the 403 problem for a read token of another namespace, and reads and streams its own', async () => {
      expected.push(/status of 401/, /status of 403/);
      const page = await openConsole('', server.url);
      await loadError(page).filter({ hasText: '(401)' }).waitFor({ timeout: SHOWN_MS });

      await enterToken(page, SHOP_READER);
      const forbidden = loadError(page).filter({
        hasText: 'Token "shop-reader" may not read namespace "default"',
      });
      await forbidden.waitFor({ timeout: SHOWN_MS });
      expect(await forbidden.textContent()).toContain('(403)');
      expect(await forbidden.textContent()).toContain('enter a token for this namespace');
      expect(await page.locator('#brokers tbody tr').count()).toBe(0);
      await screenshot(page, 'token-forbidden');

      await page.getByLabel('Namespace').fill('shop');
      await page.getByRole('button', { name: 'Show', exact: true }).click();
      await cell(page, 'Brokers', 'orders', 'Ready', 'True');
      await loadError(page).waitFor({ state: 'hidden', timeout: SHOWN_MS });
      await watch(page, 'orders');
      const id = await send('shop', 'orders');
      await eventsTable(page).getByRole('cell', { name: id, exact: true }).waitFor();
    });
  });
});
