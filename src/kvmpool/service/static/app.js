// kvmpool's page: plain JavaScript over the REST API (see /api/openapi.json).
// No framework, no build step, nothing fetched from anywhere but this server.
"use strict";

const state = {
  caps: [],          // /api/capabilities
  pools: [],         // /api/pools
  pool: null,        // name of the pool whose volumes are shown
  volumes: [],
  jobs: new Map(),   // id -> job, for the jobs this page follows or sees
  wipe: [],
};

const $ = (sel, root = document) => root.querySelector(sel);

// ------------------------------------------------------------------ API

class ApiError extends Error {
  constructor(status, error, hint) {
    super(hint ? `${error} (hint: ${hint})` : error);
    this.status = status;
    this.hint = hint;
  }
}

async function api(method, path, body) {
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

const enc = encodeURIComponent;
const poolPath = (p) => `/api/pools/${enc(p)}`;
const volPath = (p, v) => `${poolPath(p)}/volumes/${enc(v)}`;

// ------------------------------------------------------------------ helpers

function pretty(n) {  // virsh's sizes: "%.2f" and the first unit where the value is < 1024
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
  let i = 0;
  while (i < units.length - 1 && n >= 1024 ** (i + 1)) i++;
  return `${(n / 1024 ** i).toFixed(2)} ${units[i]}`;
}

function el(tag, attrs = {}, ...children) {
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

function button(label, action, onclick, extra = {}) {
  return el("button", { type: "button", text: label, dataset: { action }, onclick, ...extra });
}

function say(text) {
  $("#status").textContent = text;
}

function fail(err) {
  const open = document.querySelector("dialog[open]");
  if (open) {  // the rest of the page is inert behind a modal dialog: say it in there
    dialogError(open).textContent = `error: ${err.message}`;
    return;
  }
  $("#error-text").textContent = `error: ${err.message}`;
  $("#error").hidden = false;
  $("#error-close").focus();
}

function dialogError(dialog) {
  let p = $(".dialog-error", dialog);
  if (!p) {
    p = el("p", { class: "dialog-error", role: "alert" });
    $(".buttons", dialog).before(p);
  }
  return p;
}

async function attempt(what, fn) {
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
function ask(dialog, setup) {
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
async function confirmAction({ title, text, items = [], typed, ok = "OK", option }) {
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

// ------------------------------------------------------------------ pools

async function loadPools() {
  state.pools = await api("GET", "/api/pools");
  renderPools();
  if (state.pool && !state.pools.some((p) => p.name === state.pool && p.active)) closeVolumes();
}

function usageCell(p) {
  const td = el("td", { class: "usage", "data-label": "Usage" });
  if (!p.active || p.capacity === undefined) {
    td.append(el("span", { class: "state-inactive", text: "—" }));
    return td;
  }
  const pct = p.capacity ? Math.min(100, (100 * p.allocation) / p.capacity) : 0;
  const bar = el("div", {
    class: "meter", role: "img",
    "aria-label": `${pct.toFixed(0)}% used: ${pretty(p.allocation)} of ${pretty(p.capacity)}`,
  }, el("span"));
  bar.firstChild.style.width = `${pct}%`;
  td.append(bar, el("small", {
    text: `${pretty(p.allocation)} used of ${pretty(p.capacity)}, ${pretty(p.available)} free`,
  }));
  if (p.thin) {
    const t = p.thin;
    const tb = el("div", {
      class: "meter thin", role: "img",
      "aria-label": `thin data ${t.data_percent.toFixed(1)}% full`,
    }, el("span"));
    tb.firstChild.style.width = `${Math.min(100, t.data_percent)}%`;
    td.append(tb, el("small", {
      text: `thin pool ${t.pool || ""}: ${pretty(t.provisioned)} provisioned, ` +
        `${pretty(t.data_used)} used (data ${t.data_percent.toFixed(1)}%, ` +
        `metadata ${t.metadata_percent.toFixed(1)}%)`,
    }));
  }
  return td;
}

// Re-rendering a table replaces its buttons: put the focus back where it was.
function focusKey() {
  const a = document.activeElement;
  const row = a && a.closest && a.closest("tr[data-pool], tr[data-vol]");
  if (!row || !a.dataset.action) return null;
  return { pool: row.dataset.pool, vol: row.dataset.vol, action: a.dataset.action };
}

function restoreFocus(key, table) {
  if (!key) return;
  const rows = [...table.querySelectorAll("tbody tr")];
  const row = rows.find((r) => r.dataset.pool === key.pool && r.dataset.vol === key.vol);
  if (!row) return;
  const target = row.querySelector(`button[data-action="${key.action}"]`) || row.querySelector("button");
  if (target) target.focus();
}

function renderPools() {
  const key = focusKey();
  const body = $("#pool-table tbody");
  const rows = state.pools.map((p) => {
    const name = p.name;
    const acts = el("td", { class: "actions", "data-label": "Actions" });
    if (p.active) {
      acts.append(
        button("Volumes", "volumes", () => openVolumes(name), { "aria-label": `Volumes of ${name}` }),
        button("Stop", "stop", () => poolAction(name, "stop", `Pool ${name} stopped`), { "aria-label": `Stop ${name}` }),
        button("Refresh", "refresh", () => poolAction(name, "refresh", `Pool ${name} refreshed`), { "aria-label": `Refresh ${name}` }),
      );
    } else {
      acts.append(
        button("Start", "start", () => poolAction(name, "start", `Pool ${name} started`), { "aria-label": `Start ${name}` }),
        button("Build", "build", () => buildPool(name), { "aria-label": `Build ${name}` }),
      );
    }
    if (p.persistent) {
      acts.append(button(p.autostart ? "No autostart" : "Autostart", "autostart",
        () => setAutostart(name, !p.autostart), { "aria-label": `${p.autostart ? "Turn off autostart of" : "Autostart"} ${name}` }));
    }
    acts.append(button("Delete…", "delete", () => deletePool(p), { class: "danger", "aria-label": `Delete ${name}` }));
    if (p.persistent && !p.active) {
      acts.append(button("Undefine…", "undefine", () => undefinePool(name), { "aria-label": `Undefine ${name}` }));
    }
    return el("tr", { dataset: { pool: name }, class: name === state.pool ? "selected" : null },
      el("td", { "data-label": "Name", text: name }),
      el("td", { "data-label": "Type", text: p.type + (p.supported ? "" : " (define only)") }),
      el("td", { "data-label": "State", class: `state-${p.state}`, text: p.state }),
      el("td", { "data-label": "Autostart", text: p.autostart ? "yes" : "no" }),
      usageCell(p),
      el("td", { "data-label": "Volumes", class: "count", text: p.volumes ?? "—" }),
      acts);
  });
  body.replaceChildren(...rows);
  $("#no-pools").hidden = rows.length > 0;
  restoreFocus(key, $("#pool-table"));
}

async function poolAction(name, verb, done) {
  await attempt(done, () => api("POST", `${poolPath(name)}/${verb}`, {}));
  await attempt(null, loadPools);
  if (state.pool === name) await attempt(null, loadVolumes);
}

async function setAutostart(name, on) {
  await attempt(`Pool ${name} ${on ? "marked" : "unmarked"} as autostarted`,
    () => api("PUT", `${poolPath(name)}/autostart`, { autostart: on }));
  await attempt(null, loadPools);
}

async function buildPool(name) {
  const pool = state.pools.find((p) => p.name === name);
  if (pool && pool.type !== "dir") {
    const ok = await confirmAction({
      title: `Build pool ${name}?`,
      text: `Building a ${pool.type} pool writes to its source (a file system, a label or a volume group). Existing data is refused unless you chose to overwrite it.`,
      ok: "Build",
    });
    if (!ok) return;
  }
  const job = await attempt(null, () => api("POST", `${poolPath(name)}/build`, {}));
  if (job) {
    const end = await followJob(job);
    if (end.state === "succeeded") say(`Pool ${name} built`);
    await attempt(null, loadPools);
  }
}

async function deletePool(p) {
  const name = p.name;
  const first = await confirmAction({
    title: `Delete pool ${name}?`,
    text: p.active
      ? `The pool is stopped and its storage (${p.target || "its source"}) is deleted.`
      : `Its storage (${p.target || "its source"}) is deleted.`,
    ok: "Delete",
    option: p.persistent ? { text: "Also forget its definition (undefine)", checked: true } : null,
  });
  if (!first) return;
  let confirmVolumes = false;
  if (p.active) {
    const vols = await attempt(null, () => api("GET", `${poolPath(name)}/volumes`));
    if (vols === undefined) return;
    if (vols.length > 0) {
      const second = await confirmAction({
        title: `Pool ${name} holds ${vols.length} volume(s)`,
        text: "They are deleted with the pool, and their data is lost:",
        items: vols.map((v) => `${v.name} (${pretty(v.capacity)})`),
        typed: name, ok: `Delete ${vols.length} volume(s) and the pool`,
      });
      if (!second) return;
      confirmVolumes = true;
    }
  } else if (p.type !== "dir") {
    const second = await confirmAction({
      title: `Pool ${name} is inactive`,
      text: `kvmpool cannot list the volumes of an inactive ${p.type} pool: whatever its source holds is destroyed.`,
      typed: name, ok: "Delete it anyway",
    });
    if (!second) return;
  }
  const ok = await attempt(`Pool ${name} deleted`, () => api("POST", `${poolPath(name)}/delete`, {
    stop: p.active, confirm_volumes: confirmVolumes, undefine: first.option && p.persistent,
  }));
  if (ok && state.pool === name) closeVolumes();
  await attempt(null, loadPools);
  $("#pools-heading").focus();
}

async function undefinePool(name) {
  const ok = await confirmAction({
    title: `Undefine pool ${name}?`,
    text: "kvmpool forgets the pool's definition; its storage is left as it is.",
    ok: "Undefine",
  });
  if (!ok) return;
  await attempt(`Pool ${name} has been undefined`, () => api("DELETE", poolPath(name)));
  await attempt(null, loadPools);
}

// ------------------------------------------------------------------ new pool dialog

const SOURCE_FORMATS = {
  fs: ["auto", "ext2", "ext3", "ext4", "xfs", "btrfs", "vfat"],
  netfs: ["auto", "nfs", "cifs", "glusterfs"],
  disk: ["unknown", "gpt", "dos", "dvh", "mac", "bsd", "pc98", "sun", "lvm2"],
  logical: ["auto", "lvm2"],
};
const TARGET_HINT = {
  dir: "Empty: a directory under kvmpool's data directory.",
  fs: "The mount point, e.g. /srv/pool.",
  netfs: "The mount point, e.g. /srv/nfs-pool.",
  logical: "Usually /dev/<volume group>; may be left empty.",
  disk: "Usually /dev.",
  iscsi: "Usually /dev/disk/by-path.",
};

function showPoolFields() {
  const type = $("#pool-type").value;
  const known = ["dir", "fs", "netfs", "logical", "disk", "iscsi", "iscsi-direct", "scsi", "mpath",
    "rbd", "sheepdog", "gluster", "zfs", "vstorage"];
  const key = known.includes(type) ? type : "other";
  for (const field of document.querySelectorAll("#pool-form .field[data-for]")) {
    field.hidden = !field.dataset.for.split(" ").includes(key);
  }
  const formats = SOURCE_FORMATS[type] || [];
  $("#pool-source-format").replaceChildren(el("option", { value: "", text: "(default)" }),
    ...formats.map((f) => el("option", { value: f, text: f })));
  $("#pool-target-help").textContent = TARGET_HINT[type] || "Where the pool's volumes appear.";
  $("#pool-build").checked = type === "dir";
}

// Source discovery (find-storage-pool-sources-as): pick a source to fill the fields.
async function discoverSources() {
  const type = $("#pool-type").value;
  const out = $("#pool-sources");
  const body = { type };
  const host = $("#pool-source-host").value.trim();
  if (host) body.host = host;
  out.replaceChildren(el("p", { text: "Looking…" }));
  try {
    const found = await api("POST", "/api/discover", body);
    if (!found.sources.length) { out.replaceChildren(el("p", { text: "No sources found." })); return; }
    out.replaceChildren(el("p", { text: "Choose a source:" }), ...found.sources.map((src) => {
      const devs = (src.devices || []).map((d) => d.path);
      const label = [src.name, src.dir, ...devs].filter(Boolean).join(" ");
      return button(label || "(source)", "pick-source", () => {
        if (src.dir) $("#pool-source-path").value = src.dir;
        if (src.name) $("#pool-source-name").value = src.name;
        if (devs.length) $("#pool-source-dev").value = devs.join(", ");
        if (src.format) $("#pool-source-format").value = src.format;
        out.replaceChildren(el("p", { text: `Chosen: ${label}` }));
        $("#pool-name").focus();
      });
    }));
  } catch (err) {
    out.replaceChildren(el("p", { class: "dialog-error", text: `error: ${err.message}` }));
  }
}

async function newPool() {
  const data = await ask($("#pool-dialog"), () => {
    $("#pool-type").replaceChildren(...state.caps.map((c) =>
      el("option", { value: c.type, text: c.supported ? c.type : `${c.type} (define only)` })));
    $("#pool-type").value = "dir";
    $("#pool-sources").replaceChildren();
    showPoolFields();
  });
  if (!data) return;
  const body = {};
  const xml = (data.get("xml") || "").trim();
  if (xml) {
    body.xml = xml;
  } else {
    body.name = data.get("name").trim();
    body.type = data.get("type");
    for (const key of ["target", "source_host", "source_path", "source_name", "source_format", "thin_pool"]) {
      const field = $(`#pool-form [name=${key}]`).closest(".field");
      const value = (data.get(key) || "").trim();
      if (value && !(field && field.hidden)) body[key] = value;
    }
    const devs = (data.get("source_dev") || "").split(",").map((s) => s.trim()).filter(Boolean);
    if (devs.length && !$("#pool-source-dev").closest(".field").hidden) body.source_dev = devs;
  }
  const pool = await attempt(null, () => api("POST", "/api/pools", body));
  if (!pool) return;
  const name = pool.name;
  say(`Pool ${name} defined`);
  await attempt(null, loadPools);
  if (data.get("build")) {
    const job = await attempt(null, () => api("POST", `${poolPath(name)}/build`,
      { overwrite: data.get("overwrite") || "default" }));
    if (!job || (await followJob(job)).state !== "succeeded") return;
    say(`Pool ${name} built`);
  }
  if (data.get("start")) await poolAction(name, "start", `Pool ${name} started`);
  if (data.get("autostart")) await setAutostart(name, true);
  await attempt(null, loadPools);
}

// ------------------------------------------------------------------ volumes

async function openVolumes(name) {
  state.pool = name;
  $("#volumes").hidden = false;
  $("#volumes-heading").textContent = `Volumes in pool ${name}`;
  renderPools();
  await attempt(null, loadVolumes);
  $("#volumes-heading").focus();
}

function closeVolumes() {
  state.pool = null;
  state.volumes = [];
  $("#volumes").hidden = true;
  renderPools();
}

async function loadVolumes() {
  if (!state.pool) return;
  state.volumes = await api("GET", `${poolPath(state.pool)}/volumes`);
  renderVolumes();
}

function renderVolumes() {
  const key = focusKey();
  const pool = state.pool;
  const rows = state.volumes.map((v) => {
    const n = v.name;
    const acts = el("td", { class: "actions", "data-label": "Actions" },
      button("Clone…", "clone", () => cloneVolume(n), { "aria-label": `Clone ${n}` }),
      button("Resize…", "resize", () => resizeVolume(v), { "aria-label": `Resize ${n}` }),
      button("Wipe…", "wipe", () => wipeVolume(n), { "aria-label": `Wipe ${n}` }),
      button("Upload…", "upload", () => uploadVolume(n), { "aria-label": `Upload into ${n}` }),
      button("Download", "download", () => downloadVolume(n), { "aria-label": `Download ${n}` }),
      button("Snapshots…", "snapshots", () => snapshots(n), { "aria-label": `Snapshots of ${n}` }),
      button("Delete…", "delete", () => deleteVolume(n), { class: "danger", "aria-label": `Delete ${n}` }));
    return el("tr", { dataset: { vol: n, pool } },
      el("td", { "data-label": "Name", class: "name", text: n }),
      el("td", { "data-label": "Format", class: "format", text: v.format || v.type }),
      el("td", { "data-label": "Capacity", class: "capacity", text: pretty(v.capacity || 0), title: `${v.capacity} bytes` }),
      el("td", { "data-label": "Allocation", class: "allocation", text: pretty(v.allocation || 0), title: `${v.allocation} bytes` }),
      el("td", { "data-label": "Backing", class: "backing", text: v.backing || "—" }),
      el("td", { "data-label": "Path", class: "path", text: v.path || "" }),
      acts);
  });
  $("#volume-table tbody").replaceChildren(...rows);
  $("#no-volumes").hidden = rows.length > 0;
  restoreFocus(key, $("#volume-table"));
}

async function afterVolumeChange() {
  await attempt(null, loadVolumes);
  await attempt(null, loadPools);
}

async function newVolume() {
  const pool = state.pools.find((p) => p.name === state.pool);
  const caps = state.caps.find((c) => c.type === (pool && pool.type)) || { volume_formats: [] };
  const data = await ask($("#volume-dialog"), () => {
    $("#vol-format").replaceChildren(...caps.volume_formats.map((f) => el("option", { value: f, text: f })));
    $("#vol-format-field").hidden = caps.volume_formats.length === 0;
    $("#vol-names").replaceChildren(...state.volumes.map((v) => el("option", { value: v.name })));
  });
  if (!data) return;
  const body = { name: data.get("name").trim(), capacity: data.get("capacity").trim() };
  if (caps.volume_formats.length) body.format = data.get("format");
  const alloc = data.get("allocation").trim();
  if (alloc) body.allocation = alloc;
  const backing = data.get("backing_vol").trim();
  if (backing) body.backing_vol = backing;
  await attempt(`Vol ${body.name} created`, () => api("POST", `${poolPath(state.pool)}/volumes`, body));
  await afterVolumeChange();
}

async function cloneVolume(name) {
  const pool = state.pool;
  const data = await ask($("#clone-dialog"), () => {
    $("#clone-title").textContent = `Clone volume ${name}`;
    $("#clone-name").value = `${name}-clone`;
  });
  if (!data) return;
  const newname = data.get("newname").trim();
  const job = await attempt(null, () => api("POST", `${volPath(pool, name)}/clone`,
    { newname, reflink: data.get("reflink") }));
  if (!job) return;
  const end = await followJob(job);
  if (end.state === "succeeded") say(`Vol ${newname} cloned from ${name}`);
  await afterVolumeChange();
}

async function resizeVolume(v) {
  const data = await ask($("#resize-dialog"), () => {
    $("#resize-title").textContent = `Resize volume ${v.name} (now ${pretty(v.capacity)})`;
  });
  if (!data) return;
  const body = { capacity: data.get("capacity").trim(), shrink: !!data.get("shrink"),
    allocate: !!data.get("allocate") };
  await attempt(`Size of volume '${v.name}' changed to ${body.capacity}`,
    () => api("POST", `${volPath(state.pool, v.name)}/resize`, body));
  await afterVolumeChange();
}

async function wipeVolume(name) {
  const pool = state.pool;
  const data = await ask($("#wipe-dialog"), () => {
    $("#wipe-title").textContent = `Wipe volume ${name}`;
    $("#wipe-algorithm").replaceChildren(...state.wipe.map((a) => el("option", { value: a, text: a })));
  });
  if (!data) return;
  const job = await attempt(null, () => api("POST", `${volPath(pool, name)}/wipe`,
    { algorithm: data.get("algorithm") }));
  if (!job) return;
  const end = await followJob(job);
  if (end.state === "succeeded") say(`Vol ${name} wiped`);
  await afterVolumeChange();
}

async function deleteVolume(name) {
  const ok = await confirmAction({
    title: `Delete volume ${name}?`, text: "Its data is lost.", ok: "Delete",
  });
  if (!ok) return;
  await attempt(`Vol ${name} deleted`, () => api("DELETE", volPath(state.pool, name)));
  await afterVolumeChange();
}

async function uploadVolume(name) {
  const pool = state.pool;
  const data = await ask($("#upload-dialog"), () => {
    $("#upload-title").textContent = `Upload into volume ${name}`;
  });
  if (!data) return;
  const file = data.get("file");
  const offset = (data.get("offset") || "0").trim() || "0";
  if (!/^[0-9]+$/.test(offset)) { fail(new Error("the offset must be a number of bytes")); return; }
  const query = `?offset=${offset}${data.get("sparse") ? "&sparse=true" : ""}`;
  // The transfer itself shows as a job: bytes sent by the browser, then the server's job.
  const local = { id: `upload-${Date.now()}`, op: "volume.upload (sending)", target: `${pool}/${name}`,
    state: "running", bytes: 0, total: file.size, cancellable: false };
  state.jobs.set(local.id, local);
  renderJobs();
  const job = await new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", `${volPath(pool, name)}/content${query}`);
    xhr.setRequestHeader("X-Kvmpool-CSRF", "1");
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.upload.onprogress = (ev) => { local.bytes = ev.loaded; renderJobs(); };
    xhr.onload = () => {
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch (e) { body = { error: xhr.statusText }; }
      state.jobs.delete(local.id);
      if (xhr.status >= 400) { fail(new ApiError(xhr.status, body.error, body.hint)); resolve(null); }
      else resolve(body);
    };
    xhr.onerror = () => { state.jobs.delete(local.id); fail(new Error("the upload failed")); resolve(null); };
    xhr.send(file);
  });
  renderJobs();
  if (!job) return;
  const end = await followJob(job);
  if (end.state === "succeeded") say(`Uploaded ${pretty(end.result.uploaded)} into ${name}`);
  await afterVolumeChange();
}

async function downloadVolume(name) {
  const job = await attempt(null, () => api("POST", `${volPath(state.pool, name)}/download`, {}));
  if (!job) return;
  const end = await followJob(job);
  if (end.state !== "succeeded") return;
  const link = el("a", { href: end.result.content, download: name });
  document.body.append(link);
  link.click();
  link.remove();
  say(`Downloading ${name}`);
}

async function snapshots(name) {
  const pool = state.pool;
  const dialog = $("#snap-dialog");
  const load = async () => {
    const snaps = await attempt(null, () => api("GET", `${volPath(pool, name)}/snapshots`));
    if (snaps === undefined) return false;
    $("#snap-table tbody").replaceChildren(...snaps.map((s) => el("tr", { dataset: { snap: s.name } },
      el("td", { "data-label": "Name", text: s.name }),
      el("td", { "data-label": "Created", text: s.created || "—" }),
      el("td", { class: "actions", "data-label": "Actions" },
        button("Revert", "revert", async () => {
          await attempt(`Snapshot ${s.name} of vol ${name} reverted`,
            () => api("POST", `${volPath(pool, name)}/snapshots/${enc(s.name)}/revert`, {}));
          await load();
        }, { "aria-label": `Revert ${name} to ${s.name}` }),
        button("Delete", "delete-snapshot", async () => {
          await attempt(`Snapshot ${s.name} of vol ${name} deleted`,
            () => api("DELETE", `${volPath(pool, name)}/snapshots/${enc(s.name)}`));
          await load();
        }, { "aria-label": `Delete snapshot ${s.name}`, class: "danger" })))));
    $("#no-snaps").hidden = snaps.length > 0;
    return true;
  };
  if (!(await load())) return;
  dialog.validate = (form) => ($("#snap-name").value.trim() ? true : "give the snapshot a name");
  for (;;) {
    const data = await ask(dialog, () => { $("#snap-title").textContent = `Snapshots of ${name}`; });
    if (!data) break;
    const snap = data.get("name").trim();
    await attempt(`Snapshot ${snap} of vol ${name} created`,
      () => api("POST", `${volPath(pool, name)}/snapshots`, { name: snap }));
    await load();
  }
  dialog.validate = null;
}

// ------------------------------------------------------------------ jobs

const LABELS = {
  "pool.build": "Building", "volume.clone": "Cloning", "volume.wipe": "Wiping",
  "volume.upload": "Uploading", "volume.download": "Downloading",
  "volume.create_from": "Copying",
};

function renderJobs() {
  const jobs = [...state.jobs.values()].sort((a, b) => (b.started || 0) - (a.started || 0)).slice(0, 20);
  $("#job-list").replaceChildren(...jobs.map((j) => {
    const label = `${LABELS[j.op] || j.op} ${j.target}`;
    const prog = el("progress", { max: j.total || 1, "aria-label": `${label} progress` });
    prog.value = j.state === "succeeded" ? (j.total || 1) : Math.min(j.bytes, j.total || 1);
    if (j.state === "running" && !j.total) prog.removeAttribute("value");  // indeterminate
    const pct = j.total ? ` (${Math.floor((100 * j.bytes) / j.total)}%)` : "";
    let text = j.total || j.bytes
      ? `${j.state}: ${pretty(j.bytes)}${j.total ? ` of ${pretty(j.total)}` : ""}${pct}`
      : j.state;
    if (j.error) text = `${j.state}: ${j.error.error}${j.error.hint ? ` (hint: ${j.error.hint})` : ""}`;
    const li = el("li", { dataset: { job: j.id, state: j.state } },
      el("span", { text: label }),
      el("div", {}, prog, el("small", { class: `job-${j.state}`, text })));
    if (j.state === "running" && j.cancellable) {
      li.append(button("Cancel", "cancel", () => cancelJob(j.id), { "aria-label": `Cancel ${label}` }));
    } else {
      li.append(el("span"));
    }
    return li;
  }));
  $("#no-jobs").hidden = jobs.length > 0;
}

async function cancelJob(id) {
  const job = await attempt("Job cancelled", () => api("DELETE", `/api/jobs/${enc(id)}`));
  if (job) { state.jobs.set(id, job); renderJobs(); }
}

// Poll a job until it ends; the list shows its progress meanwhile.
async function followJob(job) {
  state.jobs.set(job.id, job);
  renderJobs();
  while (job.state === "running") {
    await new Promise((r) => setTimeout(r, 300));
    try {
      job = await api("GET", `/api/jobs/${enc(job.id)}`);
    } catch (err) {
      fail(err);
      break;
    }
    state.jobs.set(job.id, job);
    renderJobs();
  }
  if (job.state === "failed") fail(new ApiError(job.error.status, job.error.error, job.error.hint));
  if (job.state === "cancelled") say(`${LABELS[job.op] || job.op} ${job.target} cancelled`);
  return job;
}

// ------------------------------------------------------------------ start

async function showLogin() {
  $("#login").hidden = false;
  $("#pools").hidden = true;
  $("#jobs").hidden = true;
  $("#login-token").focus();
}

async function start() {
  $("#error-close").addEventListener("click", () => { $("#error").hidden = true; });
  $("#new-pool").addEventListener("click", newPool);
  $("#reload").addEventListener("click", () => attempt("Reloaded", async () => {
    await loadPools();
    await loadVolumes();
  }));
  $("#new-volume").addEventListener("click", newVolume);
  $("#close-volumes").addEventListener("click", () => { closeVolumes(); $("#pools-heading").focus(); });
  $("#pool-type").addEventListener("change", showPoolFields);
  $("#pool-discover").addEventListener("click", discoverSources);
  $("#login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const ok = await attempt("Signed in", () => api("POST", "/api/session", { token: $("#login-token").value }));
    if (ok) location.reload();
  });
  const session = await attempt(null, () => api("GET", "/api/session"));
  if (session && session.auth_required && !session.authenticated) { showLogin(); return; }
  await attempt(null, async () => {
    state.caps = await api("GET", "/api/capabilities");
    const doc = await api("GET", "/api/openapi.json");
    const wipe = doc.paths["/api/pools/{pool}/volumes/{vol}/wipe"];
    state.wipe = wipe.post.requestBody.content["application/json"].schema.properties.algorithm.enum;
    const jobs = await api("GET", "/api/jobs");
    for (const j of jobs) state.jobs.set(j.id, j);
    renderJobs();
    for (const j of jobs) if (j.state === "running") followJob(j);
    await loadPools();
  });
  document.body.dataset.ready = "1";
  // Keep sizes current (other clients, the CLI) without disturbing an open dialog.
  setInterval(() => {
    if (document.querySelector("dialog[open]")) return;
    if (document.activeElement && document.activeElement.closest("table")) return;
    attempt(null, async () => { await loadPools(); if (state.pool) await loadVolumes(); });
  }, 10000);
}

document.addEventListener("DOMContentLoaded", start);
