// The pool list (usage bars, lifecycle buttons), the create-pool dialog, source discovery.
import { $, api, ApiError, attempt, ask, button, confirmAction, el, enc, fail, focusKey, poolPath, pretty, restoreFocus, say, state } from "./util.js";
import { closeVolumes, loadVolumes, openVolumes } from "./volumes.js";
import { followJob } from "./jobs.js";

export async function loadPools() {
  state.pools = await api("GET", "/api/pools");
  renderPools();
  if (state.pool && !state.pools.some((p) => p.name === state.pool && p.active)) closeVolumes();
}

export function usageCell(p) {
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

export function renderPools() {
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

export async function poolAction(name, verb, done) {
  await attempt(done, () => api("POST", `${poolPath(name)}/${verb}`, {}));
  await attempt(null, loadPools);
  if (state.pool === name) await attempt(null, loadVolumes);
}

export async function setAutostart(name, on) {
  await attempt(`Pool ${name} ${on ? "marked" : "unmarked"} as autostarted`,
    () => api("PUT", `${poolPath(name)}/autostart`, { autostart: on }));
  await attempt(null, loadPools);
}

export async function buildPool(name) {
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

export async function deletePool(p) {
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

export async function undefinePool(name) {
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

export const SOURCE_FORMATS = {
  fs: ["auto", "ext2", "ext3", "ext4", "xfs", "btrfs", "vfat"],
  netfs: ["auto", "nfs", "cifs", "glusterfs"],
  disk: ["unknown", "gpt", "dos", "dvh", "mac", "bsd", "pc98", "sun", "lvm2"],
  logical: ["auto", "lvm2"],
};
export const TARGET_HINT = {
  dir: "Empty: a directory under kvmpool's data directory.",
  fs: "The mount point, e.g. /srv/pool.",
  netfs: "The mount point, e.g. /srv/nfs-pool.",
  logical: "Usually /dev/<volume group>; may be left empty.",
  disk: "Usually /dev.",
  iscsi: "Usually /dev/disk/by-path.",
};

export function showPoolFields() {
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
export async function discoverSources() {
  const type = $("#pool-type").value;
  const out = $("#pool-sources");
  const body = { type };
  const host = $("#pool-source-host").value.trim();
  if (host) body.host = host;
  const port = $("#pool-source-port").value.trim();
  if (/^[0-9]+$/.test(port)) body.port = Number(port);
  const initiator = $("#pool-source-initiator").value.trim();
  if (initiator) body.initiator = initiator;
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

export async function newPool() {
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
    for (const key of ["target", "source_host", "source_port", "source_path", "source_name",
      "source_format", "thin_pool", "source_initiator", "adapter_name", "auth_type",
      "auth_username", "secret_usage"]) {
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
