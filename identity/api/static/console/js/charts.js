// Small SVG charts drawn from numbers (no library): bars for a histogram, a line for a size
// over time. Labels are text nodes, like everything else.

const NS = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = String(text);
  return el;
}

// bars: [{label, value}]
export function barChart(bars, { width = 520, height = 180, title = "" } = {}) {
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img", "aria-label": title });
  if (title) root.append(svg("title", {}, title));
  const max = Math.max(1, ...bars.map((b) => b.value));
  const left = 8, bottom = 28, top = 16;
  const slot = (width - left * 2) / Math.max(1, bars.length);
  bars.forEach((bar, i) => {
    const h = ((height - bottom - top) * bar.value) / max;
    const x = left + i * slot + slot * 0.1;
    const y = height - bottom - h;
    const rect = svg("rect", { x, y, width: slot * 0.8, height: Math.max(h, bar.value ? 1 : 0), class: "bar" });
    rect.append(svg("title", {}, `${bar.label}: ${bar.value.toLocaleString()}`));
    root.append(rect);
    root.append(svg("text", { x: x + slot * 0.4, y: height - bottom + 14, "text-anchor": "middle", class: "axis" }, bar.label));
    root.append(svg("text", { x: x + slot * 0.4, y: y - 3, "text-anchor": "middle", class: "value" }, bar.value.toLocaleString()));
  });
  return root;
}

// points: [{at: Date, value}] oldest first
export function lineChart(points, { width = 520, height = 160, title = "" } = {}) {
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img", "aria-label": title });
  if (title) root.append(svg("title", {}, title));
  if (!points.length) return root;
  const max = Math.max(1, ...points.map((p) => p.value));
  const left = 40, right = 12, top = 14, bottom = 24;
  const x = (i) => left + (points.length === 1 ? (width - left - right) / 2 : (i * (width - left - right)) / (points.length - 1));
  const y = (v) => top + (height - top - bottom) * (1 - v / max);
  root.append(svg("line", { x1: left, y1: y(0), x2: width - right, y2: y(0), class: "grid" }));
  root.append(svg("text", { x: left - 4, y: y(max) + 4, "text-anchor": "end", class: "axis" }, max.toLocaleString()));
  root.append(svg("text", { x: left - 4, y: y(0), "text-anchor": "end", class: "axis" }, "0"));
  root.append(svg("polyline", { points: points.map((p, i) => `${x(i)},${y(p.value)}`).join(" "), class: "line" }));
  points.forEach((p, i) => {
    const dot = svg("circle", { cx: x(i), cy: y(p.value), r: 3.5, class: "dot" });
    dot.append(svg("title", {}, `${p.at.toLocaleString()}: ${p.value.toLocaleString()}`));
    root.append(dot);
  });
  return root;
}
