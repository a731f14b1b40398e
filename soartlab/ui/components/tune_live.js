// The Tune page's live sliders: scale, offset and floor, and the before/after pair
// histograms they drive, drawn in the browser (soartlab/ui/tune_live.py mounts it).
//
// Python sends each class's raw distances pre-binned on fine equal-width bins. The
// transform d = max(scale·raw + offset, floor) is increasing, so a fine bin's pairs stay
// together under it: the "after" histogram is the fine bins' counts re-binned at their
// transformed centres, done here on every input event without a round trip to the
// server. The chosen values go back to Python as a trigger once the user has stopped
// moving for data.settle_ms (Python then updates the loss's view and Preview).
//
// Streamlit calls this function again whenever data changes, with the same
// parentElement: the view is built once per element and updated after that.

const SVG = "http://www.w3.org/2000/svg";
const NAMES = ["scale", "offset", "floor"];
const BINS = 40;
// Drawing geometry (viewBox units; the SVG scales to the element's width).
const WIDTH = 960;
const HEIGHT = 330;
const PANEL = { top: 34, bottom: 42, left: 52, gap: 40, right: 12 };

const views = new WeakMap();

export default function tuneLive(component) {
  const { data, parentElement, setTriggerValue } = component;
  let view = views.get(parentElement);
  if (!view) {
    view = buildView(parentElement);
    views.set(parentElement, view);
  }
  view.setTriggerValue = setTriggerValue;
  view.update(data);
}

function element(tag, attributes = {}, parent = null, namespace = null) {
  const node = namespace ? document.createElementNS(namespace, tag) : document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (parent) parent.appendChild(node);
  return node;
}

function format(value) {
  if (!Number.isFinite(value)) return String(value);
  const abs = Math.abs(value);
  if (abs !== 0 && (abs < 1e-3 || abs >= 1e5)) return value.toExponential(2);
  return String(Number(value.toPrecision(4)));
}

function sameValues(a, b) {
  return !!a && !!b && NAMES.every((name) => a[name] === b[name]);
}

// Re-bin fine bins (edges lo..hi, counts per class) at their centres mapped by `map`
// into BINS equal bins over the mapped range. Returns {low, high, fractions: [m, u]}.
function rebin(fine, map) {
  const n = fine.matched.length;
  const width = (fine.high - fine.low) / n;
  const mapped = new Float64Array(n);
  let low = Infinity;
  let high = -Infinity;
  for (let k = 0; k < n; k++) {
    const x = map(fine.low + (k + 0.5) * width);
    mapped[k] = x;
    if (fine.matched[k] + fine.unmatched[k] > 0) {
      if (x < low) low = x;
      if (x > high) high = x;
    }
  }
  if (!Number.isFinite(low)) {
    low = 0;
    high = 1;
  }
  if (high === low) {
    low -= 0.5;
    high += 0.5;
  }
  const fractions = [new Float64Array(BINS), new Float64Array(BINS)];
  const step = (high - low) / BINS;
  [fine.matched, fine.unmatched].forEach((counts, side) => {
    let total = 0;
    for (let k = 0; k < n; k++) {
      if (!counts[k]) continue;
      const bin = Math.min(BINS - 1, Math.max(0, Math.floor((mapped[k] - low) / step)));
      fractions[side][bin] += counts[k];
      total += counts[k];
    }
    if (total) for (let b = 0; b < BINS; b++) fractions[side][b] /= total;
  });
  return { low, high, fractions };
}

function ticks(low, high, count) {
  const raw = (high - low) / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) || raw;
  const out = [];
  for (let t = Math.ceil(low / step) * step; t <= high + step * 1e-9; t += step) {
    out.push(Math.abs(t) < step * 1e-9 ? 0 : t);
  }
  return out;
}

// The words shown (data.texts, in the page's language), else English.
const ENGLISH = {
  scale: "Scale",
  offset: "Offset",
  floor: "Floor",
  matched: "Matched",
  unmatched: "Unmatched",
  distance: "distance",
  fraction: "fraction of pairs",
  margin: "margin",
};

function text(data, key) {
  return (data.texts && data.texts[key]) || ENGLISH[key];
}

function buildView(root) {
  const box = element("div", { class: "tune-live" }, root);
  const controls = element("div", { class: "controls" }, box);
  const inputs = {};
  for (const name of NAMES) {
    const row = element("label", { class: "control" }, controls);
    const label = element("span", { class: "name" }, row);
    label.textContent = name[0].toUpperCase() + name.slice(1);
    const range = element("input", { type: "range", "data-testid": `tune-live-${name}` }, row);
    const number = element(
      "input",
      { type: "number", step: "any", "data-testid": `tune-live-${name}-value` },
      row,
    );
    inputs[name] = { range, number, label };
  }
  const legend = element("div", { class: "legend" }, box);
  const keys = ["matched", "unmatched"].map((side) => {
    const item = element("span", { class: "legend-item" }, legend);
    const swatch = element("span", { class: "swatch" }, item);
    const text = element("span", {}, item);
    text.textContent = side[0].toUpperCase() + side.slice(1);
    return [side, swatch, text];
  });
  const svg = element(
    "svg",
    { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", "data-testid": "tune-live-chart" },
    box,
    SVG,
  );
  const panels = [0, 1].map((index) => element("g", { class: `panel panel-${index}` }, svg, SVG));
  panels[1].setAttribute("data-testid", "tune-live-after");

  const view = {
    data: null,
    values: null, // what the inputs show now
    fromPython: null, // values in the last data received
    reported: null, // values last sent to Python
    timer: null,
    setTriggerValue: null,
  };

  const settle = () => {
    clearTimeout(view.timer);
    view.timer = setTimeout(() => {
      view.reported = { ...view.values };
      view.setTriggerValue("change", view.reported);
    }, view.data.settle_ms);
  };

  const draw = () => {
    const { data, values } = view;
    const { scale, offset, floor } = values;
    const before = rebin(data.fine, (x) => x);
    const after = rebin(data.fine, (x) => Math.max(scale * x + offset, floor));
    const panelWidth = (WIDTH - PANEL.left * 2 - PANEL.gap - PANEL.right) / 2;
    drawPanel(panels[0], before, data, {
      x: PANEL.left,
      width: panelWidth,
      title: data.titles[0],
      lines: [],
      yTitle: true,
    });
    drawPanel(panels[1], after, data, {
      x: PANEL.left * 2 + PANEL.gap + panelWidth,
      width: panelWidth,
      title: data.titles[1],
      lines: [
        { name: text(data, "floor"), x: floor, className: "floor", anchor: "end" },
        { name: text(data, "margin"), x: data.margin, className: "margin", anchor: "start" },
      ],
      yTitle: false,
    });
    svg.setAttribute("data-values", `${format(scale)},${format(offset)},${format(floor)}`);
  };

  const setValue = (name, value, fromNumber) => {
    if (!Number.isFinite(value)) return;
    view.values = { ...view.values, [name]: value };
    const { range, number } = inputs[name];
    if (value < Number(range.min)) range.min = String(value);
    if (value > Number(range.max)) range.max = String(value);
    range.value = String(value);
    if (!fromNumber) number.value = format(value);
  };

  for (const name of NAMES) {
    const { range, number } = inputs[name];
    range.addEventListener("input", () => {
      setValue(name, Number(range.value), false);
      draw();
      settle();
    });
    number.addEventListener("input", () => {
      setValue(name, Number(number.value), true);
      draw();
      settle();
    });
  }

  view.update = (data) => {
    view.data = data;
    for (const [side, swatch, label] of keys) {
      swatch.style.background = data.colors[side];
      swatch.style.opacity = String(data.opacity);
      label.textContent = text(data, side);
    }
    for (const name of NAMES) inputs[name].label.textContent = text(data, name);
    for (const name of NAMES) {
      const [low, high, step] = data.ranges[name];
      Object.assign(inputs[name].range, { min: String(low), max: String(high), step: String(step) });
    }
    // New values from Python (Suggest, another source) replace the shown ones; the echo
    // of values this view reported, or a redraw with unchanged data, does not (the user
    // may have moved on since).
    const incoming = data.values;
    const changed = !sameValues(incoming, view.fromPython) && !sameValues(incoming, view.reported);
    view.fromPython = incoming;
    if (view.values === null || changed) {
      clearTimeout(view.timer);
      view.values = { ...incoming };
      view.reported = null;
      for (const name of NAMES) setValue(name, incoming[name], false);
    }
    draw();
  };
  return view;
}

function drawPanel(group, histogram, data, options) {
  const { x, width, title, lines, yTitle } = options;
  const top = PANEL.top;
  const height = HEIGHT - PANEL.top - PANEL.bottom;
  const { low, high, fractions } = histogram;
  // The axis spans the bars and the marker lines: where pairs sit against the floor and
  // the margin is the point of the "after" panel.
  let axisLow = low;
  let axisHigh = high;
  for (const line of lines) {
    if (!Number.isFinite(line.x)) continue;
    axisLow = Math.min(axisLow, line.x);
    axisHigh = Math.max(axisHigh, line.x);
  }
  const pad = axisLow < low || axisHigh > high ? (axisHigh - axisLow) * 0.03 : 0;
  axisLow -= pad;
  axisHigh += pad;
  const peak = Math.max(1e-9, ...fractions[0], ...fractions[1]);
  const yMax = Math.min(1, Math.ceil(peak * 20) / 20);
  const px = (value) => x + ((value - axisLow) / (axisHigh - axisLow)) * width;
  const py = (value) => top + height - (value / yMax) * height;
  group.replaceChildren();

  element("text", { x: x + width / 2, y: top - 14, class: "title" }, group, SVG).textContent = title;
  for (const t of ticks(0, yMax, 4)) {
    element("line", { x1: x, x2: x + width, y1: py(t), y2: py(t), class: "grid" }, group, SVG);
    element("text", { x: x - 6, y: py(t) + 4, class: "ytick" }, group, SVG).textContent =
      `${Math.round(t * 1000) / 10}%`;
  }
  for (const t of ticks(axisLow, axisHigh, 5)) {
    element("text", { x: px(t), y: top + height + 16, class: "xtick" }, group, SVG).textContent =
      format(t);
  }
  element("text", { x: x + width / 2, y: HEIGHT - 6, class: "axis" }, group, SVG).textContent =
    text(data, "distance");
  if (yTitle) {
    const label = element(
      "text",
      { x: 14, y: top + height / 2, class: "axis", transform: `rotate(-90 14 ${top + height / 2})` },
      group,
      SVG,
    );
    label.textContent = text(data, "fraction");
  }
  const binWidth = (px(high) - px(low)) / BINS;
  fractions.forEach((values, side) => {
    const color = side === 0 ? data.colors.matched : data.colors.unmatched;
    const path = [];
    values.forEach((value, bin) => {
      if (value <= 0) return;
      const left = px(low) + bin * binWidth;
      const y = py(value);
      path.push(`M${left.toFixed(2)} ${(top + height).toFixed(2)}V${y.toFixed(2)}h${binWidth.toFixed(2)}V${(top + height).toFixed(2)}Z`);
    });
    element(
      "path",
      { d: path.join(""), fill: color, "fill-opacity": data.opacity, class: `bars side-${side}` },
      group,
      SVG,
    );
  });
  for (const line of lines) {
    if (!Number.isFinite(line.x)) continue;
    const at = px(line.x);
    element(
      "line",
      { x1: at, x2: at, y1: top, y2: top + height, class: `marker ${line.className}` },
      group,
      SVG,
    );
    // Labels go on their side of the line unless that would leave the frame.
    let anchor = line.anchor;
    if (anchor === "end" && at - x < 70) anchor = "start";
    if (anchor === "start" && x + width - at < 70) anchor = "end";
    const label = element(
      "text",
      {
        x: at + (anchor === "end" ? -4 : 4),
        y: top + (line.className === "floor" ? 12 : 26),
        class: `marker-label ${line.className}`,
        "text-anchor": anchor,
      },
      group,
      SVG,
    );
    label.textContent = `${line.name} ${format(line.x)}`;
  }
  element("rect", { x, y: top, width, height, class: "frame" }, group, SVG);
}
