/* The job editor's live preview: while the schedule or the time zone is typed, fetch the next runs (an HTML
   fragment from /cron/preview/, DST shifts marked) and swap it in. Also shows only the chosen target's fields. */
(function () {
  "use strict";
  var timer = null;
  var seq = 0;

  function field(name) {
    return document.querySelector('[data-cron-preview="' + name + '"]');
  }

  function refresh() {
    var holder = document.querySelector("[data-preview-url]");
    var schedule = field("schedule");
    var zone = field("timezone");
    if (!holder || !schedule || !zone) return;
    var url = holder.dataset.previewUrl + "?" + new URLSearchParams({ schedule: schedule.value, timezone: zone.value });
    var mine = ++seq;
    fetch(url, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } })
      .then(function (r) { return r.text(); })
      .then(function (html) { if (mine === seq) holder.innerHTML = html; })
      .catch(function () { /* the preview is a courtesy: the server checks again when saving */ });
  }

  function later() {
    clearTimeout(timer);
    timer = setTimeout(refresh, 300);
  }

  function showTarget() {
    var kind = document.querySelector('select[name="target_kind"]');
    if (!kind) return;
    document.querySelectorAll("fieldset[data-target]").forEach(function (set) {
      set.hidden = set.dataset.target !== kind.value;
    });
  }

  function init() {
    ["schedule", "timezone"].forEach(function (name) {
      var input = field(name);
      if (input) input.addEventListener("input", later);
    });
    var kind = document.querySelector('select[name="target_kind"]');
    if (kind) kind.addEventListener("change", showTarget);
    showTarget();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
