// Small DOM helpers shared by the screens: element building, errors shown as the API wrote them, job progress,
// dialogs. No API access here (that is api.js).

import { followJob, jobs } from "./api.js";

/** An element: h("button", {class: "primary", onclick}, "Save"). Attributes starting with "on" are listeners. */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") element.addEventListener(key.slice(2), value);
    else if (key === "class") element.className = value;
    else if (key === "dataset") Object.assign(element.dataset, value);
    else if (key in element && typeof value !== "string") element[key] = value;
    else element.setAttribute(key, value === true ? "" : value);
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

/** A labelled control: <label>text <control></label>, so every control has an accessible name. */
export function field(text, control, hint) {
  return h("label", { class: "field" }, h("span", { class: "field-label" }, text), control,
           hint ? h("small", { class: "muted" }, hint) : null);
}

export function select(options, value, attributes = {}) {
  const element = h("select", attributes);
  for (const option of options) {
    const [optionValue, text] = Array.isArray(option) ? option : [option, option];
    element.append(h("option", { value: optionValue, selected: String(optionValue) === String(value) }, text));
  }
  return element;
}

/** An error message exactly as the API wrote it, in the page's alert region (or a given one). */
export function showError(error, region = document.getElementById("errors")) {
  const message = error?.message || String(error);
  clear(region, h("p", {}, message, " ", h("button", { class: "link", onclick: () => clear(region) }, "Dismiss")));
  if (region.id !== "errors") region.setAttribute("role", "alert");
  return message;
}

export function clearErrors() {
  clear(document.getElementById("errors"));
}

/** A short confirmation in the status region (read out by screen readers). */
export function announce(message) {
  const status = document.getElementById("status");
  clear(status, message);
  clearTimeout(announce.timer);
  announce.timer = setTimeout(() => clear(status), 6000);
}

/** Run an action, showing what the API answered if it fails; resolves undefined then. The region's earlier error
 * goes first: it was about an earlier action. */
export async function attempt(action, region) {
  if (region) clear(region);
  try {
    return await action();
  } catch (error) {
    showError(error, region || undefined);
    return undefined;
  }
}

/** Follow a job with a progress bar and its message in `container`; resolves the finished job. */
export async function jobProgress(container, job, what = "Job") {
  const bar = h("progress", { max: 1, value: 0, "aria-label": `${what} progress` });
  const text = h("span", { class: "job-text" });
  const failure = h("span", { class: "error" });
  const cancel = h("button", { type: "button", class: "link", onclick: () => attempt(() => jobs.cancel(job), failure) }, "Cancel");
  const box = h("div", { class: "job", dataset: { job: job.id } }, bar, text, cancel, failure);
  container.append(box);
  const finished = await followJob(job, (current) => {
    bar.value = current.progress ?? 0;
    box.dataset.status = current.status;
    cancel.hidden = !["queued", "running"].includes(current.status);
    text.textContent = `${what}: ${current.status}${current.message ? ` — ${current.message}` : ""}`
      + ` (${Math.round((current.progress ?? 0) * 100)}%)`;
  });
  if (finished.status !== "succeeded") {
    box.append(h("p", { class: "error", role: "alert" }, finished.error || `${what} ${finished.status}.`));
  }
  return finished;
}

/** A modal dialog (native <dialog>: focus kept inside, Escape closes). */
export function dialog(title, ...content) {
  const close = h("button", { class: "link close", type: "button", "aria-label": "Close" }, "×");
  const element = h("dialog", { class: "dialog", "aria-label": title },
                    h("div", { class: "dialog-head" }, h("h2", {}, title), close), ...content);
  close.addEventListener("click", () => element.close());
  element.addEventListener("close", () => element.remove());
  document.body.append(element);
  element.showModal();
  return element;
}

export const pct = (value) => (value === null || value === undefined || Number.isNaN(value) ? "–"
  : `${(value * 100).toFixed(1)}%`);
export const num = (value, digits = 3) => (value === null || value === undefined ? "–" : Number(value).toFixed(digits));

/** A rate of the API ({value, successes, trials, interval}) as "82.0% (9/11) [0.52–0.97]". */
export function rateText(rate) {
  if (!rate) return "–";
  const interval = rate.interval ? ` [${num(rate.interval[0], 2)}–${num(rate.interval[1], 2)}]` : "";
  return `${pct(rate.value)} (${rate.successes}/${rate.trials})${interval}`;
}

/** A link to a studio route (hash based, so the page never reloads). */
export function link(route, text, attributes = {}) {
  return h("a", { href: `#${route}`, ...attributes }, text);
}

export function debounce(fn, ms) {
  let timer;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

/** Offer a Blob as a file download. */
export function saveBlob(blob, filename) {
  const url = URL.createObjectURL(blob);
  const anchor = h("a", { href: url, download: filename, class: "hidden" });
  document.body.append(anchor);
  anchor.click();
  anchor.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
