/* global document, location, history, fetch, URL, URLSearchParams, EventSource, AbortController, setInterval */
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
  /** @type {EventSource | undefined} */
  stream: undefined,
  refreshing: false,
};

// ---- talking to the API ----

class ApiError extends Error {}

/** One line from an application/problem+json answer: its detail and every field problem. */
function describeProblem(status, problem) {
  if (problem === null || typeof problem !== 'object') return `The server answered ${status}`;
  const parts = [String(problem.detail ?? problem.title ?? `The server answered ${status}`)];
  if (Array.isArray(problem.errors)) {
    for (const e of problem.errors) parts.push(`${e.field}: ${e.message}`);
  }
  return parts.join(' — ');
}

async function api(path, init = {}) {
  const response = await fetch(path, {
    ...init,
    headers: { accept: 'application/json', ...init.headers },
  });
  const text = await response.text();
  let body;
  try {
    body = text === '' ? undefined : JSON.parse(text);
  } catch {
    body = undefined;
  }
  if (!response.ok) throw new ApiError(describeProblem(response.status, body));
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
  if (state.refreshing) return;
  state.refreshing = true;
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
}

// ---- live events of a broker ----

function closeStream() {
  state.stream?.close();
  state.stream = undefined;
}

function streamUrl() {
  const base = `${nsPath()}/brokers/${enc(state.broker)}/events`;
  return state.filter === '' ? base : `${base}?filter=${enc(state.filter)}`;
}

function openStream() {
  closeStream();
  showError($('stream-error'), '');
  const url = streamUrl();
  const stream = new EventSource(url);
  state.stream = stream;
  const described = state.filter === '' ? 'all events' : `events where ${state.filter}`;
  setText($('stream-state'), `Connecting to ${state.broker}…`);
  stream.addEventListener('open', () => {
    if (state.stream !== stream) return;
    setText($('stream-state'), `Connected: showing ${described} as they arrive.`);
  });
  stream.addEventListener('cloudevent', (message) => {
    if (state.stream === stream) addEvent(message.data);
  });
  stream.addEventListener('error', () => {
    if (state.stream !== stream) return;
    if (stream.readyState === EventSource.CLOSED) {
      // The server refused the stream (a bad filter, an unknown broker): ask it why.
      state.stream = undefined;
      setText($('stream-state'), 'Not connected.');
      void explainRefusal(url);
    } else {
      setText($('stream-state'), 'Connection lost; reconnecting…');
    }
  });
}

/** Shows the problem the server gives for `url`, which EventSource does not expose. */
async function explainRefusal(url) {
  const controller = new AbortController();
  try {
    const response = await fetch(url, {
      signal: controller.signal,
      headers: { accept: 'text/event-stream' },
    });
    if (response.ok) {
      controller.abort();
      showError($('stream-error'), 'The event stream stopped. Apply the filter to reconnect.');
      return;
    }
    const body = await response.json().catch(() => undefined);
    showError($('stream-error'), describeProblem(response.status, body));
  } catch (error) {
    showError($('stream-error'), `The event stream failed: ${error.message}`);
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
