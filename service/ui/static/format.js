// How values read on the page: kind and status badges, times at their granularity, numbers.
import { h } from "./dom.js";

/** "2024-05-08T14:30:00+08:00" as it was written (no conversion to the browser's zone). */
const parts = (iso) => {
  const zone = (iso.match(/(Z|[+-]\d\d:\d\d)$/) || [""])[0];
  return { date: iso.slice(0, 10), clock: iso.slice(11, 16), zone: zone === "Z" ? "+00:00" : zone };
};

/** A memory's event time at its granularity ("2023", "2023-05", "week of 2023-05-08", ...). */
export function eventTime(memory) {
  const iso = memory.event_time;
  if (!iso) return null;
  const { date, clock } = parts(iso);
  switch (memory.time_granularity) {
    case "year": return date.slice(0, 4);
    case "month": return date.slice(0, 7);
    case "week": return `week of ${date}`;
    case "day": return date;
    default: return `${date} ${clock}`;
  }
}

const pad = (n) => String(n).padStart(2, "0");

/**
 * A moment to the minute in this browser's time zone, with the zone, so every time on the
 * page reads on one clock (the service answers some in the user's zone and some in UTC).
 */
export function stamp(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const off = -d.getTimezoneOffset();
  const zone = off === 0 ? "UTC" : `${off > 0 ? "+" : "-"}${pad(Math.floor(Math.abs(off) / 60))}:${pad(Math.abs(off) % 60)}`;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())} ${zone}`;
}

/** When a memory happened, for the timeline: event time with its granularity, else when said. */
export function when(memory) {
  const event = eventTime(memory);
  if (event) return h("time", { datetime: memory.event_time, title: `event time, ${memory.time_granularity || "minute"}` }, event);
  return h("time", { datetime: memory.recorded_at, title: "when it was said (no event time)" }, `said ${stamp(memory.recorded_at)}`);
}

export const kindBadge = (kind) => h("span", { class: `badge kind-${kind}` }, kind);

export const statusBadge = (status) => h("span", { class: `badge status-${status}` }, status);

/** A score or boost with three decimals; ranks as "#n", a missing rank as "—" (not found). */
export const num = (x) => (x === null || x === undefined ? "—" : Number(x).toFixed(3));
export const rank = (r) => (r === null || r === undefined ? "—" : `#${r}`);
export const count = (n) => (n === null || n === undefined ? "—" : Number(n).toLocaleString("en-US"));
