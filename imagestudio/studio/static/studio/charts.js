// Plain SVG charts: the LF histogram with two draggable thresholds, PR and ROC curves.

const SVG = "http://www.w3.org/2000/svg";
const COLOURS = { present: "#1a7f37", absent: "#c62828", unlabeled: "#8a8f98" };

function s(tag, attributes = {}, ...children) {
  const element = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value !== undefined && value !== null) element.setAttribute(key, value);
  }
  children.forEach((child) => element.append(child));
  return element;
}

const fmt = (value) => (Math.abs(value) >= 100 ? value.toFixed(0) : Number(value.toPrecision(3)).toString());

/**
 * The score histogram by ground truth with a low and a high threshold handle, both on bin edges.
 * `low` is an edge index 0..bins (0: no ABSENT side), `high` 0..bins (bins: no PRESENT side); they never cross.
 * Handles move by pointer or keyboard (arrows, Page Up/Down, Home/End); `onMove(low, high, name)` runs on every
 * change of handle `name`, synchronously, so the caller updates what depends on them in the same frame.
 * `values` ({low, high}) draws a handle at a score between edges (a threshold as saved) until it moves.
 */
export function histogramChart({ edges, counts, low, high, invert, onMove, values = {} }) {
  const bins = edges.length - 1;
  const width = 720;
  const height = 230;
  const margin = { left: 44, right: 14, top: 22, bottom: 28 };
  const plotWidth = width - margin.left - margin.right;
  const plotHeight = height - margin.top - margin.bottom;
  const x = (index) => margin.left + (index * plotWidth) / bins;
  const xOfScore = (score) => { // within its bin, clamped to the plot
    let i = 0;
    while (i < bins - 1 && edges[i + 1] <= score) i += 1;
    return x(Math.max(0, Math.min(bins, i + (score - edges[i]) / ((edges[i + 1] - edges[i]) || 1))));
  };
  const totals = edges.slice(1).map((_, i) => (counts.present?.[i] || 0) + (counts.absent?.[i] || 0) + (counts.unlabeled?.[i] || 0));
  const top = Math.max(1, ...totals);
  const y = (value) => margin.top + plotHeight - (value * plotHeight) / top;

  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, class: "histogram", role: "group",
                         "aria-label": "Score histogram by ground truth, with the two thresholds" });
  const lowRegion = s("rect", { y: margin.top, height: plotHeight, class: "region low" });
  const highRegion = s("rect", { y: margin.top, height: plotHeight, class: "region high" });
  svg.append(lowRegion, highRegion);
  for (let i = 0; i < bins; i += 1) {
    let base = 0;
    for (const kind of ["present", "absent", "unlabeled"]) {
      const value = counts[kind]?.[i] || 0;
      if (!value) continue;
      svg.append(s("rect", { x: x(i) + 0.5, width: Math.max(1, x(i + 1) - x(i) - 1), y: y(base + value),
                             height: y(base) - y(base + value), fill: COLOURS[kind] },
                   s("title", {}, `${kind}: ${value} (${fmt(edges[i])} to ${fmt(edges[i + 1])})`)));
      base += value;
    }
  }
  svg.append(s("line", { x1: margin.left, x2: width - margin.right, y1: y(0), y2: y(0), class: "axis" }));
  for (const index of [0, Math.round(bins / 4), Math.round(bins / 2), Math.round((3 * bins) / 4), bins]) {
    svg.append(s("text", { x: x(index), y: height - 8, "text-anchor": "middle", class: "tick" }, fmt(edges[index])));
  }
  svg.append(s("text", { x: 4, y: margin.top + 4, class: "tick" }, String(top)));

  const state = { low, high, invert, values: { low: values.low ?? null, high: values.high ?? null } };
  const handle = (name, label) => {
    const group = s("g", { class: `handle ${name}`, role: "slider", tabindex: "0", "aria-label": label,
                           "aria-valuemin": "0", "aria-valuemax": String(bins), "data-handle": name });
    group.append(s("line", { y1: margin.top - 6, y2: margin.top + plotHeight, class: "handle-line" }),
                 s("rect", { y: margin.top - 18, width: 16, height: 18, rx: 3, class: "knob" }));
    return group;
  };
  const lowHandle = handle("low", "Low threshold: votes at or below it");
  const highHandle = handle("high", "High threshold: votes at or above it");
  svg.append(lowHandle, highHandle);

  const limits = (name) => (name === "low"
    ? [0, state.high < bins ? Math.max(0, state.high - 1) : bins]
    : [state.low > 0 ? Math.min(bins, state.low + 1) : 0, bins]);

  function draw() {
    const lowSide = state.invert ? "PRESENT" : "ABSENT";
    const highSide = state.invert ? "ABSENT" : "PRESENT";
    const at = (name) => {
      const value = state.values[name];
      return value === null ? { x: x(state[name]), value: edges[state[name]] } : { x: xOfScore(value), value };
    };
    const [lowAt, highAt] = [at("low"), at("high")];
    lowRegion.setAttribute("x", x(0));
    lowRegion.setAttribute("width", lowAt.x - x(0));
    lowRegion.setAttribute("class", `region low ${lowSide.toLowerCase()}`);
    highRegion.setAttribute("x", highAt.x);
    highRegion.setAttribute("width", x(bins) - highAt.x);
    highRegion.setAttribute("class", `region high ${highSide.toLowerCase()}`);
    for (const [group, name, where, side] of [[lowHandle, "low", lowAt, lowSide], [highHandle, "high", highAt, highSide]]) {
      const off = state.values[name] === null && state[name] === (name === "low" ? 0 : bins);
      group.setAttribute("transform", `translate(${where.x},0)`);
      group.querySelector(".knob").setAttribute("x", "-8");
      group.setAttribute("aria-valuenow", String(state[name]));
      group.setAttribute("aria-valuetext", off ? `off (no ${side} votes)` : `${fmt(where.value)}: ${side}`);
      group.dataset.value = off ? "" : String(where.value);
      group.classList.toggle("off", off);
    }
  }

  function move(name, index) {
    const [min, max] = limits(name);
    const clamped = Math.max(min, Math.min(max, index));
    if (clamped === state[name] && state.values[name] === null) return;
    state[name] = clamped;
    state.values[name] = null;
    draw();
    onMove(state.low, state.high, name);
  }

  let dragging = null;
  const indexAt = (event) => {
    const bounds = svg.getBoundingClientRect();
    const px = ((event.clientX - bounds.left) * width) / bounds.width;
    return Math.round(((px - margin.left) * bins) / plotWidth);
  };
  for (const [group, name] of [[lowHandle, "low"], [highHandle, "high"]]) {
    group.addEventListener("pointerdown", (event) => {
      event.preventDefault();
      dragging = name;
      group.focus();
      try {
        svg.setPointerCapture(event.pointerId); // keep the drag when the pointer leaves the chart
      } catch {
        // a synthetic event's pointer cannot be captured; the drag still follows moves over the chart
      }
    });
    group.addEventListener("keydown", (event) => {
      const steps = { ArrowLeft: -1, ArrowDown: -1, ArrowRight: 1, ArrowUp: 1, PageDown: -5, PageUp: 5 };
      if (event.key in steps) move(name, state[name] + steps[event.key]);
      else if (event.key === "Home") move(name, 0);
      else if (event.key === "End") move(name, bins);
      else return;
      event.preventDefault();
      event.stopPropagation();
    });
  }
  svg.addEventListener("pointermove", (event) => { if (dragging) move(dragging, indexAt(event)); });
  const stop = () => { dragging = null; };
  svg.addEventListener("pointerup", stop);
  svg.addEventListener("pointercancel", stop);

  draw();
  svg.setHandles = (lowIndex, highIndex, exact = {}) => {
    Object.assign(state, { low: lowIndex, high: highIndex, values: { low: exact.low ?? null, high: exact.high ?? null } });
    draw();
  };
  return svg;
}

/** A curve in the unit square from points [{x, y}] (PR: recall, precision; ROC: false-positive rate, recall). */
export function curveChart(points, { label, x, y, diagonal = false }) {
  const size = 220;
  const margin = 30;
  const span = size - 2 * margin;
  const svg = s("svg", { viewBox: `0 0 ${size} ${size}`, class: "curve-chart", role: "img", "aria-label": label });
  svg.append(s("rect", { x: margin, y: margin, width: span, height: span, class: "frame" }));
  if (diagonal) svg.append(s("line", { x1: margin, y1: margin + span, x2: margin + span, y2: margin, class: "chance" }));
  const path = points.map((p, i) => `${i ? "L" : "M"}${margin + p.x * span},${margin + (1 - p.y) * span}`).join(" ");
  if (path) svg.append(s("path", { d: path, class: "curve" }));
  svg.append(s("text", { x: size / 2, y: size - 6, "text-anchor": "middle", class: "tick" }, x),
             s("text", { x: 10, y: size / 2, class: "tick", transform: `rotate(-90 10 ${size / 2})`, "text-anchor": "middle" }, y),
             s("text", { x: margin, y: size - 16, class: "tick", "text-anchor": "middle" }, "0"),
             s("text", { x: size - margin, y: size - 16, class: "tick", "text-anchor": "middle" }, "1"));
  return svg;
}
