// A small bar chart of LLM usage per day, drawn as SVG by hand (no chart library).
import { svg } from "./dom.js";

/**
 * Bars of `value(day)` for each day, the last on the right, drawn `width` px wide (the caller
 * passes its box's width and redraws on resize, so the labels keep their size on a phone);
 * each bar has a <title> for a tooltip.
 */
export function barChart(days, value, label, width = 600) {
  const height = 170, pad = { top: 16, right: 8, bottom: 22, left: 44 };
  const plotW = width - pad.left - pad.right, plotH = height - pad.top - pad.bottom;
  const max = Math.max(1, ...days.map(value));
  const step = plotW / Math.max(1, days.length);
  const root = svg("svg", {
    viewBox: `0 0 ${width} ${height}`, width, height, class: "chart", role: "img",
    "aria-label": `${label} per day, ${days.length} days, highest ${max.toLocaleString("en-US")}`,
  });
  root.append(
    svg("line", { x1: pad.left, y1: pad.top + plotH, x2: width - pad.right, y2: pad.top + plotH, class: "axis" }),
    svg("text", { x: pad.left - 6, y: pad.top + 4, "text-anchor": "end", class: "tick" }, max.toLocaleString("en-US")),
    svg("text", { x: pad.left - 6, y: pad.top + plotH, "text-anchor": "end", class: "tick" }, "0"),
  );
  days.forEach((day, i) => {
    const v = value(day);
    const barH = (v / max) * plotH;
    const x = pad.left + i * step + step * 0.15;
    root.append(svg("rect", {
      x, y: pad.top + plotH - barH, width: Math.max(1, step * 0.7), height: barH, class: "bar",
    }, svg("title", {}, `${day.day}: ${v.toLocaleString("en-US")} ${label}`)));
  });
  if (days.length) {
    const first = days[0].day, last = days[days.length - 1].day;
    root.append(svg("text", { x: pad.left, y: height - 6, class: "tick" }, first));
    root.append(svg("text", { x: width - pad.right, y: height - 6, "text-anchor": "end", class: "tick" }, last));
  }
  return root;
}

/** Draw the chart into box now and again whenever box changes width. */
export function fitChart(box, days, value, label) {
  let drawn = 0;
  const draw = () => {
    const width = Math.floor(box.clientWidth);
    if (width > 0 && width !== drawn) {
      drawn = width;
      box.replaceChildren(barChart(days, value, label, Math.max(240, width)));
    }
  };
  new ResizeObserver(draw).observe(box);
  draw();
}
