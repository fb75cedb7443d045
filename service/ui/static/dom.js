// Building the page from data without ever parsing data as HTML: every text goes through
// textContent (h() below), so a memory saying <script> shows as those characters.
const SVG_NS = "http://www.w3.org/2000/svg";

function fill(el, attrs, children) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "text") el.textContent = String(value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** An HTML element: h("a", {href: "#/x", class: "c"}, "text", otherNode). */
export const h = (tag, attrs, ...children) => fill(document.createElement(tag), attrs, children);

/** An SVG element, the same way. */
export const svg = (tag, attrs, ...children) =>
  fill(document.createElementNS(SVG_NS, tag), attrs, children);

/** Replace everything in el. */
export function show(el, ...children) {
  el.replaceChildren();
  fill(el, {}, children);
  return el;
}

/** A labelled field: <label>text <input ...></label> (the label names the input). */
export function field(label, input) {
  return h("label", { class: "field" }, h("span", {}, label), input);
}

/** A definition list from [term, value] pairs, skipping empty values. */
export function facts(pairs) {
  const dl = h("dl", { class: "facts" });
  for (const [term, value] of pairs) {
    if (value === undefined || value === null || value === "") continue;
    // A div per pair (allowed in a dl) lets CSS lay pairs out as a grid or as inline chips.
    dl.append(h("div", { class: "fact" }, h("dt", {}, term), h("dd", {}, value)));
  }
  return dl;
}

/** A section that loads on its own: a heading, then "Loading…" replaced by fill(body). */
export function panel(title, id) {
  const body = h("div", { class: "panel-body" }, h("p", { class: "muted" }, "Loading…"));
  const section = h("section", { class: "panel", id, "aria-labelledby": `${id}-h` },
    h("h2", { id: `${id}-h` }, title), body);
  return { section, body };
}

/**
 * A readable error: a headline, the status line, and what the service said (folded, since a
 * store's own message can be long). `err` is an ApiError, another Error, or a plain text.
 */
export function errorBox(err, withTitle = true) {
  if (typeof err === "string") return h("div", { class: "error", role: "alert" }, h("p", {}, err));
  const api = typeof err.summary === "function";
  const title = withTitle ? h("strong", {}, api ? err.title() : "Unexpected error") : null;
  return h("div", { class: "error", role: "alert" },
    h("p", {}, title, api ? `${title ? " — " : ""}${err.summary()}` : null),
    h("details", {}, h("summary", {}, "What the service said"), h("p", { class: "detail" }, err.message)));
}
