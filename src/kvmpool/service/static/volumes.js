// The volume table of the selected pool and its actions (create, clone, resize, wipe, upload, download, snapshots, delete).
import { $, api, ApiError, attempt, ask, button, confirmAction, el, enc, fail, focusKey, poolPath, pretty, restoreFocus, say, state, volPath } from "./util.js";
import { loadPools, renderPools } from "./pools.js";
import { followJob, renderJobs } from "./jobs.js";

export async function openVolumes(name) {
  state.pool = name;
  $("#volumes").hidden = false;
  $("#volumes-heading").textContent = `Volumes in pool ${name}`;
  renderPools();
  await attempt(null, loadVolumes);
  $("#volumes-heading").focus();
}

export function closeVolumes() {
  state.pool = null;
  state.volumes = [];
  $("#volumes").hidden = true;
  $("#volume-table tbody").replaceChildren();
  renderPools();
}

export async function loadVolumes() {
  if (!state.pool) return;
  state.volumes = await api("GET", `${poolPath(state.pool)}/volumes`);
  renderVolumes();
}

export function renderVolumes() {
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

export async function afterVolumeChange() {
  await attempt(null, loadVolumes);
  await attempt(null, loadPools);
}

export async function newVolume() {
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

export async function cloneVolume(name) {
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

export async function resizeVolume(v) {
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

export async function wipeVolume(name) {
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

export async function deleteVolume(name) {
  const ok = await confirmAction({
    title: `Delete volume ${name}?`, text: "Its data is lost.", ok: "Delete",
  });
  if (!ok) return;
  await attempt(`Vol ${name} deleted`, () => api("DELETE", volPath(state.pool, name)));
  await afterVolumeChange();
}

export async function uploadVolume(name) {
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

export async function downloadVolume(name) {
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

export async function snapshots(name) {
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
