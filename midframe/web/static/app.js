// The midframe dashboard: polls GET /dashboard/state once a second and draws it; the buttons call the
// control API with the session cookie. Everything shown that came from a file (names, errors) is put
// in as text, never as HTML.
"use strict";

const POLL_MS = 1000;
const SETTINGS_MS = 30000;

const $ = (id) => document.getElementById(id);

let last = null;          // the last state drawn
let stopped = false;      // a stop was asked for: the daemon is going away
let loggedOut = false;
let settingsAt = 0;
const uploadQueue = [];
let uploading = false;

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(method, path) {
  let response;
  try {
    response = await fetch(path, { method, credentials: "same-origin", cache: "no-store" });
  } catch (err) {
    throw new ApiError(0, "the daemon is not answering");
  }
  let data = null;
  try {
    data = await response.json();
  } catch (err) {
    data = null;
  }
  if (!response.ok) {
    throw new ApiError(response.status, (data && data.error) || `HTTP ${response.status}`);
  }
  return data;
}

// --- small helpers ---------------------------------------------------------------------------------

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function duration(seconds) {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) return "–";
  let s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  if (h) return `${h}h${String(m).padStart(2, "0")}m`;
  if (m) return `${m}m${String(s).padStart(2, "0")}s`;
  return `${s}s`;
}

function bytes(n) {
  if (!n) return "0 B";
  const units = ["B", "KB", "MB", "GB", "TB"];  // of 1024, as daemon.upload_max_mb counts
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${n.toFixed(n < 10 && i ? 1 : 0)} ${units[i]}`;
}

function clock(epochSeconds) {
  if (!epochSeconds) return "–";
  const when = new Date(epochSeconds * 1000);
  const today = new Date();
  const sameDay = when.toDateString() === today.toDateString();
  return sameDay ? when.toLocaleTimeString() : when.toLocaleString();
}

function folderLabel(folder) {
  return folder ? folder : "inbox";
}

let messageTimer = null;
function say(text, kind) {
  const box = $("message");
  box.textContent = text;
  box.dataset.kind = kind || "info";
  box.hidden = false;
  clearTimeout(messageTimer);
  messageTimer = setTimeout(() => { box.hidden = true; }, 8000);
}

// --- actions ---------------------------------------------------------------------------------------

async function act(method, path, done) {
  try {
    const result = await api(method, path);
    if (done) say(done, "info");
    await poll(true);
    return result;
  } catch (err) {
    handleError(err);
    return null;
  }
}

function handleError(err) {
  if (err.status === 401) {
    showLogin();
  } else {
    say(err.message, "error");
  }
}

function showLogin() {
  loggedOut = true;
  $("app").hidden = true;
  $("login-needed").hidden = false;
  $("logout").hidden = true;  // nothing to log out of
  setBadge("logged out");
  for (const id of ["pause", "resume", "stop"]) $(id).disabled = true;
}

function setBadge(state) {
  const badge = $("state");
  badge.textContent = state;
  badge.dataset.state = state;
}

// --- drawing ---------------------------------------------------------------------------------------

function drawStatus(status) {
  setBadge(stopped ? "stopping" : status.state);
  $("paused-reason").textContent = status.state === "paused" && status.paused_reason ? status.paused_reason : "";
  $("pause").disabled = stopped || status.state === "paused";
  $("resume").disabled = stopped || status.state !== "paused";
  $("stop").disabled = stopped;
  $("count-queued").textContent = status.queued;
  $("count-done").textContent = status.done;
  $("count-failed").textContent = status.failed;

  const current = status.current;
  $("current-none").hidden = Boolean(current);
  $("current").hidden = !current;
  if (!current) return;
  $("current-name").textContent = current.name;
  const folder = $("current-folder");
  folder.hidden = !current.folder;
  folder.textContent = current.folder || "";
  const fraction = Math.min(1, Math.max(0, current.progress || 0));
  $("current-progress").setAttribute("aria-valuenow", String(fraction));
  $("current-bar").style.width = `${(fraction * 100).toFixed(2)}%`;
  $("current-percent").textContent = `${(fraction * 100).toFixed(1)}%`;
  $("current-frames").textContent = `${current.frames_done} / ${current.frames_total}`;
  $("current-fps").textContent = current.fps ? `${current.fps.toFixed(1)} fps` : "–";
  $("current-elapsed").textContent = duration(current.elapsed_s);
  // While a model is prepared for this size no frames come: say so, and roughly for how long.
  $("current-eta").textContent = status.state === "paused" ? "paused"
    : current.preparing ? current.preparing : duration(current.eta_s);
  $("current-cancel").dataset.id = current.id;
}

// Failures stay news until someone presses "Mark seen" here (or picks the tray's "N failed" line).
function drawUnseen(unseen) {
  const count = (unseen && unseen.failed_unseen) || 0;
  const names = (unseen && unseen.failed_unseen_names) || [];
  $("unseen").hidden = count === 0;
  $("unseen-count-box").hidden = count === 0;
  $("count-unseen").textContent = count;
  const more = count > names.length ? ", …" : "";
  $("unseen-text").textContent = count ?
    `${count} failed, not seen yet: ${names.join(", ")}${more} (see History for why)` : "";
}

// Rows are rebuilt only when what they show changed, so a button is never replaced under the pointer.
const drawn = new Map();
function changed(key, data) {
  const text = JSON.stringify(data);
  if (drawn.get(key) === text) return false;
  drawn.set(key, text);
  return true;
}

function replaceRows(table, rows) {
  const body = table.querySelector("tbody");
  body.replaceChildren(...rows);
}

function drawQueue(queue) {
  if (!changed("queue", queue)) return;
  $("queue-count").textContent = queue.length ? `(${queue.length})` : "";
  $("queue-empty").hidden = queue.length > 0;
  $("queue").hidden = queue.length === 0;
  replaceRows($("queue"), queue.map((job, index) => {
    let note = "";
    if (job.not_before) note = `waits until ${clock(job.not_before)}`;
    if (job.error) note = note ? `${note}; ${job.error}` : `earlier attempt: ${job.error}`;
    return el("tr", { "data-id": job.id },
      el("td", { class: "num", text: job.id }),
      el("td", { class: "name", text: job.name }),
      el("td", { class: "folder", text: folderLabel(job.folder) }),
      el("td", { class: "num", text: bytes(job.size) }),
      el("td", { class: "note", text: note }),
      el("td", { class: "actions" },
        el("button", { type: "button", class: "small front", disabled: index === 0,
                       onclick: () => act("POST", `/jobs/${job.id}/front`, `${job.name} is next`) }, "Move to front"),
        el("button", { type: "button", class: "small cancel",
                       onclick: () => act("POST", `/jobs/${job.id}/cancel`, `${job.name} cancelled`) }, "Cancel")));
  }));
}

function drawHistory(history, total) {
  if (!changed("history", [history, total, new Date().toDateString()])) return;
  $("history-count").textContent = total > history.length ? `(latest ${history.length} of ${total})` :
    (total ? `(${total})` : "");
  $("history-empty").hidden = history.length > 0;
  $("history").hidden = history.length === 0;
  replaceRows($("history"), history.map((job) => {
    const result = el("td", { class: "result" }, el("span", { class: "badge", "data-state": job.state, text: job.state }));
    if (job.error) result.append(el("div", { class: "reason", text: job.error }));
    // A linked duplicate made nothing: say whose output it is, and show no conversion time.
    if (job.linked) result.append(el("div", { class: "reason linked", text: job.linked }));
    if (job.engines) {
      result.append(el("div", { class: "engines", title: job.engines.scenes.join("\n"), text: job.engines.line }));
    }
    const retry = job.state === "done" ? null :
      el("button", { type: "button", class: "small retry",
                     onclick: () => act("POST", `/jobs/${job.id}/retry`, `${job.name} queued again`) }, "Retry");
    return el("tr", { "data-id": job.id, "data-state": job.state },
      el("td", { class: "name", text: job.name }),
      el("td", { class: "folder", text: folderLabel(job.folder) }),
      result,
      el("td", { class: "output", text: job.output || "–" }),
      el("td", { class: "num", text: duration(job.duration_s) }),
      el("td", { class: "when", text: clock(job.finished_at) }),
      el("td", { class: "actions" }, retry));
  }));
}

// The farm's state from status (scheduler, workers, busy, connected, problem) and, for the job being
// converted, how many of its segments each farm worker has made.
function drawFarm(farm, current) {
  $("farm-card").hidden = !farm;
  if (!farm || !changed("farm", [farm, current && current.workers])) return;
  let summary = `Scheduler ${farm.scheduler}: ${farm.workers} worker${farm.workers === 1 ? "" : "s"}, ${farm.busy} busy`;
  if (!farm.connected) summary = `Scheduler ${farm.scheduler}: not connected`;
  if (farm.problem) summary += ` (${farm.problem})`;
  $("farm-summary").textContent = summary;
  $("farm-card").dataset.connected = farm.connected ? "true" : "false";
  const workers = (current && current.workers) || {};
  const rows = Object.entries(workers).map(([address, segments]) =>
    el("tr", {}, el("td", { text: address }), el("td", { class: "num", text: `${segments} segment${segments === 1 ? "" : "s"} of ${current.name}` })));
  $("farm-workers").hidden = rows.length === 0;
  replaceRows($("farm-workers"), rows);
}

function drawFolders(folders, maxBytes) {
  const select = $("upload-folder");
  const wanted = folders.join("\n");
  if (select.dataset.folders !== wanted) {
    const chosen = select.value;
    select.replaceChildren(...folders.map((f) => el("option", { value: f, text: f ? `profile ${f} (inbox/${f})` : "inbox (top-level settings)" })));
    if (folders.includes(chosen)) select.value = chosen;
    select.dataset.folders = wanted;
  }
  $("dropzone").dataset.disabled = maxBytes ? "" : "true";
  $("upload-limit").textContent = maxBytes ? `up to ${bytes(maxBytes)} per file` : "uploads are turned off (daemon.upload_max_mb: 0)";
}

function shown(value) {
  if (value === null || value === undefined) return "null";
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

// One table: a row per setting, a column per folder (the inbox, then each profile); a profile's value
// that differs from the inbox's is marked.
async function drawSettings() {
  settingsAt = Date.now();
  let list;
  try {
    list = await api("GET", "/dashboard/settings");
  } catch (err) {
    if (err.status === 401) showLogin();
    return;
  }
  if (!list.length) return;
  const base = list[0];
  const keys = [];
  for (const section of ["engine", "output"]) {
    for (const key of Object.keys(base[section])) keys.push([section, key]);
  }
  const head = el("tr", {}, el("th", { text: "Setting" }), ...list.map((item) =>
    el("th", { "data-profile": item.profile || "", title: `files dropped into ${item.folder}` },
       item.profile ? `profile ${item.profile}` : "inbox", el("div", { class: "hint", text: item.folder }))));
  // Which of factor and target_fps decides the frame rate, per folder; the other is marked unused.
  const applies = el("tr", { class: "applies" }, el("th", { class: "key", text: "frame rate" }),
    ...list.map((item) => el("td", { text: item.applies || "" })));
  const rows = keys.map(([section, key]) => el("tr", {}, el("th", { class: "key", text: `${section}.${key}` }),
    ...list.map((item) => {
      const value = shown(item[section][key]);
      const unused = (item.unused || []).includes(`${section}.${key}`);
      const differs = item !== base && value !== shown(base[section][key]);
      return el("td", { class: unused ? "unused" : differs ? "differs" : null,
                        text: unused ? `${value} (not used)` : value });
    })));
  $("settings").replaceChildren(el("table", { class: "settings" }, el("thead", {}, head),
    el("tbody", {}, applies, ...rows)));
}

// --- polling ---------------------------------------------------------------------------------------

let pollTimer = null;
async function poll(once) {
  if (loggedOut) return;
  try {
    const state = await api("GET", "/dashboard/state");
    last = state;
    $("login-needed").hidden = true;
    $("app").hidden = false;
    $("logout").hidden = false;
    drawStatus(state.status);
    drawUnseen(state.unseen);
    drawQueue(state.queue);
    drawHistory(state.history, state.history_total);
    drawFarm(state.farm, state.status.current);
    drawFolders(state.folders, state.upload_max_bytes);
    if (Date.now() - settingsAt > SETTINGS_MS) drawSettings();
    document.body.dataset.ready = "true";
  } catch (err) {
    if (err.status === 401) {
      showLogin();
      return;
    }
    setBadge(stopped ? "stopped" : "not answering");
    for (const id of ["pause", "resume", "stop"]) $(id).disabled = true;
  }
  if (!once) pollTimer = setTimeout(poll, POLL_MS);
}

// --- uploads ---------------------------------------------------------------------------------------

function addFiles(fileList) {
  const folder = $("upload-folder").value;
  const max = last ? last.upload_max_bytes : 0;
  for (const file of fileList) {
    const bar = el("div", { class: "bar small" }, el("div", {}));
    const note = el("span", { class: "note", text: "waiting" });
    const item = el("li", { "data-name": file.name }, el("span", { class: "name", text: file.name }), bar, note);
    $("uploads").prepend(item);
    if (max && file.size > max) {
      item.dataset.result = "refused";
      note.textContent = `larger than the ${bytes(max)} uploads may have`;
      continue;
    }
    uploadQueue.push({ file, folder, item, bar, note });
  }
  nextUpload();
}

function nextUpload() {
  if (uploading || uploadQueue.length === 0) return;
  uploading = true;
  const { file, folder, item, bar, note } = uploadQueue.shift();
  const xhr = new XMLHttpRequest();
  const query = `name=${encodeURIComponent(file.name)}&folder=${encodeURIComponent(folder)}`;
  xhr.open("POST", `/dashboard/upload?${query}`);
  xhr.withCredentials = true;
  note.textContent = "uploading";
  xhr.upload.addEventListener("progress", (event) => {
    if (event.lengthComputable) bar.firstChild.style.width = `${(100 * event.loaded / event.total).toFixed(1)}%`;
  });
  const finish = (ok, text) => {
    item.dataset.result = ok ? "saved" : "failed";
    note.textContent = text;
    if (ok) bar.firstChild.style.width = "100%";
    uploading = false;
    nextUpload();
  };
  xhr.addEventListener("load", () => {
    let data = null;
    try {
      data = JSON.parse(xhr.responseText);
    } catch (err) {
      data = null;
    }
    if (xhr.status === 200 && data) {
      finish(true, `saved as ${data.folder ? data.folder + "/" : ""}${data.name}; it is queued once it settles`);
    } else {
      if (xhr.status === 401) showLogin();
      finish(false, (data && data.error) || `HTTP ${xhr.status}`);
    }
  });
  xhr.addEventListener("error", () => finish(false, "the upload was cut off"));
  xhr.send(file);
}

function setUpUploads() {
  const zone = $("dropzone");
  const input = $("file-input");
  // A file dropped anywhere else must not make the browser leave the page to show it.
  for (const kind of ["dragover", "drop"]) window.addEventListener(kind, (event) => event.preventDefault());
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    if (event.dataTransfer && event.dataTransfer.files.length) addFiles(event.dataTransfer.files);
  });
  zone.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") input.click();
  });
  input.addEventListener("change", () => {
    addFiles(input.files);
    input.value = "";
  });
}

// --- start -----------------------------------------------------------------------------------------

function start() {
  $("pause").addEventListener("click", () => act("POST", "/pause", "Paused: the current job holds after its batch"));
  $("resume").addEventListener("click", () => act("POST", "/resume", "Resumed"));
  $("unseen-seen").addEventListener("click", () => act("POST", "/failures/seen", null));
  $("stop").addEventListener("click", async () => {
    if (!window.confirm("Stop the daemon? The current job resumes where it stopped at the next start.")) return;
    const result = await act("POST", "/stop", "The daemon is stopping");
    if (result) {
      stopped = true;
      setBadge("stopping");
    }
  });
  $("logout").addEventListener("click", async () => {
    try {
      await api("POST", "/dashboard/logout");
    } catch (err) {
      // logged out either way
    }
    showLogin();
  });
  $("current-cancel").addEventListener("click", (event) => {
    const id = event.currentTarget.dataset.id;
    if (id) act("POST", `/jobs/${id}/cancel`, "Cancelled");
  });
  setUpUploads();
  poll(false);
}

document.addEventListener("DOMContentLoaded", start);
