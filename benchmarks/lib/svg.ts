/**
 * SVG charts without a dependency: line panels (linear or logarithmic axes) and grouped bar panels,
 * side by side in one figure. Plain SVG 1.1 that GitHub renders in a README.
 */

export interface Series {
  readonly name: string;
  readonly points: readonly (readonly [number, number])[];
  readonly dashed?: boolean;
}

export interface LinePanel {
  readonly kind: 'line';
  readonly title: string;
  readonly xLabel: string;
  readonly yLabel: string;
  readonly xLog?: boolean;
  readonly yLog?: boolean;
  readonly series: readonly Series[];
  /** A horizontal reference line (a goal). */
  readonly hline?: { readonly y: number; readonly label: string };
  /** Width in pixels (default 480). */
  readonly width?: number;
}

export interface BarPanel {
  readonly kind: 'bar';
  readonly title: string;
  readonly yLabel: string;
  readonly yLog?: boolean;
  readonly groups: readonly string[];
  readonly series: readonly { readonly name: string; readonly values: readonly number[] }[];
  /** Width in pixels (default 480). */
  readonly width?: number;
}

export type Panel = LinePanel | BarPanel;

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#17becf'];
const DEFAULT_WIDTH = 480;
const H = 330;
const M = { left: 62, right: 16, top: 34, bottom: 48 };
/** Bar panels put their legend in a row under the title, above the bars. */
const BAR_TOP = M.top + 22;

/** The panel being drawn: its width and the top of its plot area. */
interface Box {
  readonly w: number;
  readonly top: number;
}

function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** 1200 -> 1.2k, 0.25 -> 0.25. */
export function short(value: number): string {
  const abs = Math.abs(value);
  if (abs >= 1e6) return `${+(value / 1e6).toPrecision(3)}M`;
  if (abs >= 1e3) return `${+(value / 1e3).toPrecision(3)}k`;
  return `${+value.toPrecision(3)}`;
}

interface Scale {
  (value: number): number;
  ticks: number[];
}

function niceStep(span: number, count: number): number {
  const raw = span / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const unit = raw / power;
  return (unit < 1.5 ? 1 : unit < 3 ? 2 : unit < 7 ? 5 : 10) * power;
}

function scale(min: number, max: number, from: number, to: number, log: boolean): Scale {
  if (log) {
    const lo = Math.floor(Math.log10(min));
    const hi = Math.ceil(Math.log10(max));
    const top = hi === lo ? hi + 1 : hi;
    const f = ((v: number) =>
      from + ((Math.log10(Math.max(v, 10 ** lo)) - lo) / (top - lo)) * (to - from)) as Scale;
    const ticks: number[] = [];
    for (let e = lo; e <= top; e++) {
      ticks.push(10 ** e);
      if (top - lo <= 2 && e < top) ticks.push(2 * 10 ** e, 5 * 10 ** e);
    }
    f.ticks = ticks.sort((a, b) => a - b);
    return f;
  }
  const step = niceStep(max - min || 1, 5);
  const lo = Math.floor(min / step) * step;
  const hi = Math.max(Math.ceil(max / step) * step, lo + step);
  const f = ((v: number) => from + ((v - lo) / (hi - lo)) * (to - from)) as Scale;
  f.ticks = [];
  for (let t = lo; t <= hi + step / 2; t += step) f.ticks.push(Number(t.toPrecision(12)));
  return f;
}

function frame(box: Box, title: string, xLabel: string, yLabel: string): string[] {
  const out: string[] = [];
  out.push(
    `<text x="${box.w / 2}" y="18" text-anchor="middle" font-size="13" font-weight="bold">${esc(title)}</text>`,
  );
  out.push(
    `<text x="${(M.left + box.w - M.right) / 2}" y="${H - 8}" text-anchor="middle">${esc(xLabel)}</text>`,
  );
  out.push(
    `<text transform="translate(14 ${(box.top + H - M.bottom) / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`,
  );
  return out;
}

function yAxis(box: Box, y: Scale): string[] {
  const out: string[] = [];
  for (const t of y.ticks) {
    const py = y(t).toFixed(1);
    out.push(
      `<line x1="${M.left}" x2="${box.w - M.right}" y1="${py}" y2="${py}" stroke="#e5e5e5"/>`,
      `<text x="${M.left - 5}" y="${py}" text-anchor="end" dominant-baseline="middle">${short(t)}</text>`,
    );
  }
  out.push(
    `<line x1="${M.left}" x2="${M.left}" y1="${box.top}" y2="${H - M.bottom}" stroke="#333"/>`,
    `<line x1="${M.left}" x2="${box.w - M.right}" y1="${H - M.bottom}" y2="${H - M.bottom}" stroke="#333"/>`,
  );
  return out;
}

function legend(names: readonly string[], dashed: readonly boolean[] = [], row = false): string[] {
  let x = M.left + 8;
  return names.map((name, i) => {
    const y = row ? M.top + 6 : M.top + 8 + i * 15;
    const color = COLORS[i % COLORS.length]!;
    const dash = dashed[i] === true ? ' stroke-dasharray="5 3"' : '';
    const item = `<line x1="${x}" x2="${x + 18}" y1="${y}" y2="${y}" stroke="${color}" stroke-width="2.5"${dash}/><text x="${x + 23}" y="${y}" dominant-baseline="middle">${esc(name)}</text>`;
    if (row) x += 40 + name.length * 6.5;
    return item;
  });
}

function linePanel(panel: LinePanel): string[] {
  const box: Box = { w: panel.width ?? DEFAULT_WIDTH, top: M.top };
  const points = panel.series
    .flatMap((s) => s.points)
    .filter(([x, y]) => isFinite(x) && isFinite(y));
  const xs = points.map(([x]) => x);
  const ys = points.map(([, y]) => y);
  if (panel.hline !== undefined) ys.push(panel.hline.y);
  const positive = (v: number[]): number[] => v.filter((n) => n > 0);
  const xMin = panel.xLog ? Math.min(...positive(xs)) : Math.min(0, ...xs);
  const yMin = panel.yLog ? Math.min(...positive(ys)) : Math.min(0, ...ys);
  const x = scale(xMin, Math.max(...xs), M.left, box.w - M.right, panel.xLog === true);
  const y = scale(
    yMin,
    Math.max(...ys) * (panel.yLog ? 1 : 1.05),
    H - M.bottom,
    M.top,
    panel.yLog === true,
  );
  const out = frame(box, panel.title, panel.xLabel, panel.yLabel);
  out.push(...yAxis(box, y));
  for (const t of x.ticks) {
    const px = x(t).toFixed(1);
    out.push(
      `<line x1="${px}" x2="${px}" y1="${H - M.bottom}" y2="${H - M.bottom + 4}" stroke="#333"/>`,
      `<text x="${px}" y="${H - M.bottom + 16}" text-anchor="middle">${short(t)}</text>`,
    );
  }
  if (panel.hline !== undefined) {
    const py = y(panel.hline.y).toFixed(1);
    out.push(
      `<line x1="${M.left}" x2="${box.w - M.right}" y1="${py}" y2="${py}" stroke="#555" stroke-dasharray="2 3"/>`,
      `<text x="${box.w - M.right - 4}" y="${Number(py) - 4}" text-anchor="end" fill="#555">${esc(panel.hline.label)}</text>`,
    );
  }
  panel.series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length]!;
    const visible = s.points.filter(
      ([px, py]) =>
        isFinite(px) && isFinite(py) && (!panel.yLog || py > 0) && (!panel.xLog || px > 0),
    );
    if (visible.length === 0) return;
    const d = visible.map(
      ([px, py], j) => `${j === 0 ? 'M' : 'L'}${x(px).toFixed(1)} ${y(py).toFixed(1)}`,
    );
    const dash = s.dashed === true ? ' stroke-dasharray="5 3"' : '';
    out.push(`<path d="${d.join(' ')}" fill="none" stroke="${color}" stroke-width="2"${dash}/>`);
    for (const [px, py] of visible) {
      out.push(`<circle cx="${x(px).toFixed(1)}" cy="${y(py).toFixed(1)}" r="3" fill="${color}"/>`);
    }
  });
  out.push(
    ...legend(
      panel.series.map((s) => s.name),
      panel.series.map((s) => s.dashed === true),
    ),
  );
  return out;
}

function barPanel(panel: BarPanel): string[] {
  const box: Box = { w: panel.width ?? DEFAULT_WIDTH, top: BAR_TOP };
  const values = panel.series.flatMap((s) => s.values).filter((v) => isFinite(v));
  const yMin = panel.yLog ? Math.min(...values.filter((v) => v > 0)) : 0;
  const top = panel.yLog ? Math.max(...values) * 1.6 : Math.max(...values) * 1.1;
  const y = scale(yMin, top, H - M.bottom, box.top, panel.yLog === true);
  const out = frame(box, panel.title, '', panel.yLabel);
  out.push(...yAxis(box, y));
  const groupWidth = (box.w - M.left - M.right) / panel.groups.length;
  const barWidth = (groupWidth * 0.84) / panel.series.length;
  panel.groups.forEach((group, g) => {
    const gx = M.left + g * groupWidth;
    out.push(
      `<text x="${(gx + groupWidth / 2).toFixed(1)}" y="${H - M.bottom + 16}" text-anchor="middle">${esc(group)}</text>`,
    );
    panel.series.forEach((s, i) => {
      const v = s.values[g];
      if (v === undefined || !isFinite(v) || (panel.yLog && v <= 0)) return;
      const bx = gx + groupWidth * 0.08 + i * barWidth;
      const barTop = y(v);
      const base = H - M.bottom;
      out.push(
        `<rect x="${bx.toFixed(1)}" y="${barTop.toFixed(1)}" width="${(barWidth - 2).toFixed(1)}" height="${Math.max(0, base - barTop).toFixed(1)}" fill="${COLORS[i % COLORS.length]!}"/>`,
        `<text x="${(bx + barWidth / 2 - 1).toFixed(1)}" y="${(barTop - 3).toFixed(1)}" text-anchor="middle" font-size="9">${short(v)}</text>`,
      );
    });
  });
  out.push(
    ...legend(
      panel.series.map((s) => s.name),
      [],
      true,
    ),
  );
  return out;
}

/** Splits a caption into lines of at most `chars` characters, at spaces. */
function wrap(text: string, chars: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line !== '' && line.length + 1 + word.length > chars) {
      lines.push(line);
      line = word;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  if (line !== '') lines.push(line);
  return lines;
}

/** Panels side by side in one SVG document, with a caption under them. */
export function figure(panels: readonly Panel[], caption?: string): string {
  const widths = panels.map((p) => p.width ?? DEFAULT_WIDTH);
  const width = widths.reduce((a, b) => a + b, 0);
  const lines = caption === undefined ? [] : wrap(caption, Math.floor(width / 5.6));
  const height = H + lines.length * 13 + (lines.length > 0 ? 4 : 0);
  let offset = 0;
  const body = panels.map((panel, i) => {
    const inner = panel.kind === 'line' ? linePanel(panel) : barPanel(panel);
    const g = `<g transform="translate(${offset} 0)">\n${inner.join('\n')}\n</g>`;
    offset += widths[i]!;
    return g;
  });
  const foot = lines
    .map(
      (line, i) =>
        `\n<text x="8" y="${H + 10 + i * 13}" font-size="10" fill="#555">${esc(line)}</text>`,
    )
    .join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="11">
<rect width="${width}" height="${height}" fill="#fff"/>
${body.join('\n')}${foot}
</svg>
`;
}
