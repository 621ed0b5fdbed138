// kvmpool's page: plain JavaScript modules over the REST API (see /api/openapi.json).
// No framework, no build step, nothing fetched from anywhere but this server.
//   util.js (state, API client, dialogs), pools.js, volumes.js, jobs.js; this file starts it.
import { $, api, attempt, showLogin, say, state } from "./util.js";
import { discoverSources, loadPools, newPool, showPoolFields } from "./pools.js";
import { closeVolumes, loadVolumes, newVolume } from "./volumes.js";
import { followJob, renderJobs } from "./jobs.js";

export async function start() {
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
