// Lantern console behaviour: htmx error display, live charts (uPlot), firmware upload progress.
// No inline scripts anywhere: the pages' Content-Security-Policy allows only this origin.
"use strict";

(function () {
  const HISTORY = 90; // points kept per live chart (3 minutes at one point per 2 s)

  // Show an error answer (4xx/5xx HTML fragment) in the page's message area.
  document.addEventListener("htmx:beforeSwap", function (event) {
    const xhr = event.detail.xhr;
    if (xhr.status >= 400) {
      const flash = document.getElementById("flash");
      if (flash) {
        event.detail.shouldSwap = true;
        event.detail.isError = false;
        event.detail.target = flash;
        event.detail.swapOverride = "innerHTML";
        event.detail.selectOverride = ".flash";
      }
    }
  });

  function chartWidth(el) {
    return Math.max(240, el.clientWidth - 4);
  }

  // Live charts span minutes: label their ticks with the time of day only.
  function clockLabels(u, splits) {
    function two(n) { return (n < 10 ? "0" : "") + n; }
    return splits.map(function (v) {
      const d = new Date(v * 1000);
      return two(d.getHours()) + ":" + two(d.getMinutes()) + ":" + two(d.getSeconds());
    });
  }

  function makeChart(el, label, data, window) {
    const x = { time: true };
    // A live chart shows the last `window` seconds, so its first points do not span years.
    if (window) x.range = function (u, min, max) { return [max - window, max]; };
    const opts = {
      width: chartWidth(el),
      height: 150,
      legend: { show: false },
      scales: { x: x, y: { range: function (u, min, max) { return [0, Math.max(1, max * 1.1)]; } } },
      series: [{}, { label: label, stroke: "#0b5cad", width: 2, fill: "rgba(11,92,173,0.08)" }],
      axes: [window ? { values: clockLabels, space: 80 } : {}, { size: 50 }],
    };
    return new uPlot(opts, data, el);
  }

  // Overview: every refresh of the figures fragment appends one point per live chart.
  const live = {};
  function initLive() {
    document.querySelectorAll(".chart[data-live]").forEach(function (el) {
      const name = el.dataset.live;
      live[name] = { el: el, xs: [], ys: [], chart: null };
    });
    sampleLive();
  }

  function sampleLive() {
    const figures = document.getElementById("figures");
    if (!figures || typeof uPlot === "undefined") return;
    const now = Date.now() / 1000;
    Object.keys(live).forEach(function (name) {
      const raw = figures.dataset[name];
      const entry = live[name];
      if (raw === undefined) return;
      if (raw === "") {
        entry.el.textContent = "Not counted by this server.";
        return;
      }
      entry.xs.push(now);
      entry.ys.push(Number(raw));
      if (entry.xs.length > HISTORY) {
        entry.xs.shift();
        entry.ys.shift();
      }
      const data = [entry.xs, entry.ys];
      if (entry.chart === null) entry.chart = makeChart(entry.el, name, data, HISTORY * 2);
      else entry.chart.setData(data);
    });
  }

  document.addEventListener("htmx:afterSettle", function (event) {
    const target = event.detail.target;
    if (target && target.id === "figures-box") sampleLive();
    else initSeries();
  });

  // Device page: one chart per observation code, from the series embedded as JSON data.
  function initSeries() {
    document.querySelectorAll(".chart[data-series]").forEach(function (el) {
      if (typeof uPlot === "undefined" || el.dataset.drawn) return;
      el.dataset.drawn = "1";
      const points = JSON.parse(el.dataset.series);
      const xs = points.map(function (p) { return p[0]; });
      const ys = points.map(function (p) { return p[1]; });
      makeChart(el, el.dataset.label || "value", [xs, ys]);
    });
  }

  // Firmware upload with a progress bar (XMLHttpRequest reports upload progress).
  function initUpload() {
    const form = document.getElementById("firmware-upload");
    if (!form) return;
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      const file = form.querySelector("input[type=file]").files[0];
      const version = form.querySelector("[name=version]").value.trim();
      const name = form.querySelector("[name=name]").value.trim() || "firmware";
      const bar = document.getElementById("upload-progress");
      const status = document.getElementById("upload-status");
      if (!file || !version) {
        status.textContent = "Choose a file and give its version.";
        return;
      }
      const xhr = new XMLHttpRequest();
      const query = "?version=" + encodeURIComponent(version) + "&name=" + encodeURIComponent(name);
      xhr.open("POST", "/console/firmware/upload" + query);
      xhr.setRequestHeader("X-CSRF-Token", form.dataset.csrf);
      xhr.setRequestHeader("Content-Type", "application/octet-stream");
      xhr.upload.addEventListener("progress", function (e) {
        if (e.lengthComputable) {
          bar.value = Math.round((e.loaded / e.total) * 100);
          status.textContent = "Uploading: " + bar.value + " %";
        }
      });
      xhr.addEventListener("load", function () {
        if (xhr.status === 201) {
          bar.value = 100;
          status.textContent = "Uploaded " + version + ".";
          window.location.assign("/console/firmware?uploaded=" + encodeURIComponent(xhr.responseText));
        } else {
          status.textContent = "Upload refused (HTTP " + xhr.status + "): " + xhr.responseText;
        }
      });
      xhr.addEventListener("error", function () {
        status.textContent = "The upload failed: the connection was lost.";
      });
      xhr.send(file);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    initLive();
    initSeries();
    initUpload();
  });
})();
