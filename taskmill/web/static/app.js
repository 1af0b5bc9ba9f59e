// taskmill dashboard: live progress and log lines over server-sent events. No framework, no build.
"use strict";

(function () {
  var TERMINAL = { succeeded: true, failed: true, cancelled: true };

  function text(id, value) {
    var el = document.getElementById(id);
    if (el) { el.textContent = value; }
  }

  function showProgress(job) {
    var bar = document.getElementById("bar");
    if (bar) { bar.value = job.progress; }
    text("percent", Math.round(job.progress) + "%");
    if (job.progress_message !== null) { text("progress-message", job.progress_message); }
    text("attempts", job.attempts + " of " + job.max_attempts + " (" + job.attempts_left + " left)");
    var badge = document.querySelector("h1 [data-state]");
    if (badge) {
      badge.textContent = job.state;
      badge.className = "state state-" + job.state;
    }
  }

  function addLog(list, line) {
    var li = document.createElement("li");
    li.className = "level-" + line.level.toLowerCase();
    var time = document.createElement("time");
    time.textContent = line.at.slice(11, 19);
    var lvl = document.createElement("span");
    lvl.className = "lvl";
    lvl.textContent = line.level;
    var att = document.createElement("span");
    att.className = "att";
    att.textContent = "#" + line.attempt;
    var msg = document.createElement("span");
    msg.className = "msg";
    msg.textContent = line.message;
    li.append(time, " ", lvl, " ", att, " ", msg);
    list.appendChild(li);
    list.scrollTop = list.scrollHeight;
    text("log-count", list.children.length + " lines");
  }

  function follow(root, onProgress, onLog) {
    var url = root.getAttribute("data-events");
    if (!url || !window.EventSource) { return; }
    var source = new EventSource(url);
    var fresh = true;
    source.addEventListener("open", function () { fresh = true; });
    source.addEventListener("log", function (event) {
      onLog(JSON.parse(event.data), fresh);
      fresh = false;
    });
    source.addEventListener("progress", function (event) {
      var job = JSON.parse(event.data);
      onProgress(job);
      if (TERMINAL[job.state]) { source.close(); }
    });
    source.addEventListener("error", function (event) {
      if (event.data) { source.close(); }
    });
  }

  function jobPage(root) {
    var list = document.getElementById("log");
    follow(root, function (job) {
      showProgress(job);
      if (TERMINAL[job.state]) {
        // The result, error and buttons are rendered by the server: load the finished page.
        window.setTimeout(function () { window.location.reload(); }, 300);
      }
    }, function (line, fresh) {
      if (fresh && list) { list.textContent = ""; }
      if (list) { addLog(list, line); }
    });
  }

  function progressPage(root) {
    var result = root.getAttribute("data-result");
    follow(root, function (job) {
      showProgress(job);
      if (job.state === "running") { text("status", "Working…"); }
      if (job.state === "succeeded" && result) {
        text("status", "Done. Taking you to the result…");
        window.location.assign(result);
      } else if (TERMINAL[job.state]) {
        window.setTimeout(function () { window.location.reload(); }, 300);
      }
    }, function (line) {
      text("latest", line.message);
    });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-confirm]");
    if (button && !window.confirm(button.getAttribute("data-confirm"))) {
      event.preventDefault();
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    var job = document.getElementById("job");
    if (job) { jobPage(job); }
    var progress = document.getElementById("progress-page");
    if (progress) { progressPage(progress); }
  });
})();
