// Long operations: the live job list (polling), cancel.
import { $, api, ApiError, attempt, button, el, enc, fail, pretty, say, state } from "./util.js";

export const LABELS = {
  "pool.build": "Building", "volume.clone": "Cloning", "volume.wipe": "Wiping",
  "volume.upload": "Uploading", "volume.download": "Downloading",
  "volume.create_from": "Copying",
};

export function renderJobs() {
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

export async function cancelJob(id) {
  const job = await attempt("Job cancelled", () => api("DELETE", `/api/jobs/${enc(id)}`));
  if (job) { state.jobs.set(id, job); renderJobs(); }
}

// Poll a job until it ends; the list shows its progress meanwhile.
export async function followJob(job) {
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
