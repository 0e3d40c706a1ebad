// Standby console: a little plain script on top of pages that work without it. It keeps the
// theme and time-zone choices, formats times, handles the keyboard, selects rows, and follows
// live runs over server-sent events.
(function () {
  "use strict";
  var root = document.documentElement;
  var store = {
    get: function (key) { try { return localStorage.getItem(key); } catch (e) { return null; } },
    set: function (key, value) { try { localStorage.setItem(key, value); } catch (e) { /* private mode */ } }
  };

  // Theme: the system's, light or dark.
  var themes = ["system", "light", "dark"];
  function applyTheme() {
    var theme = store.get("standby.theme") || "system";
    if (theme === "system") { root.removeAttribute("data-theme"); } else { root.setAttribute("data-theme", theme); }
    document.querySelectorAll('[data-toggle="theme"]').forEach(function (b) { b.textContent = "Theme: " + theme; });
  }
  function nextTheme() {
    var theme = store.get("standby.theme") || "system";
    store.set("standby.theme", themes[(themes.indexOf(theme) + 1) % themes.length]);
    applyTheme();
  }
  applyTheme();

  // Times: ISO 8601 in UTC as served, or in this browser's zone, always with the zone shown.
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function offsetText(date) {
    var minutes = -date.getTimezoneOffset();
    var sign = minutes >= 0 ? "+" : "-";
    minutes = Math.abs(minutes);
    return sign + pad(Math.floor(minutes / 60)) + ":" + pad(minutes % 60);
  }
  function localIso(date) {
    return date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate()) + "T" +
      pad(date.getHours()) + ":" + pad(date.getMinutes()) + ":" + pad(date.getSeconds()) + offsetText(date);
  }
  function zone() { return store.get("standby.zone") === "local" ? "local" : "utc"; }
  function formatTimes(scope) {
    var local = zone() === "local";
    (scope || document).querySelectorAll("time[datetime]").forEach(function (el) {
      var utc = el.getAttribute("datetime");
      var date = new Date(utc);
      if (isNaN(date.getTime())) { return; }
      el.textContent = local ? localIso(date) : utc;
      el.title = local ? utc : localIso(date);
    });
    document.querySelectorAll('[data-toggle="zone"]').forEach(function (b) {
      b.textContent = local ? "Times: local (UTC" + offsetText(new Date()) + ")" : "Times: UTC";
      b.setAttribute("aria-pressed", local ? "true" : "false");
    });
  }
  function toggleZone() {
    store.set("standby.zone", zone() === "local" ? "utc" : "local");
    formatTimes();
  }

  // The point-in-time picker: offer this browser's zone beside UTC. The offset sent is the one
  // in force at the chosen date and time (not today's), so a point across a daylight-saving
  // change resolves to the instant the person meant.
  function zoneSelects() {
    document.querySelectorAll("select[data-zone-select]").forEach(function (select) {
      var offset = offsetText(new Date());
      var exists = Array.prototype.some.call(select.options, function (o) { return o.value === offset; });
      if (!exists && offset !== "+00:00") {
        var option = document.createElement("option");
        option.value = offset;
        option.setAttribute("data-browser-zone", "");
        option.textContent = "This browser's zone (UTC" + offset + " now)";
        select.appendChild(option);
      }
      var form = select.form;
      if (!form) { return; }
      form.addEventListener("submit", function () {
        var chosen = select.options[select.selectedIndex];
        var at = form.querySelector('input[name="at"]');
        if (!chosen || !chosen.hasAttribute("data-browser-zone") || !at || !at.value) { return; }
        var wall = new Date(at.value); // no offset: read as this browser's local time
        if (!isNaN(wall.getTime())) { chosen.value = offsetText(wall); }
      });
    });
  }

  // Row selection for bulk actions.
  function selection() {
    var form = document.getElementById("bulk");
    if (!form) { return; }
    var all = document.getElementById("select-all");
    var count = document.getElementById("selected-count");
    function boxes() { return form.querySelectorAll('input[name="plan"]'); }
    function update() {
      var selected = Array.prototype.filter.call(boxes(), function (b) { return b.checked; }).length;
      if (count) { count.textContent = selected ? selected + " selected" : ""; }
      if (all) { all.checked = selected > 0 && selected === boxes().length; }
    }
    if (all) {
      all.addEventListener("change", function () {
        boxes().forEach(function (b) { b.checked = all.checked; });
        update();
      });
    }
    form.addEventListener("change", update);
    form.addEventListener("submit", function (event) {
      var selected = Array.prototype.some.call(boxes(), function (b) { return b.checked; });
      if (!selected) {
        event.preventDefault();
        if (count) { count.textContent = "Select at least one plan first."; }
      }
    });
    update();
  }

  // Keyboard: ? lists the shortcuts.
  var rowIndex = -1;
  var pendingG = false;
  function rows() { return document.querySelectorAll("#plans-table tbody tr"); }
  function moveRow(step) {
    var all = rows();
    if (!all.length) { return; }
    if (rowIndex >= 0 && all[rowIndex]) { all[rowIndex].classList.remove("current"); }
    rowIndex = Math.max(0, Math.min(all.length - 1, rowIndex + step));
    all[rowIndex].classList.add("current");
    var link = all[rowIndex].querySelector("a.plan-link");
    if (link) { link.focus(); }
  }
  function typing(target) {
    return target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
  }
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) { return; }
    var dialog = document.getElementById("shortcuts");
    if (pendingG) {
      pendingG = false;
      var go = { p: "/plans", a: "/actions", s: "/servers" }[event.key];
      if (go) { event.preventDefault(); window.location.href = go; }
      return;
    }
    switch (event.key) {
      case "?": if (dialog && dialog.showModal) { event.preventDefault(); dialog.showModal(); } break;
      case "/": var q = document.getElementById("q"); if (q) { event.preventDefault(); q.focus(); } break;
      case "g": pendingG = true; break;
      case "j": moveRow(1); break;
      case "k": moveRow(-1); break;
      case "x":
        var all = rows();
        if (rowIndex >= 0 && all[rowIndex]) {
          var box = all[rowIndex].querySelector('input[name="plan"]');
          if (box) { box.checked = !box.checked; box.dispatchEvent(new Event("change", { bubbles: true })); }
        }
        break;
      case "t": toggleZone(); break;
      case "d": nextTheme(); break;
      default: break;
    }
  });

  // Live runs: each event is one panel's HTML, swapped in place.
  function ticking() {
    document.querySelectorAll(".elapsed[data-since]").forEach(function (el) {
      var since = new Date(el.getAttribute("data-since"));
      if (isNaN(since.getTime())) { return; }
      var seconds = Math.max(0, Math.round((Date.now() - since.getTime()) / 1000));
      var h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
      el.textContent = h ? h + " h " + pad(m) + " min" : (m ? m + " min " + pad(s) + " s" : s + " s");
    });
  }
  function live() {
    var container = document.getElementById("live");
    if (!container || !window.EventSource) { return; }
    var status = document.getElementById("connection");
    var source = new EventSource(container.getAttribute("data-events"));
    source.addEventListener("open", function () { if (status) { status.textContent = "Live: updates arrive as they happen."; } });
    source.addEventListener("error", function () {
      if (status) { status.textContent = source.readyState === EventSource.CLOSED ? "Live updates stopped: the server refused the stream (your session may have ended, or too many requests). Reload the page." : "Reconnecting to live updates…"; }
    });
    source.addEventListener("panel", function (event) {
      var template = document.createElement("template");
      template.innerHTML = event.data;
      var fresh = template.content.firstElementChild;
      if (!fresh || !fresh.id) { return; }
      var old = document.getElementById(fresh.id);
      if (old) { old.replaceWith(fresh); } else { container.appendChild(fresh); }
      formatTimes(fresh);
      ticking();
    });
    setInterval(ticking, 1000);
  }

  function start() {
    document.querySelectorAll('[data-toggle="theme"]').forEach(function (b) { b.addEventListener("click", nextTheme); });
    document.querySelectorAll('[data-toggle="zone"]').forEach(function (b) { b.addEventListener("click", toggleZone); });
    document.querySelectorAll('[data-toggle="shortcuts"]').forEach(function (b) {
      b.addEventListener("click", function () { var d = document.getElementById("shortcuts"); if (d && d.showModal) { d.showModal(); } });
    });
    applyTheme();
    formatTimes();
    zoneSelects();
    selection();
    ticking();
    live();
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
})();
