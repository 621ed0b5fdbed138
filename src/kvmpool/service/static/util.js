// kvmpool's page: shared state, the API client, DOM helpers, dialogs and messages.

export const state = {
  caps: [],          // /api/capabilities
  pools: [],         // /api/pools
  pool: null,        // name of the pool whose volumes are shown
  volumes: [],
  jobs: new Map(),   // id -> job, for the jobs this page follows or sees
  wipe: [],
};

export const $ = (sel, root = document) => root.querySelector(sel);

// ------------------------------------------------------------------ API

export class ApiError extends Error {
  constructor(status, error, hint) {
    super(hint ? `${error} (hint: ${hint})` : error);
    this.status = status;
    this.hint = hint;
  }
}

export async function api(method, path, body) {
  const opts = { method, headers: { "X-Kvmpool-CSRF": "1" }, credentials: "same-origin" };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const res = await fetch(path, opts);
  const type = res.headers.get("Content-Type") || "";
  const data = type.startsWith("application/json") ? await res.json() : await res.text();
  if (!res.ok) {
    if (res.status === 401) showLogin();
    throw new ApiError(res.status, data.error || `HTTP ${res.status}`, data.hint);
  }
  return data;
}

export const enc = encodeURIComponent;
export const poolPath = (p) => `/api/pools/${enc(p)}`;
export const volPath = (p, v) => `${poolPath(p)}/volumes/${enc(v)}`;

// ------------------------------------------------------------------ helpers

export function pretty(n) {  // virsh's sizes: "%.2f" and the first unit where the value is < 1024
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
  let i = 0;
  while (i < units.length - 1 && n >= 1024 ** (i + 1)) i++;
  return `${(n / 1024 ** i).toFixed(2)} ${units[i]}`;
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

export function button(label, action, onclick, extra = {}) {
  return el("button", { type: "button", text: label, dataset: { action }, onclick, ...extra });
}

export function say(text) {
  $("#status").textContent = text;
}

export function fail(err) {
  const open = document.querySelector("dialog[open]");
  if (open) {  // the rest of the page is inert behind a modal dialog: say it in there
    dialogError(open).textContent = `error: ${err.message}`;
    return;
  }
  $("#error-text").textContent = `error: ${err.message}`;
  $("#error").hidden = false;
  $("#error-close").focus();
}

export function dialogError(dialog) {
  let p = $(".dialog-error", dialog);
  if (!p) {
    p = el("p", { class: "dialog-error", role: "alert" });
    $(".buttons", dialog).before(p);
  }
  return p;
}

export async function attempt(what, fn) {
  try {
    $("#error").hidden = true;
    const out = await fn();
    if (what) say(what);
    return out;
  } catch (err) {
    fail(err);
    return undefined;
  }
}

// A <dialog> as a promise: resolves with the form's FormData on submit, null on cancel.
export function ask(dialog, setup) {
  const form = $("form", dialog);
  form.reset();
  dialogError(dialog).textContent = "";
  if (setup) setup(form);
  return new Promise((resolve) => {
    const done = (value) => {
      form.removeEventListener("submit", onSubmit);
      dialog.removeEventListener("cancel", onCancel);
      for (const b of dialog.querySelectorAll("button.cancel")) b.onclick = null;
      if (dialog.open) dialog.close();
      resolve(value);
    };
    const onSubmit = (ev) => {
      ev.preventDefault();
      if (!form.reportValidity()) return;
      const check = dialog.validate ? dialog.validate(form) : true;
      if (check !== true) { dialogError(dialog).textContent = check; return; }
      done(new FormData(form));
    };
    const onCancel = (ev) => { ev.preventDefault(); done(null); };
    form.addEventListener("submit", onSubmit);
    dialog.addEventListener("cancel", onCancel);
    for (const b of dialog.querySelectorAll("button.cancel")) b.onclick = () => done(null);
    dialog.showModal();
    const first = dialog.querySelector("[autofocus], input:not([type=hidden]):not([type=checkbox]), select");
    if (first) first.focus();
  });
}

// A confirmation; with `typed`, the user must type that text; `option` adds a checkbox.
export async function confirmAction({ title, text, items = [], typed, ok = "OK", option }) {
  const dialog = $("#confirm-dialog");
  dialog.validate = (form) => {
    if (typed && $("#confirm-typed").value !== typed) return `type “${typed}” to confirm`;
    return true;
  };
  const data = await ask(dialog, () => {
    $("#confirm-title").textContent = title;
    $("#confirm-text").textContent = text;
    const list = $("#confirm-list");
    list.replaceChildren(...items.map((t) => el("li", { text: t })));
    list.hidden = items.length === 0;
    $("#confirm-typed-field").hidden = !typed;
    $("#confirm-typed").value = "";
    $("#confirm-typed-label").textContent = typed ? `Type “${typed}” to confirm` : "";
    $("#confirm-option-label").hidden = !option;
    $("#confirm-option-text").textContent = option ? option.text : "";
    $("#confirm-option").checked = option ? option.checked : false;
    $("#confirm-ok").textContent = ok;
  });
  if (data === null) return null;
  return { option: $("#confirm-option").checked };
}

export function focusKey() {
  const a = document.activeElement;
  const row = a && a.closest && a.closest("tr[data-pool], tr[data-vol]");
  if (!row || !a.dataset.action) return null;
  return { pool: row.dataset.pool, vol: row.dataset.vol, action: a.dataset.action };
}

export function restoreFocus(key, table) {
  if (!key) return;
  const rows = [...table.querySelectorAll("tbody tr")];
  const row = rows.find((r) => r.dataset.pool === key.pool && r.dataset.vol === key.vol);
  if (!row) return;
  const target = row.querySelector(`button[data-action="${key.action}"]`) || row.querySelector("button");
  if (target) target.focus();
}

export async function showLogin() {
  $("#login").hidden = false;
  $("#pools").hidden = true;
  $("#jobs").hidden = true;
  $("#login-token").focus();
}
