/* Draws every [data-uplot] element of the scaling page with uPlot (static/vendor/uPlot.iife.min.js).
   Each element holds its data as JSON: {title, series: [labels], data: [[x], [y1], ...], unit}; x is Unix
   seconds (a time axis) unless unit is "s" (seconds from the start of a replay). Charts arriving by htmx
   (the metrics panel, a replay result) are drawn when they settle. */
(function () {
  "use strict";
  var COLOURS = ["#1f6feb", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"];

  function draw(el) {
    if (el.dataset.drawn || typeof window.uPlot === "undefined") return;
    var script = el.querySelector('script[type="application/json"]');
    if (!script) return;
    var spec = JSON.parse(script.textContent);
    if (!spec || !spec.data) return;
    var stepped = spec.key === "replay" || spec.key === "replicas";
    var series = [{ label: spec.unit === "s" ? "t (s)" : "time" }];
    spec.series.forEach(function (label, i) {
      var s = { label: label, stroke: COLOURS[i % COLOURS.length], width: 2, spanGaps: true };
      if (label === "target" || label.indexOf("needed") >= 0) {
        s.dash = [6, 4];
        s.stroke = "#888";
      } else if (stepped && window.uPlot.paths && window.uPlot.paths.stepped) {
        s.paths = window.uPlot.paths.stepped({ align: 1 });
      }
      series.push(s);
    });
    var width = Math.max(320, Math.floor(el.getBoundingClientRect().width || 800));
    var opts = {
      title: spec.title,
      width: width,
      height: 280,
      series: series,
      scales: { x: { time: spec.unit !== "s" } },
    };
    new window.uPlot(opts, spec.data, el);
    el.dataset.drawn = "yes";
  }

  function drawAll() {
    document.querySelectorAll("[data-uplot]").forEach(draw);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", drawAll);
  } else {
    drawAll();
  }
  document.addEventListener("htmx:afterSettle", drawAll);
  window.addEventListener("load", drawAll);
})();
