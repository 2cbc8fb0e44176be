// machsend web: the page of the local helper. It uploads what the user
// drops or picks into the helper, asks it to share or to download, and
// shows the helper's state (GET /api/state), polled twice a second.
"use strict";

var $ = function (id) { return document.getElementById(id); };
var lastLink = "";
// The three lists as of version lists.version: the helper sends them only
// when they changed (GET /api/state?lists=VERSION).
var lists = { version: "", staged: [], shared: [], offered: [] };

function human(n) {
  var units = ["B", "KiB", "MiB", "GiB", "TiB"];
  var i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
}

function duration(s) {
  if (s < 0 || !isFinite(s)) { return "-"; }
  s = Math.round(s);
  if (s < 60) { return s + " s"; }
  if (s < 3600) { return Math.floor(s / 60) + " min " + (s % 60) + " s"; }
  return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
}

function showError(msg) {
  var e = $("error");
  e.textContent = msg || "";
  e.hidden = !msg;
}

// api calls the helper; a refusal becomes an Error carrying its words.
function api(method, path, body, raw) {
  var opts = { method: method, credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    opts.body = raw ? body : JSON.stringify(body);
    if (!raw) { opts.headers["Content-Type"] = "application/json"; }
  }
  return fetch(path, opts).then(function (r) {
    if (r.status === 204) { return null; }
    return r.text().then(function (t) {
      var v = null;
      try { v = JSON.parse(t); } catch (e) { v = { error: t }; }
      if (!r.ok) { throw new Error((v && v.error) || ("the helper answered " + r.status)); }
      return v;
    });
  });
}

// --- collecting dropped and picked files -----------------------------

function readAll(reader) {
  return new Promise(function (resolve, reject) {
    var out = [];
    (function more() {
      reader.readEntries(function (batch) {
        if (batch.length === 0) { resolve(out); return; }
        out = out.concat(Array.prototype.slice.call(batch));
        more();
      }, reject);
    })();
  });
}

// walk turns a dropped entry into [{path, file}] (file null for a folder).
function walk(entry, prefix) {
  var path = prefix ? prefix + "/" + entry.name : entry.name;
  if (entry.isFile) {
    return new Promise(function (resolve, reject) {
      entry.file(function (f) { resolve([{ path: path, file: f }]); }, reject);
    });
  }
  return readAll(entry.createReader()).then(function (children) {
    return Promise.all(children.map(function (c) { return walk(c, path); }));
  }).then(function (lists) {
    return [].concat.apply([{ path: path, file: null }], lists);
  });
}

function fromDrop(dt) {
  var entries = [];
  if (dt.items) {
    for (var i = 0; i < dt.items.length; i++) {
      var en = dt.items[i].webkitGetAsEntry && dt.items[i].webkitGetAsEntry();
      if (en) { entries.push(en); }
    }
  }
  if (entries.length === 0) {
    return Promise.resolve(fromFiles(dt.files));
  }
  return Promise.all(entries.map(function (e) { return walk(e, ""); })).then(function (lists) {
    return [].concat.apply([], lists);
  });
}

function fromFiles(files) {
  var out = [];
  for (var i = 0; i < files.length; i++) {
    out.push({ path: files[i].webkitRelativePath || files[i].name, file: files[i] });
  }
  return out;
}

// upload adds the items to the helper one after another.
function upload(items) {
  showError("");
  var i = 0;
  function next() {
    if (i >= items.length) {
      $("uploading").textContent = items.length ? "added " + items.length + (items.length === 1 ? " item" : " items") : "";
      return refresh();
    }
    var it = items[i++];
    $("uploading").textContent = "adding " + i + " of " + items.length + ": " + it.path;
    var q = "/api/files?path=" + encodeURIComponent(it.path);
    if (!it.file) {
      return api("PUT", q + "&dir=1", "", true).then(next);
    }
    return api("PUT", q + "&mtime=" + (it.file.lastModified || 0), it.file, true).then(next);
  }
  return next().catch(function (e) { showError(e.message); $("uploading").textContent = ""; });
}

// --- rendering ---------------------------------------------------------

function rows(tbody, list, cells) {
  tbody.textContent = "";
  list.forEach(function (e) {
    var tr = document.createElement("tr");
    cells(e).forEach(function (c) {
      var td = document.createElement("td");
      if (c instanceof Node) { td.appendChild(c); } else { td.textContent = c.text; td.className = c.cls || ""; }
      tr.appendChild(td);
    });
    tbody.appendChild(tr);
  });
}

function total(list) {
  return list.reduce(function (s, e) { return s + (e.dir ? 0 : e.size); }, 0);
}

var statusWords = {
  connecting: "connecting…",
  transferring: "transferring",
  done: "done",
  failed: "failed",
  listed: "looked at the list of files"
};

function progressLine(p) {
  var parts = [];
  if (p.path) { parts.push("path: " + p.path); }
  parts.push(statusWords[p.status] || p.status);
  if (p.total > 0) {
    parts.push(human(p.done) + " of " + human(p.total) + " (" + Math.floor(100 * p.done / p.total) + "%)");
  }
  if (p.status === "transferring") {
    if (p.file) { parts.push(p.file + " " + Math.floor(p.file_pct) + "%"); }
    parts.push(human(p.bytes_per_second) + "/s");
    parts.push("ETA " + duration(p.eta_seconds));
  }
  if (p.status === "done" && p.seconds > 0) {
    parts.push("in " + duration(p.seconds) + ", " + human(p.bytes_per_second) + "/s");
  }
  if (p.resumed) { parts.push("resumed " + human(p.resumed)); }
  return parts.join(" · ");
}

function progressItem(p, label) {
  var li = document.createElement("div");
  li.className = "progress-item";
  var t = document.createElement("div");
  t.textContent = label + ": " + progressLine(p);
  li.appendChild(t);
  if (p.status !== "listed") {
    var bar = document.createElement("progress");
    bar.max = Math.max(p.total, 1);
    bar.value = p.status === "done" ? bar.max : p.done;
    bar.setAttribute("aria-label", label + " progress");
    li.appendChild(bar);
  }
  if (p.error) {
    var e = document.createElement("div");
    e.className = "error";
    e.textContent = p.error;
    li.appendChild(e);
  }
  return li;
}

function entryCells(e) {
  return [{ text: e.dir ? e.path + "/" : e.path }, { text: e.dir ? "" : human(e.size), cls: "num" }];
}

function offeredCells(e) {
  var cb = document.createElement("input");
  cb.type = "checkbox";
  cb.checked = true;
  cb.value = e.path;
  cb.setAttribute("aria-label", "download " + e.path);
  return [cb].concat(entryCells(e));
}

// renderLists redraws the tables, only when the helper sent new lists.
function renderLists(st) {
  if (st.lists === lists.version) { return; }
  lists = { version: st.lists, staged: st.staged || [], shared: st.share ? st.share.entries || [] : [],
    offered: st.fetch ? st.fetch.entries || [] : [] };
  rows($("staged").tBodies[0], lists.staged, entryCells);
  $("staged-total").textContent = human(total(lists.staged));
  rows($("shared-files").tBodies[0], lists.shared, entryCells);
  rows($("offered").tBodies[0], lists.offered, offeredCells);
  $("offered-total").textContent = human(total(lists.offered));
}

function renderShare(st) {
  var sh = st.share;
  var sharing = sh && sh.sharing;
  $("staged-box").hidden = sharing || lists.staged.length === 0;
  $("drop").hidden = !!sharing;
  $("sharing-note").hidden = !sharing;
  if (sharing) { $("uploading").textContent = ""; }
  $("shared").hidden = !sh;
  if (!sh) { return; }
  if (sh.link !== lastLink) {
    lastLink = sh.link;
    $("link").value = sh.link;
    $("qr").src = "/api/qr.png?l=" + encodeURIComponent(sh.link.slice(-8));
  }
  $("share-status").textContent = sh.sharing ? "Sharing " + lists.shared.length + " entries, " + human(sh.bytes) + ". Keep this page's helper running until they have arrived." :
    (sh.error ? "Sharing ended: " + sh.error : "Sharing stopped: the link no longer works.");
  $("share-status").className = sh.error ? "error" : "";
  $("stop").hidden = !sh.sharing;
  var ul = $("recipients");
  ul.textContent = "";
  (sh.recipients || []).forEach(function (p) {
    var li = document.createElement("li");
    li.appendChild(progressItem(p, "Recipient " + p.receiver));
    ul.appendChild(li);
  });
  if (!sh.recipients || sh.recipients.length === 0) {
    var li = document.createElement("li");
    li.className = "muted";
    li.textContent = "nobody yet";
    ul.appendChild(li);
  }
}

var fetchWords = {
  connecting: "Connecting to the sender…",
  ready: "Choose what to download.",
  downloading: "Downloading…",
  done: "Done.",
  failed: "Failed."
};

function renderFetch(st) {
  var f = st.fetch;
  $("dir").textContent = st.download_dir;
  // Someone who came to receive sees that first.
  document.body.classList.toggle("receiving", !!f && !st.share && lists.staged.length === 0);
  if (!f) { return; }
  if (!$("open-link").value && document.activeElement !== $("open-link")) { $("open-link").value = f.link; }
  var words = fetchWords[f.status] || f.status;
  if (f.status === "done") { words = "Done: saved in " + (f.dir || st.download_dir) + "."; }
  if (f.error) { words += " " + f.error; }
  $("fetch-status").textContent = words;
  $("fetch-status").className = f.error ? "error" : "";
  $("offer").hidden = lists.offered.length === 0;
  $("download").disabled = f.status === "connecting" || f.status === "downloading";
  var box = $("fetch-progress");
  box.textContent = "";
  if (f.progress) { box.appendChild(progressItem(f.progress, "Download")); }
}

function refresh() {
  return api("GET", "/api/state?lists=" + encodeURIComponent(lists.version)).then(function (st) {
    renderLists(st);
    renderShare(st);
    renderFetch(st);
  }).catch(function (e) { showError("The helper does not answer (" + e.message + "). Is machsend web still running?"); });
}

// --- wiring --------------------------------------------------------------

document.addEventListener("DOMContentLoaded", function () {
  var drop = $("drop");
  ["dragenter", "dragover"].forEach(function (t) {
    drop.addEventListener(t, function (ev) { ev.preventDefault(); drop.classList.add("over"); });
  });
  drop.addEventListener("dragleave", function () { drop.classList.remove("over"); });
  drop.addEventListener("drop", function (ev) {
    ev.preventDefault();
    drop.classList.remove("over");
    fromDrop(ev.dataTransfer).then(upload).catch(function (e) { showError("cannot read what was dropped: " + e.message); });
  });
  drop.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); $("pick-files").click(); }
  });
  ["pick-files", "pick-folder"].forEach(function (id) {
    $(id).addEventListener("change", function (ev) {
      upload(fromFiles(ev.target.files)).then(function () { ev.target.value = ""; });
    });
  });
  $("share").addEventListener("click", function () {
    showError("");
    api("POST", "/api/share", {}).then(refresh).catch(function (e) { showError(e.message); });
  });
  $("clear").addEventListener("click", function () {
    api("DELETE", "/api/files").then(refresh).catch(function (e) { showError(e.message); });
  });
  $("stop").addEventListener("click", function () {
    api("POST", "/api/stop", {}).then(refresh).catch(function (e) { showError(e.message); });
  });
  $("copy").addEventListener("click", function () {
    var l = $("link");
    l.select();
    var done = function () { $("copied").textContent = "Link copied."; };
    if (navigator.clipboard) {
      navigator.clipboard.writeText(l.value).then(done, function () { document.execCommand("copy"); done(); });
    } else {
      document.execCommand("copy");
      done();
    }
  });
  $("open-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    showError("");
    api("POST", "/api/open", { link: $("open-link").value.trim() }).then(refresh).catch(function (e) { showError(e.message); });
  });
  $("all").addEventListener("change", function (ev) {
    Array.prototype.forEach.call($("offered").tBodies[0].querySelectorAll("input"), function (cb) { cb.checked = ev.target.checked; });
  });
  $("download").addEventListener("click", function () {
    var boxes = Array.prototype.slice.call($("offered").tBodies[0].querySelectorAll("input"));
    var chosen = boxes.filter(function (cb) { return cb.checked; }).map(function (cb) { return cb.value; });
    if (chosen.length === 0) { showError("Choose at least one file to download."); return; }
    showError("");
    var paths = chosen.length === boxes.length ? [] : chosen;
    api("POST", "/api/download", { paths: paths }).then(refresh).catch(function (e) { showError(e.message); });
  });
  refresh();
  setInterval(refresh, 500);
});
