/* global document, location, history, fetch, URL, URLSearchParams, AbortController, TextDecoder, sessionStorage, setInterval, setTimeout, clearTimeout */
// Tributary's web console. Everything comes from the public HTTP API of the server that serves
// this file, and every value is written with textContent or as an attribute value: nothing from
// the server is ever parsed as HTML.

const params = new URLSearchParams(location.search);
/** How often the lists are read again, in ms (?refresh=<seconds>, at least one second). */
const REFRESH_MS = Math.max(1, Number(params.get('refresh')) || 3) * 1000;
/** The live list keeps this many events, newest first. */
const EVENT_CAP = 200;
/** Characters of an event's data shown in the list. */
const PREVIEW_CHARS = 160;

const $ = (id) => {
  const element = document.getElementById(id);
  if (element === null) throw new Error(`the page has no #${id}`);
  return element;
};

const state = {
  namespace: params.get('namespace') || 'default',
  broker: undefined,
  trigger: undefined,
  filter: '',
  refreshAgain: false,
  /** The live stream being read, if any: aborting its controller ends it. */
  /** @type {{ controller: AbortController } | undefined} */
  stream: undefined,
  refreshing: false,
};

// ---- the API token ----

// The token is kept in this tab's sessionStorage only: never in localStorage, a cookie or the
// address, so it goes when the tab closes and is sent nowhere but in the Authorization header.
const TOKEN_KEY = 'tributary.token';

function storedToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) ?? '';
  } catch {
    return '';
  }
}

function storeToken(token) {
  try {
    if (token === '') sessionStorage.removeItem(TOKEN_KEY);
    else sessionStorage.setItem(TOKEN_KEY, token);
  } catch {
    // Storage is off (a privacy setting): the token then lasts until the page is left.
  }
  memoryToken = token;
}

let memoryToken = storedToken();

/** `headers` with `Authorization: Bearer <token>` added when a token is set. */
function withToken(headers) {
  return memoryToken === '' ? headers : { ...headers, authorization: `Bearer ${memoryToken}` };
}

// ---- talking to the API ----

class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

/** One line from an application/problem+json answer: its detail and every field problem. */
function describeProblem(status, problem) {
  if (problem === null || typeof problem !== 'object') return `The server answered ${status}`;
  const parts = [String(problem.detail ?? problem.title ?? `The server answered ${status}`)];
  if (Array.isArray(problem.errors)) {
    for (const e of problem.errors) parts.push(`${e.field}: ${e.message}`);
  }
  return parts.join(' — ');
}

/** What to do about a 401 or a 403, or nothing for any other status. */
function tokenHint(status) {
  if (status === 401) {
    return memoryToken === ''
      ? 'This server requires a token: enter one in the API token field at the top.'
      : 'The server does not accept this token: enter another one, or forget it.';
  }
  if (status === 403) {
    return 'The token in use lacks this access: enter a token for this namespace, or choose a namespace it may use.';
  }
  return '';
}

/** The problem of a refused answer, with the token hint when the refusal is about the token. */
function refusal(status, body) {
  const hint = tokenHint(status);
  const text = `${describeProblem(status, body)} (${status})`;
  return hint === '' ? text : `${text}. ${hint}`;
}

async function api(path, init = {}) {
  const response = await fetch(path, {
    ...init,
    headers: withToken({ accept: 'application/json', ...init.headers }),
  });
  const text = await response.text();
  let body;
  try {
    body = text === '' ? undefined : JSON.parse(text);
  } catch {
    body = undefined;
  }
  if (!response.ok) throw new ApiError(refusal(response.status, body), response.status);
  return body;
}

const enc = encodeURIComponent;
const nsPath = () => `/v1/namespaces/${enc(state.namespace)}`;

// ---- rendering helpers ----

function setText(element, text) {
  const value = text === undefined || text === null ? '' : String(text);
  if (element.textContent !== value) element.textContent = value;
}

function setTitle(element, title) {
  if (title) element.setAttribute('title', title);
  else element.removeAttribute('title');
}

function showError(element, message) {
  setText(element, message ?? '');
  element.hidden = !message;
}

function cells(row, count) {
  while (row.cells.length < count) row.insertCell();
  return [...row.cells];
}

/**
 * Brings `tbody` to one row per item, in order, reusing the row of each key so that a refresh
 * keeps focus and selection where they were.
 */
function syncRows(tbody, items, keyOf, build, update) {
  const existing = new Map([...tbody.rows].map((row) => [row.dataset.key, row]));
  let previous = null;
  for (const item of items) {
    const key = keyOf(item);
    let row = existing.get(key);
    if (row === undefined) {
      row = document.createElement('tr');
      row.dataset.key = key;
      build(row, item);
    } else {
      existing.delete(key);
    }
    update(row, item);
    const expected = previous === null ? tbody.firstElementChild : previous.nextElementSibling;
    if (row !== expected) tbody.insertBefore(row, expected);
    previous = row;
  }
  for (const row of existing.values()) row.remove();
  const empty = tbody.closest('section')?.querySelector('.empty');
  if (empty) empty.hidden = items.length > 0;
}

function conditionOf(resource, type) {
  const conditions = resource.status?.conditions;
  return Array.isArray(conditions) ? conditions.find((c) => c.type === type) : undefined;
}

/** Writes a Ready condition's status into `cell`, with a class for its colour. */
function renderReady(cell, resource) {
  const status = conditionOf(resource, 'Ready')?.status ?? 'Unknown';
  setText(cell, status);
  cell.className = `ready ready-${status.toLowerCase()}`;
}

function reasonOf(resource) {
  const ready = conditionOf(resource, 'Ready');
  if (ready === undefined || ready.status === 'True') return '';
  return [ready.reason, ready.message].filter(Boolean).join(': ');
}

function counter(value) {
  return typeof value === 'number' ? String(value) : '—';
}

function selectButton(row, onClick) {
  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'link';
  button.addEventListener('click', () => onClick(row.dataset.key));
  row.cells[0].append(button);
  return button;
}

// ---- brokers, triggers, sources ----

function renderBrokers(items) {
  syncRows(
    $('brokers').tBodies[0],
    items,
    (b) => b.metadata.name,
    (row) => {
      cells(row, 3);
      selectButton(row, selectBroker);
    },
    (row, broker) => {
      const [name, ready, url] = row.cells;
      const button = name.querySelector('button');
      setText(button, broker.metadata.name);
      button.setAttribute('aria-pressed', String(state.broker === broker.metadata.name));
      setTitle(button, 'Watch this broker’s events');
      renderReady(ready, broker);
      setTitle(ready, reasonOf(broker));
      setText(url, broker.status?.address?.url);
    },
  );
}

function renderTriggers(items) {
  syncRows(
    $('triggers').tBodies[0],
    items,
    (t) => t.metadata.name,
    (row) => {
      cells(row, 10);
      for (const cell of row.cells) if (cell.cellIndex >= 5) cell.className = 'num';
      selectButton(row, selectTrigger);
    },
    (row, trigger) => {
      const [name, broker, subscriber, ready, reason, ...counters] = row.cells;
      const button = name.querySelector('button');
      setText(button, trigger.metadata.name);
      button.setAttribute('aria-pressed', String(state.trigger === trigger.metadata.name));
      setTitle(button, 'Show this trigger’s dead letters');
      setText(broker, trigger.spec?.broker);
      setText(subscriber, trigger.status?.subscriberUri ?? trigger.spec?.subscriber?.uri);
      renderReady(ready, trigger);
      const lastError = trigger.status?.lastError;
      const why = reasonOf(trigger) || (lastError ? `last error: ${lastError.message}` : '');
      setText(reason, why);
      setTitle(reason, lastError ? `${lastError.time}: ${lastError.message}` : '');
      const d = trigger.status?.deliveries ?? {};
      const values = [d.delivered, d.retried, d.deadLettered, d.kept, d.deadLettersKept];
      counters.forEach((cell, i) => setText(cell, counter(values[i])));
    },
  );
}

function sinkOf(source) {
  const sink = source.spec?.sink;
  if (sink?.ref) return `${sink.ref.kind ?? 'Broker'} ${sink.ref.name}`;
  return sink?.uri ?? source.status?.sinkUri ?? '';
}

function renderSources(items) {
  syncRows(
    $('sources').tBodies[0],
    items,
    (s) => s.metadata.name,
    (row) => cells(row, 6),
    (row, source) => {
      const [name, kind, sink, ready, reason, countersCell] = row.cells;
      setText(name, source.metadata.name);
      setText(kind, source.kind);
      setText(sink, sinkOf(source));
      setTitle(sink, source.status?.sinkUri ?? '');
      renderReady(ready, source);
      setText(reason, reasonOf(source));
      // Which counters there are depends on the kind of source (status.events).
      const events = source.status?.events ?? {};
      const entries = Object.entries(events).filter(([, v]) => typeof v === 'number');
      setText(countersCell, entries.map(([k, v]) => `${k}: ${v}`).join(', '));
    },
  );
}

async function refresh() {
  if (state.refreshing) {
    // A refresh that started before a change (of token) may answer for the old one: go again.
    state.refreshAgain = true;
    return;
  }
  state.refreshing = true;
  state.refreshAgain = false;
  const namespace = state.namespace;
  try {
    const [brokers, triggers, sources] = await Promise.all(
      ['brokers', 'triggers', 'sources'].map((c) => api(`${nsPath()}/${c}`)),
    );
    if (namespace !== state.namespace) return;
    renderBrokers(brokers.items);
    renderTriggers(triggers.items);
    renderSources(sources.items);
    showError($('load-error'), '');
    setText($('refreshed'), `Updated ${new Date().toLocaleTimeString()}`);
    if (state.trigger !== undefined) await loadDeadLetters();
  } catch (error) {
    showError($('load-error'), `Could not read namespace "${namespace}": ${error.message}`);
  } finally {
    state.refreshing = false;
  }
  if (state.refreshAgain) void refresh();
}

// ---- live events of a broker ----

/** Waits before the next attempt after a lost stream: 0.5 s, doubling, at most 5 s. */
const backoffMs = (attempt) => Math.min(500 * 2 ** attempt, 5000);
/** A stream open this long counts as established: the backoff starts again from its shortest. */
const STABLE_MS = 10_000;

const LINE_END = /\r\n|\r|\n/g;

/**
 * Reads the text/event-stream format (the server-sent events specification): lines end with
 * CRLF, LF or CR; `field: value` lines build a message (`event:` its type, each `data:` one line
 * of its data); a line starting with `:` is a comment; a blank line dispatches the message.
 */
class EventStreamParser {
  constructor(onMessage, onComment) {
    this.onMessage = onMessage;
    this.onComment = onComment;
    this.buffer = '';
    this.type = '';
    this.data = [];
  }

  push(text) {
    this.buffer += text;
    let start = 0;
    for (;;) {
      LINE_END.lastIndex = start;
      const found = LINE_END.exec(this.buffer);
      if (found === null) break;
      // A CR last in the buffer may be the first half of a CRLF split across two chunks.
      if (found[0] === '\r' && found.index === this.buffer.length - 1) break;
      this.line(this.buffer.slice(start, found.index));
      start = found.index + found[0].length;
    }
    this.buffer = this.buffer.slice(start);
  }

  line(line) {
    if (line === '') {
      const type = this.type || 'message';
      const data = this.data;
      this.type = '';
      this.data = [];
      if (data.length > 0) this.onMessage(type, data.join('\n'));
      return;
    }
    if (line.startsWith(':')) {
      this.onComment(line.slice(1).trim());
      return;
    }
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.type = value;
    else if (field === 'data') this.data.push(value);
    // `id` and `retry` need no handling here: the stream is live only, with no replay.
  }
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function pause(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });
}

function closeStream() {
  state.stream?.controller.abort();
  state.stream = undefined;
}

function streamUrl() {
  const base = `${nsPath()}/brokers/${enc(state.broker)}/events`;
  return state.filter === '' ? base : `${base}?filter=${enc(state.filter)}`;
}

function openStream() {
  closeStream();
  showError($('stream-error'), '');
  const stream = { controller: new AbortController() };
  state.stream = stream;
  void runStream(stream, streamUrl(), state.broker);
}

/**
 * Reads the live stream at `url` until `stream` is aborted: sends the token, shows the server's
 * problem when it refuses (4xx: final; 5xx: tried again), and after a lost connection connects
 * again with a short backoff.
 */
async function runStream(stream, url, broker) {
  const { signal } = stream.controller;
  const current = () => state.stream === stream && !signal.aborted;
  const described = state.filter === '' ? 'all events' : `events where ${state.filter}`;
  let attempt = 0;
  let wasConnected = false;
  setText($('stream-state'), `Connecting to ${broker}…`);
  while (current()) {
    let response;
    try {
      response = await fetch(url, {
        signal,
        cache: 'no-store',
        headers: withToken({ accept: 'text/event-stream' }),
      });
    } catch {
      response = undefined;
    }
    if (!current()) return;
    if (response !== undefined && !response.ok) {
      const body = await response.json().catch(() => undefined);
      if (!current()) return;
      showError($('stream-error'), refusal(response.status, body));
      if (response.status < 500) {
        setText($('stream-state'), 'Not connected.');
        return;
      }
    } else if (response !== undefined) {
      const since = Date.now();
      wasConnected = true;
      showError($('stream-error'), '');
      const connected = `Connected: showing ${described} as they arrive.`;
      setText($('stream-state'), connected);
      const parser = new EventStreamParser(
        (type, data) => {
          if (type === 'cloudevent' && current()) addEvent(data);
        },
        (comment) => {
          const dropped = /^dropped (\d+)$/.exec(comment);
          if (dropped !== null && current()) {
            setText($('stream-state'), `${connected} ${dropped[1]} skipped: the page fell behind.`);
          }
        },
      );
      try {
        await readStream(response.body, parser, signal);
      } catch {
        // A lost connection or an abort: decided below.
      }
      if (!current()) return;
      // Back to the shortest wait only after a stream that lasted: one that a proxy keeps
      // closing at once is asked again less and less often.
      if (Date.now() - since > STABLE_MS) attempt = 0;
    }
    const wait = backoffMs(attempt++);
    const seconds = (wait / 1000).toLocaleString();
    setText(
      $('stream-state'),
      wasConnected
        ? `Connection lost; reconnecting in ${seconds} s…`
        : `Could not connect; trying again in ${seconds} s…`,
    );
    await pause(wait, signal);
  }
}

/** Feeds `body` (a byte stream) to `parser` as text until it ends or `signal` aborts. */
async function readStream(body, parser, signal) {
  const reader = body.getReader();
  const cancel = () => void reader.cancel().catch(() => {});
  signal.addEventListener('abort', cancel, { once: true });
  const decoder = new TextDecoder();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      parser.push(decoder.decode(value, { stream: true }));
    }
    parser.push(decoder.decode());
  } finally {
    signal.removeEventListener('abort', cancel);
  }
}

function previewOf(event) {
  let text = '';
  if (event.data !== undefined) {
    text = typeof event.data === 'string' ? event.data : JSON.stringify(event.data);
  } else if (event.data_base64 !== undefined) {
    text = `(base64) ${event.data_base64}`;
  }
  return text.length > PREVIEW_CHARS ? `${text.slice(0, PREVIEW_CHARS)}…` : text;
}

function addEvent(json) {
  let event;
  try {
    event = JSON.parse(json);
  } catch {
    event = { data: json };
  }
  const tbody = $('events').tBodies[0];
  const row = document.createElement('tr');
  for (const value of [event.type, event.source, event.id, event.time, previewOf(event)]) {
    const cell = row.insertCell();
    cell.textContent = value === undefined ? '' : String(value);
  }
  const pretty = JSON.stringify(event, null, 2);
  row.cells[4].setAttribute('title', pretty.length > 4000 ? `${pretty.slice(0, 4000)}…` : pretty);
  row.cells[4].className = 'data';
  tbody.prepend(row);
  while (tbody.rows.length > EVENT_CAP) tbody.lastElementChild.remove();
}

function selectBroker(name) {
  state.broker = name;
  $('events-panel').hidden = false;
  setText($('events-heading'), `Live events of broker ${name}`);
  $('events').tBodies[0].replaceChildren();
  for (const button of $('brokers').querySelectorAll('tbody button')) {
    button.setAttribute('aria-pressed', String(button.textContent === name));
  }
  openStream();
}

function closeEvents() {
  closeStream();
  state.broker = undefined;
  $('events-panel').hidden = true;
  for (const button of $('brokers').querySelectorAll('tbody button')) {
    button.setAttribute('aria-pressed', 'false');
  }
}

// ---- dead letters of a trigger ----

function deadLettersPath() {
  return `${nsPath()}/triggers/${enc(state.trigger)}/deadletters`;
}

async function loadDeadLetters() {
  const trigger = state.trigger;
  try {
    const body = await api(`${deadLettersPath()}?limit=100`);
    if (trigger !== state.trigger) return;
    renderDeadLetters(body.items);
    const shown = body.items.length < body.total ? ` (the oldest ${body.items.length} shown)` : '';
    setText($('deadletters-state'), `${body.total} kept${shown}`);
    $('redrive-all').disabled = body.total === 0;
    showError($('deadletters-error'), '');
  } catch (error) {
    if (trigger === state.trigger) showError($('deadletters-error'), error.message);
  }
}

function renderDeadLetters(items) {
  syncRows(
    $('deadletters').tBodies[0],
    items,
    (d) => d.id,
    (row) => {
      cells(row, 8);
      row.cells[4].className = 'num';
      row.cells[5].className = 'num';
      const button = document.createElement('button');
      button.type = 'button';
      button.textContent = 'Redrive';
      button.addEventListener('click', () => void redrive([row.dataset.key]));
      row.cells[7].append(button);
    },
    (row, item) => {
      const [id, type, source, reason, attempts, lastStatus, at, action] = row.cells;
      setText(id, item.event?.id);
      setText(type, item.event?.type);
      setText(source, item.event?.source);
      setText(reason, item.reason);
      setTitle(reason, item.destination ? `destination: ${item.destination}` : '');
      setText(attempts, counter(item.attempts));
      setText(lastStatus, item.lastStatus ?? '—');
      setText(at, item.deadLetteredAt);
      action.querySelector('button').setAttribute('aria-label', `Redrive ${item.event?.id ?? ''}`);
    },
  );
}

/** Redrives the dead letters `ids`, or all of the trigger's without them. */
async function redrive(ids) {
  try {
    const body = await api(`${deadLettersPath()}/redrive`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(ids === undefined ? {} : { ids }),
    });
    setText($('deadletters-state'), `Redriven: ${body.redriven}`);
    showError($('deadletters-error'), '');
  } catch (error) {
    showError($('deadletters-error'), `Redrive failed: ${error.message}`);
  }
  await loadDeadLetters();
}

function selectTrigger(name) {
  state.trigger = name;
  $('deadletters-panel').hidden = false;
  setText($('deadletters-heading'), `Dead letters of trigger ${name}`);
  setText($('deadletters-state'), 'Loading…');
  $('deadletters').tBodies[0].replaceChildren();
  for (const button of $('triggers').querySelectorAll('tbody button')) {
    button.setAttribute('aria-pressed', String(button.textContent === name));
  }
  void loadDeadLetters();
}

function closeDeadLetters() {
  state.trigger = undefined;
  $('deadletters-panel').hidden = true;
  for (const button of $('triggers').querySelectorAll('tbody button')) {
    button.setAttribute('aria-pressed', 'false');
  }
}

// ---- wiring ----

function showNamespace(namespace) {
  state.namespace = namespace;
  closeEvents();
  closeDeadLetters();
  for (const id of ['brokers', 'triggers', 'sources']) $(id).tBodies[0].replaceChildren();
  const url = new URL(location.href);
  url.searchParams.set('namespace', namespace);
  history.replaceState(null, '', url);
  void refresh();
}

// ---- the token form ----

function showTokenState() {
  const set = memoryToken !== '';
  setText(
    $('token-state'),
    set ? 'A token is in use (kept in this tab only).' : 'No token: requests are sent without one.',
  );
  $('forget-token').disabled = !set;
}

/** Uses `token` (or none) from now on: the lists, dead letters and live stream ask again. */
function useToken(token) {
  storeToken(token);
  $('token').value = '';
  showTokenState();
  if (state.broker !== undefined) openStream();
  void refresh();
}

$('token-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const token = $('token').value.trim();
  if (token === '') return;
  // A bearer token is visible ASCII; anything else could not even be sent as a header.
  if (!/^[\x21-\x7e]+$/.test(token)) {
    setText($('token-state'), 'Not used: a token has only visible ASCII characters, no spaces.');
    return;
  }
  useToken(token);
});
$('forget-token').addEventListener('click', () => useToken(''));
showTokenState();

$('namespace').value = state.namespace;
setText($('events-cap'), EVENT_CAP);
$('namespace-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const namespace = $('namespace').value.trim();
  if (namespace !== '') showNamespace(namespace);
});
$('filter-form').addEventListener('submit', (e) => {
  e.preventDefault();
  state.filter = $('filter').value.trim();
  if (state.broker !== undefined) openStream();
});
$('clear-events').addEventListener('click', () => $('events').tBodies[0].replaceChildren());
$('close-events').addEventListener('click', closeEvents);
$('redrive-all').addEventListener('click', () => void redrive(undefined));
$('close-deadletters').addEventListener('click', closeDeadLetters);

void refresh();
setInterval(() => {
  if (!document.hidden) void refresh();
}, REFRESH_MS);
