/**
 * A renderer for Helm charts that understands only the small part of Go's text/template and of
 * Helm's function library that deploy/helm/tributary uses, so the chart can be rendered and checked
 * on machines without helm. Anything else (an unknown function, keyword or syntax, a field of a
 * missing value, printing a map) is an error, so the chart cannot quietly start using something
 * this renderer would get wrong; where helm is installed the tests compare both renderings.
 *
 * Supported: text with `{{ }}` actions and `{{-`/`-}}` trimming, comments, `if`/`else if`/`else`,
 * `range` over lists and maps (with `$i, $v :=`), `define`, variables (`:=`, `=`), pipelines,
 * parentheses, string/number/boolean literals, `.Values`, `.Release`, `.Chart`, `.Template`, and
 * the functions in FUNCTIONS below.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';

export class TemplateError extends Error {
  override name = 'TemplateError';
}

/** A Go int (template literals and `int` results), kept apart from the float64 numbers of values. */
class GoInt {
  constructor(readonly n: number) {}
}

type Value = unknown;

// ---- lexing ---------------------------------------------------------------------------------

type Piece = { kind: 'text'; text: string } | { kind: 'action'; src: string; where: string };

/** Splits a template into text and actions, applying the `{{-` and `-}}` trim markers. */
function split(source: string, file: string): Piece[] {
  const pieces: Piece[] = [];
  let pos = 0;
  let trimNext = false;
  while (pos < source.length) {
    const open = source.indexOf('{{', pos);
    let text = open < 0 ? source.slice(pos) : source.slice(pos, open);
    if (trimNext) text = text.replace(/^\s+/, '');
    if (open < 0) {
      pieces.push({ kind: 'text', text });
      break;
    }
    const line = source.slice(0, open).split('\n').length;
    const where = `${file}:${line}`;
    let start = open + 2;
    if (/^-[ \t\r\n]/.test(source.slice(start, start + 2))) {
      text = text.replace(/\s+$/, '');
      start += 1;
    }
    pieces.push({ kind: 'text', text });
    let close: number;
    if (/^\s*\/\*/.test(source.slice(start))) {
      const commentEnd = source.indexOf('*/', start);
      if (commentEnd < 0) throw new TemplateError(`${where}: unclosed comment`);
      close = source.indexOf('}}', commentEnd);
      if (
        close < 0 ||
        source
          .slice(commentEnd + 2, close)
          .trim()
          .replace(/^-$/, '') !== ''
      ) {
        throw new TemplateError(`${where}: a comment must end its action`);
      }
    } else {
      close = findClose(source, start, where);
    }
    let inner = source.slice(start, close);
    trimNext = /[ \t\r\n]-$/.test(inner);
    if (trimNext) inner = inner.slice(0, -1);
    if (!/^\s*\/\*/.test(inner)) pieces.push({ kind: 'action', src: inner, where });
    pos = close + 2;
  }
  return pieces;
}

/** The index of the `}}` ending an action, skipping strings. */
function findClose(source: string, from: number, where: string): number {
  let i = from;
  while (i < source.length) {
    const c = source[i];
    if (c === '"' || c === '`') {
      const end = c === '"' ? /"(?:[^"\\\n]|\\.)*"/y : /`[^`]*`/y;
      end.lastIndex = i;
      if (end.exec(source) === null) throw new TemplateError(`${where}: unterminated string`);
      i = end.lastIndex;
      continue;
    }
    if (source.startsWith('}}', i)) return i;
    i += 1;
  }
  throw new TemplateError(`${where}: unclosed action`);
}

type Token =
  | { t: 'field'; path: string[] }
  | { t: 'var'; name: string; path: string[] }
  | { t: 'lit'; value: Value }
  | { t: 'ident'; name: string }
  | { t: 'punct'; p: '(' | ')' | '|' | ',' | ':=' | '=' };

const TOKEN_PATTERNS: [RegExp, (m: RegExpExecArray) => Token][] = [
  [/\s+/y, () => ({ t: 'punct', p: ',' })], // placeholder, filtered below
  [/:=/y, () => ({ t: 'punct', p: ':=' })],
  [/[()|,=]/y, (m) => ({ t: 'punct', p: m[0] as '(' | ')' | '|' | ',' | '=' })],
  [/"(?:[^"\\\n]|\\.)*"/y, (m) => ({ t: 'lit', value: JSON.parse(m[0]) as string })],
  [/`[^`]*`/y, (m) => ({ t: 'lit', value: m[0].slice(1, -1) })],
  [
    /-?\d+(\.\d+)?(?![\w.])/y,
    (m) => ({ t: 'lit', value: m[1] === undefined ? new GoInt(Number(m[0])) : Number(m[0]) }),
  ],
  [/(?:\.[A-Za-z_]\w*)+|\.(?![\w.])/y, (m) => ({ t: 'field', path: fieldPath(m[0]) })],
  [
    /\$\w*((?:\.[A-Za-z_]\w*)*)/y,
    (m) => ({
      t: 'var',
      name: m[0].slice(0, m[0].length - (m[1] ?? '').length),
      path: fieldPath(m[1] ?? ''),
    }),
  ],
  [/[A-Za-z_]\w*/y, (m) => ({ t: 'ident', name: m[0] })],
];

function fieldPath(text: string): string[] {
  return text.split('.').filter((part) => part !== '');
}

function tokenize(src: string, where: string): Token[] {
  const tokens: Token[] = [];
  let pos = 0;
  outer: while (pos < src.length) {
    for (const [index, [pattern, make]] of TOKEN_PATTERNS.entries()) {
      pattern.lastIndex = pos;
      const m = pattern.exec(src);
      if (m === null) continue;
      pos = pattern.lastIndex;
      if (index === 0) continue outer;
      const token = make(m);
      if (token.t === 'ident' && ['true', 'false', 'nil'].includes(token.name)) {
        tokens.push({ t: 'lit', value: token.name === 'nil' ? null : token.name === 'true' });
      } else {
        tokens.push(token);
      }
      continue outer;
    }
    throw new TemplateError(`${where}: cannot read "${src.slice(pos)}" in {{${src}}}`);
  }
  return tokens;
}

// ---- parsing --------------------------------------------------------------------------------

type Operand =
  | { k: 'field'; path: string[] }
  | { k: 'var'; name: string; path: string[] }
  | { k: 'lit'; value: Value }
  | { k: 'ident'; name: string }
  | { k: 'sub'; pipe: Pipeline };
interface Pipeline {
  decl?: { names: string[]; op: ':=' | '=' };
  commands: Operand[][];
  where: string;
}
type Node =
  | { n: 'text'; text: string }
  | { n: 'action'; pipe: Pipeline }
  | { n: 'if'; branches: { cond: Pipeline; body: Node[] }[]; otherwise: Node[] }
  | { n: 'range'; pipe: Pipeline; body: Node[]; otherwise: Node[] };

const UNSUPPORTED_KEYWORDS = ['with', 'template', 'block', 'break', 'continue'];

class Parser {
  private i = 0;
  constructor(
    private readonly pieces: Piece[],
    private readonly defines: Map<string, Node[]>,
  ) {}

  /** Parses until one of `stops` (an action keyword); returns the nodes and the stopping action. */
  parseList(stops: string[]): {
    nodes: Node[];
    stop?: { word: string; rest: Token[]; where: string };
  } {
    const nodes: Node[] = [];
    while (this.i < this.pieces.length) {
      const piece = this.pieces[this.i++]!;
      if (piece.kind === 'text') {
        if (piece.text !== '') nodes.push({ n: 'text', text: piece.text });
        continue;
      }
      const tokens = tokenize(piece.src, piece.where);
      const first = tokens[0];
      if (first === undefined) throw new TemplateError(`${piece.where}: empty action`);
      const word = first.t === 'ident' ? first.name : '';
      if (['end', 'else'].includes(word)) {
        if (!stops.includes(word))
          throw new TemplateError(`${piece.where}: unexpected {{${word}}}`);
        return { nodes, stop: { word, rest: tokens.slice(1), where: piece.where } };
      }
      if (UNSUPPORTED_KEYWORDS.includes(word)) {
        throw new TemplateError(`${piece.where}: {{${word}}} is not supported by this renderer`);
      }
      if (word === 'if') nodes.push(this.parseIf(tokens.slice(1), piece.where));
      else if (word === 'range') nodes.push(this.parseRange(tokens.slice(1), piece.where));
      else if (word === 'define') this.parseDefine(tokens.slice(1), piece.where, stops);
      else nodes.push({ n: 'action', pipe: parsePipeline(tokens, piece.where) });
    }
    if (stops.length > 0) throw new TemplateError(`missing {{end}} (expected ${stops.join('/')})`);
    return { nodes };
  }

  private parseIf(tokens: Token[], where: string): Node {
    const branches: { cond: Pipeline; body: Node[] }[] = [];
    let cond = parsePipeline(tokens, where);
    for (;;) {
      const { nodes, stop } = this.parseList(['else', 'end']);
      branches.push({ cond, body: nodes });
      if (stop!.word === 'end') return { n: 'if', branches, otherwise: [] };
      const rest = stop!.rest;
      if (rest.length > 0 && rest[0]!.t === 'ident' && rest[0]!.name === 'if') {
        cond = parsePipeline(rest.slice(1), stop!.where);
        continue;
      }
      if (rest.length > 0) throw new TemplateError(`${stop!.where}: unexpected words after else`);
      const tail = this.parseList(['end']);
      return { n: 'if', branches, otherwise: tail.nodes };
    }
  }

  private parseRange(tokens: Token[], where: string): Node {
    const pipe = parsePipeline(tokens, where);
    if (pipe.decl?.op === '=') throw new TemplateError(`${where}: range needs := `);
    const { nodes, stop } = this.parseList(['else', 'end']);
    if (stop!.word === 'end') return { n: 'range', pipe, body: nodes, otherwise: [] };
    const tail = this.parseList(['end']);
    return { n: 'range', pipe, body: nodes, otherwise: tail.nodes };
  }

  private parseDefine(tokens: Token[], where: string, stops: string[]): void {
    const name = tokens[0];
    if (stops.length > 0) throw new TemplateError(`${where}: define inside another block`);
    if (tokens.length !== 1 || name?.t !== 'lit' || typeof name.value !== 'string') {
      throw new TemplateError(`${where}: define takes one string`);
    }
    const { nodes } = this.parseList(['end']);
    this.defines.set(name.value, nodes);
  }
}

function parsePipeline(tokens: Token[], where: string): Pipeline {
  let pos = 0;
  let decl: Pipeline['decl'];
  // A declaration: $a := ..., $a, $b := ..., $a = ...
  const names: string[] = [];
  let look = 0;
  while (tokens[look]?.t === 'var' && (tokens[look] as { path: string[] }).path.length === 0) {
    names.push((tokens[look] as { name: string }).name);
    const next = tokens[look + 1];
    if (next?.t === 'punct' && next.p === ',') {
      look += 2;
      continue;
    }
    if (next?.t === 'punct' && (next.p === ':=' || next.p === '=')) {
      decl = { names, op: next.p };
      pos = look + 2;
    }
    break;
  }
  const parseUntil = (closer: ')' | undefined): Pipeline => {
    const commands: Operand[][] = [[]];
    while (pos < tokens.length) {
      const token = tokens[pos++]!;
      if (token.t === 'punct') {
        if (token.p === '|') {
          commands.push([]);
          continue;
        }
        if (token.p === '(') {
          commands.at(-1)!.push({ k: 'sub', pipe: parseUntil(')') });
          continue;
        }
        if (token.p === ')' && closer === ')') return { commands: checked(commands), where };
        throw new TemplateError(`${where}: unexpected "${token.p}"`);
      }
      if (token.t === 'field') commands.at(-1)!.push({ k: 'field', path: token.path });
      else if (token.t === 'var')
        commands.at(-1)!.push({ k: 'var', name: token.name, path: token.path });
      else if (token.t === 'lit') commands.at(-1)!.push({ k: 'lit', value: token.value });
      else commands.at(-1)!.push({ k: 'ident', name: token.name });
    }
    if (closer !== undefined) throw new TemplateError(`${where}: missing ")"`);
    return { commands: checked(commands), where };
  };
  const checked = (commands: Operand[][]): Operand[][] => {
    if (commands.some((c) => c.length === 0)) throw new TemplateError(`${where}: empty command`);
    return commands;
  };
  const pipe = parseUntil(undefined);
  return decl === undefined ? pipe : { ...pipe, decl };
}

// ---- evaluation -----------------------------------------------------------------------------

interface Scope {
  readonly vars: Map<string, Value>[];
  readonly dot: Value;
}

function isMap(v: Value): v is Record<string, Value> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof GoInt);
}

/** Go's truth: false, 0, nil, "" and empty collections are false. */
function truthy(v: Value): boolean {
  if (v instanceof GoInt) return v.n !== 0;
  if (v === undefined || v === null || v === false || v === 0 || v === '') return false;
  if (Array.isArray(v)) return v.length > 0;
  if (isMap(v)) return Object.keys(v).length > 0;
  return true;
}

/** A value as plain data (GoInt unwrapped), for YAML and comparisons. */
function plain(v: Value): Value {
  if (v instanceof GoInt) return v.n;
  if (Array.isArray(v)) return v.map(plain);
  if (isMap(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  return v;
}

/** How Go prints a value in an action; maps, lists and missing values are refused. */
function print(v: Value, where: string): string {
  if (v instanceof GoInt) return String(v.n);
  if (typeof v === 'string') return v;
  if (typeof v === 'boolean') return String(v);
  if (typeof v === 'number') {
    if (Number.isInteger(v) && Math.abs(v) < 1e21 && Math.abs(v) < 1e6) return String(v);
    // Go prints large float64 values of values.yaml in exponent form (1e+06): refuse them.
    throw new TemplateError(`${where}: printing the float ${v} differs in Go; use int or quote`);
  }
  if (v === undefined || v === null) throw new TemplateError(`${where}: printing a missing value`);
  throw new TemplateError(`${where}: printing a ${Array.isArray(v) ? 'list' : 'map'}; use toYaml`);
}

function toYaml(v: Value): string {
  const data = plain(v);
  if (data === undefined || data === null) return 'null';
  if (isMap(data) && Object.keys(data).length === 0) return '{}';
  if (Array.isArray(data) && data.length === 0) return '[]';
  return stringifyYaml(data, { sortMapEntries: true, lineWidth: 0, indentSeq: false }).replace(
    /\n$/,
    '',
  );
}

function indent(n: number, text: string): string {
  const pad = ' '.repeat(n);
  return pad + text.replaceAll('\n', `\n${pad}`);
}

function num(v: Value, fn: string, where: string): number {
  if (v instanceof GoInt) return v.n;
  if (typeof v === 'number') return v;
  throw new TemplateError(`${where}: ${fn} needs a number, not ${JSON.stringify(v)}`);
}

/** Go's comparison rules: both operands of the same basic kind (int and float64 do not mix). */
function kindOf(v: Value): string {
  if (v instanceof GoInt) return 'int';
  if (typeof v === 'number') return 'float';
  if (v === null || v === undefined) return 'nil';
  return typeof v;
}

function compare(a: Value, b: Value, fn: string, where: string): number {
  if (kindOf(a) !== kindOf(b)) {
    throw new TemplateError(
      `${where}: ${fn}: incompatible types for comparison (${kindOf(a)}, ${kindOf(b)})`,
    );
  }
  const x = plain(a) as number | string;
  const y = plain(b) as number | string;
  return x < y ? -1 : x > y ? 1 : 0;
}

function equal(a: Value, b: Value, where: string): boolean {
  if (kindOf(a) === 'nil' || kindOf(b) === 'nil') return kindOf(a) === kindOf(b);
  if (!['int', 'float', 'string', 'boolean'].includes(kindOf(a))) {
    throw new TemplateError(`${where}: eq: cannot compare a ${kindOf(a)}`);
  }
  return compare(a, b, 'eq', where) === 0;
}

function goPrintf(format: string, args: Value[], where: string): string {
  let i = 0;
  return format.replace(/%([sdvq%])/g, (_m, verb: string) => {
    if (verb === '%') return '%';
    if (i >= args.length) throw new TemplateError(`${where}: printf: too few arguments`);
    const arg = args[i++];
    if (verb === 'd') return String(num(arg, 'printf %d', where));
    if (verb === 'q') return JSON.stringify(print(arg, where));
    return print(arg, where);
  });
}

type Fn = (
  args: Value[],
  ctx: { where: string; include: (name: string, data: Value) => string },
) => Value;

function arity(name: string, args: Value[], min: number, max: number, where: string): void {
  if (args.length < min || args.length > max) {
    throw new TemplateError(`${where}: ${name} takes ${min}-${max} arguments, got ${args.length}`);
  }
}

/** The functions the chart may use: Go's builtins and a few of Sprig's and Helm's. */
const FUNCTIONS: Record<string, Fn> = {
  include: (args, { where, include }) => {
    arity('include', args, 2, 2, where);
    return include(String(args[0]), args[1]);
  },
  toYaml: (args, { where }) => (arity('toYaml', args, 1, 1, where), toYaml(args[0])),
  nindent: (args, { where }) => {
    arity('nindent', args, 2, 2, where);
    return `\n${indent(num(args[0], 'nindent', where), print(args[1], where))}`;
  },
  indent: (args, { where }) => {
    arity('indent', args, 2, 2, where);
    return indent(num(args[0], 'indent', where), print(args[1], where));
  },
  quote: (args) =>
    args
      .filter((a) => a !== undefined && a !== null)
      .map((a) => JSON.stringify(typeof a === 'string' ? a : String(plain(a))))
      .join(' '),
  default: (args, { where }) => {
    arity('default', args, 1, 2, where);
    return args.length === 2 && truthy(args[1]) ? args[1] : args[0];
  },
  required: (args, { where }) => {
    arity('required', args, 2, 2, where);
    if (args[1] === undefined || args[1] === null || args[1] === '') {
      throw new TemplateError(`${where}: ${String(args[0])}`);
    }
    return args[1];
  },
  fail: (args, { where }) => {
    arity('fail', args, 1, 1, where);
    throw new TemplateError(`${where}: ${String(args[0])}`);
  },
  eq: (args, { where }) => {
    if (args.length < 2) throw new TemplateError(`${where}: eq needs two arguments`);
    return args.slice(1).some((b) => equal(args[0], b, where));
  },
  ne: (args, { where }) => (arity('ne', args, 2, 2, where), !equal(args[0], args[1], where)),
  lt: (args, { where }) => (
    arity('lt', args, 2, 2, where),
    compare(args[0], args[1], 'lt', where) < 0
  ),
  le: (args, { where }) => (
    arity('le', args, 2, 2, where),
    compare(args[0], args[1], 'le', where) <= 0
  ),
  gt: (args, { where }) => (
    arity('gt', args, 2, 2, where),
    compare(args[0], args[1], 'gt', where) > 0
  ),
  ge: (args, { where }) => (
    arity('ge', args, 2, 2, where),
    compare(args[0], args[1], 'ge', where) >= 0
  ),
  // `and` and `or` are evaluated lazily by Renderer.logic; these entries only make them known.
  and: () => {
    throw new TemplateError('and is evaluated by the renderer');
  },
  or: () => {
    throw new TemplateError('or is evaluated by the renderer');
  },
  not: (args, { where }) => (arity('not', args, 1, 1, where), !truthy(args[0])),
  int: (args, { where }) => {
    arity('int', args, 1, 1, where);
    const v = args[0];
    if (typeof v === 'string' && /^-?\d+$/.test(v)) return new GoInt(Number(v));
    if (v === undefined || v === null) return new GoInt(0);
    return new GoInt(Math.trunc(num(v, 'int', where)));
  },
  printf: (args, { where }) => {
    if (typeof args[0] !== 'string') throw new TemplateError(`${where}: printf needs a format`);
    return goPrintf(args[0], args.slice(1), where);
  },
  trunc: (args, { where }) => {
    arity('trunc', args, 2, 2, where);
    return print(args[1], where).slice(0, num(args[0], 'trunc', where));
  },
  trimSuffix: (args, { where }) => {
    arity('trimSuffix', args, 2, 2, where);
    const [suffix, text] = [print(args[0], where), print(args[1], where)];
    return suffix !== '' && text.endsWith(suffix) ? text.slice(0, -suffix.length) : text;
  },
  list: (args) => args,
  has: (args, { where }) => {
    arity('has', args, 2, 2, where);
    if (!Array.isArray(args[1])) throw new TemplateError(`${where}: has needs a list`);
    return args[1].some((item) => kindOf(item) === kindOf(args[0]) && equal(item, args[0], where));
  },
  trim: (args, { where }) => (arity('trim', args, 1, 1, where), print(args[0], where).trim()),
  sha256sum: (args, { where }) => (
    arity('sha256sum', args, 1, 1, where),
    createHash('sha256').update(print(args[0], where)).digest('hex')
  ),
};

class Renderer {
  constructor(private readonly defines: Map<string, Node[]>) {}

  private depth = 0;

  include(name: string, data: Value, where: string): string {
    const body = this.defines.get(name);
    if (body === undefined) throw new TemplateError(`${where}: no template "${name}"`);
    if (++this.depth > 50) throw new TemplateError(`${where}: include nested too deeply`);
    try {
      return this.run(body, { vars: [new Map([['$', data]])], dot: data });
    } finally {
      this.depth -= 1;
    }
  }

  run(nodes: Node[], scope: Scope): string {
    let out = '';
    for (const node of nodes) {
      if (node.n === 'text') out += node.text;
      else if (node.n === 'action') {
        const value = this.pipeline(node.pipe, scope);
        if (node.pipe.decl === undefined) out += print(value, node.pipe.where);
      } else if (node.n === 'if') {
        const inner: Scope = { vars: [...scope.vars, new Map()], dot: scope.dot };
        const branch = node.branches.find((b) => truthy(this.pipeline(b.cond, inner)));
        out += this.run(branch?.body ?? node.otherwise, inner);
      } else {
        out += this.range(node, scope);
      }
    }
    return out;
  }

  private range(node: Extract<Node, { n: 'range' }>, scope: Scope): string {
    const { decl, ...pipe } = node.pipe;
    const over = this.pipeline(pipe, scope);
    let entries: [Value, Value][];
    if (Array.isArray(over)) entries = over.map((v, i) => [new GoInt(i), v]);
    else if (isMap(over))
      entries = Object.keys(over)
        .sort()
        .map((k) => [k, over[k]]);
    else if (over === undefined || over === null) entries = [];
    else throw new TemplateError(`${node.pipe.where}: range over ${kindOf(over)}`);
    if (entries.length === 0) return this.run(node.otherwise, scope);
    const names = decl?.names ?? [];
    if (names.length > 2) throw new TemplateError(`${node.pipe.where}: too many range variables`);
    let out = '';
    for (const [key, value] of entries) {
      const vars = new Map<string, Value>();
      if (names.length === 1) vars.set(names[0]!, value);
      if (names.length === 2) {
        vars.set(names[0]!, key);
        vars.set(names[1]!, value);
      }
      out += this.run(node.body, { vars: [...scope.vars, vars], dot: value });
    }
    return out;
  }

  private lookup(name: string, scope: Scope, where: string): Map<string, Value> {
    for (let i = scope.vars.length - 1; i >= 0; i--)
      if (scope.vars[i]!.has(name)) return scope.vars[i]!;
    throw new TemplateError(`${where}: undefined variable ${name}`);
  }

  pipeline(pipe: Pipeline, scope: Scope): Value {
    let value: Value;
    let piped = false;
    for (const command of pipe.commands) {
      value = this.command(command, scope, pipe.where, piped ? [value] : []);
      piped = true;
    }
    if (pipe.decl !== undefined) {
      if (pipe.decl.names.length !== 1) {
        throw new TemplateError(`${pipe.where}: only range declares two variables`);
      }
      const name = pipe.decl.names[0]!;
      if (pipe.decl.op === ':=') scope.vars.at(-1)!.set(name, value);
      else this.lookup(name, scope, pipe.where).set(name, value);
    }
    return value;
  }

  private command(command: Operand[], scope: Scope, where: string, piped: Value[]): Value {
    const head = command[0]!;
    if (head.k === 'ident') {
      const fn = FUNCTIONS[head.name];
      if (fn === undefined) throw new TemplateError(`${where}: unknown function "${head.name}"`);
      const rest = command.slice(1);
      if (head.name === 'and' || head.name === 'or')
        return this.logic(head.name, rest, scope, where, piped);
      const args = [...rest.map((o) => this.operand(o, scope, where)), ...piped];
      return fn(args, { where, include: (name, data) => this.include(name, data, where) });
    }
    if (command.length > 1 || piped.length > 0) {
      throw new TemplateError(`${where}: cannot give arguments to a value that is not a function`);
    }
    return this.operand(head, scope, where);
  }

  /** `and` and `or` stop at the first operand that decides, as Go's do, and return it. */
  private logic(
    name: 'and' | 'or',
    operands: Operand[],
    scope: Scope,
    where: string,
    piped: Value[],
  ): Value {
    const thunks = [
      ...operands.map((o) => () => this.operand(o, scope, where)),
      ...piped.map((v) => () => v),
    ];
    if (thunks.length < 2) throw new TemplateError(`${where}: ${name} needs two arguments`);
    let value: Value;
    for (const thunk of thunks) {
      value = thunk();
      if (name === 'and' ? !truthy(value) : truthy(value)) return value;
    }
    return value;
  }

  private operand(op: Operand, scope: Scope, where: string): Value {
    switch (op.k) {
      case 'lit':
        return op.value;
      case 'sub':
        return this.pipeline(op.pipe, scope);
      case 'ident':
        return this.command([op], scope, where, []);
      case 'field':
        return walk(scope.dot, op.path, '.', where);
      case 'var':
        return walk(this.lookup(op.name, scope, where).get(op.name), op.path, op.name, where);
    }
  }
}

/** `.a.b.c` of a value: a missing last key is nil; a field of nil or of a non-map is an error. */
function walk(start: Value, pathParts: string[], from: string, where: string): Value {
  let v = start;
  let walked = from;
  for (const part of pathParts) {
    if (!isMap(v)) {
      throw new TemplateError(
        `${where}: ${walked} is ${v === undefined || v === null ? 'nil' : kindOf(v)}, so it has no field ${part}`,
      );
    }
    v = Object.hasOwn(v, part) ? v[part] : undefined;
    walked = `${walked === '.' ? '' : walked}.${part}`;
  }
  return v;
}

// ---- charts ---------------------------------------------------------------------------------

/** Helm's values merge: maps merge key by key, anything else replaces, null removes the key. */
export function mergeValues(base: Value, over: Value): Value {
  if (!isMap(base) || !isMap(over)) return over === undefined ? base : over;
  const out: Record<string, Value> = { ...base };
  for (const [key, value] of Object.entries(over)) {
    if (value === null) delete out[key];
    else out[key] = mergeValues(base[key], value);
  }
  return out;
}

export interface RenderOptions {
  /** Values over the chart's values.yaml (as `-f values.yaml` would give them). */
  readonly values?: Record<string, unknown>;
  readonly releaseName?: string;
  readonly namespace?: string;
}

export interface RenderedChart {
  /** Output of each manifest template that rendered to more than whitespace, by path in the chart. */
  readonly manifests: Map<string, string>;
  /** The rendered NOTES.txt, when the chart has one. */
  readonly notes?: string;
  /** The values the templates saw. */
  readonly values: Record<string, unknown>;
}

/**
 * The chart's .helmignore as a test of a template's file name. Only the plain forms are understood
 * (a name, or a pattern with `*`, matched against the file name); other forms are refused.
 */
function helmIgnored(chartDir: string): (file: string) => boolean {
  const ignoreFile = path.join(chartDir, '.helmignore');
  if (!existsSync(ignoreFile)) return () => false;
  const patterns = readFileSync(ignoreFile, 'utf8')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .filter((line) => !line.endsWith('/')) // directories: templates/ has none
    .map((line) => {
      if (/[/!?[\]]/.test(line)) throw new TemplateError(`.helmignore: "${line}" is not supported`);
      const escaped = line.replace(/[.+^${}()|\\]/g, '\\$&').replaceAll('*', '[^/]*');
      return new RegExp(`^${escaped}$`);
    });
  return (file) => patterns.some((pattern) => pattern.test(file));
}

/** Renders a chart directory as `helm template` would, within the supported subset. */
export function renderChart(chartDir: string, options: RenderOptions = {}): RenderedChart {
  const chartYaml = parseYaml(readFileSync(path.join(chartDir, 'Chart.yaml'), 'utf8')) as Record<
    string,
    unknown
  >;
  const chartName = String(chartYaml.name);
  const chart = Object.fromEntries(
    Object.entries(chartYaml).map(([k, v]) => [k.charAt(0).toUpperCase() + k.slice(1), v]),
  );
  const defaults = parseYaml(readFileSync(path.join(chartDir, 'values.yaml'), 'utf8')) ?? {};
  const values = mergeValues(defaults, options.values ?? {}) as Record<string, unknown>;
  const templatesDir = path.join(chartDir, 'templates');
  const ignored = helmIgnored(chartDir);
  const files = readdirSync(templatesDir)
    .filter((file) => !ignored(file))
    .sort();
  const defines = new Map<string, Node[]>();
  const bodies = new Map<string, Node[]>();
  for (const file of files) {
    const name = `${chartName}/templates/${file}`;
    const source = readFileSync(path.join(templatesDir, file), 'utf8');
    const { nodes } = new Parser(split(source, name), defines).parseList([]);
    bodies.set(file, nodes);
  }
  const renderer = new Renderer(defines);
  const manifests = new Map<string, string>();
  let notes: string | undefined;
  for (const [file, nodes] of bodies) {
    const top = {
      Values: values,
      Release: {
        Name: options.releaseName ?? 'release-name',
        Namespace: options.namespace ?? 'default',
        Service: 'Helm',
        IsInstall: true,
        IsUpgrade: false,
        Revision: new GoInt(1),
      },
      Chart: chart,
      Template: { Name: `${chartName}/templates/${file}`, BasePath: `${chartName}/templates` },
    };
    const out = renderer.run(nodes, { vars: [new Map([['$', top]])], dot: top });
    if (file.startsWith('_')) {
      if (out.trim() !== '')
        throw new TemplateError(`${file}: a partial must only define templates`);
    } else if (file === 'NOTES.txt') notes = out;
    else if (out.trim() !== '') manifests.set(`templates/${file}`, out);
  }
  return notes === undefined ? { manifests, values } : { manifests, notes, values };
}

/** Every YAML document of a rendering (empty documents dropped). */
export function manifestDocuments(rendered: RenderedChart): Record<string, unknown>[] {
  const docs: Record<string, unknown>[] = [];
  for (const [file, text] of rendered.manifests) {
    for (const part of text.split(/^---\s*$/m)) {
      if (part.trim() === '') continue;
      let doc: unknown;
      try {
        doc = parseYaml(part);
      } catch (error) {
        throw new TemplateError(`${file} is not valid YAML: ${(error as Error).message}\n${part}`);
      }
      if (doc !== null) docs.push(doc as Record<string, unknown>);
    }
  }
  return docs;
}
