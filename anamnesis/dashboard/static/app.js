// Anamnesis dashboard: small enhancements only; every page works without this file.
// Loaded from /static under a CSP that forbids inline script, so all behaviour is wired here.
"use strict";

(function () {
  // Times: show each <time datetime> in the reader's own zone, with "x ago" for recent ones.
  function relative(date) {
    const seconds = Math.round((Date.now() - date.getTime()) / 1000);
    if (seconds < 0) return null;
    if (seconds < 60) return "just now";
    const minutes = Math.round(seconds / 60);
    if (minutes < 60) return minutes + " min ago";
    const hours = Math.round(minutes / 60);
    if (hours < 24) return hours + " h ago";
    const days = Math.round(hours / 24);
    if (days < 14) return days + " d ago";
    return null;
  }

  function localiseTimes() {
    for (const el of document.querySelectorAll("time[datetime]")) {
      const value = el.getAttribute("datetime");
      if (!value) continue;
      const date = new Date(value);
      if (isNaN(date.getTime())) continue;
      const local = date.toLocaleString(undefined, {
        year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
      });
      const ago = relative(date);
      el.textContent = ago ? ago : local;
      el.title = local;
    }
  }

  // Filters: a changed <select data-autosubmit> submits its form.
  function autosubmit() {
    for (const el of document.querySelectorAll("select[data-autosubmit]")) {
      el.addEventListener("change", function () {
        if (el.form) el.form.submit();
      });
    }
  }

  // Destructive buttons ask first.
  function confirmations() {
    for (const el of document.querySelectorAll("[data-confirm]")) {
      el.addEventListener("click", function (event) {
        if (!window.confirm(el.getAttribute("data-confirm"))) event.preventDefault();
      });
    }
  }

  // History: "from" must be older than "to"; keep the two radio columns consistent.
  function pickTwo() {
    const form = document.querySelector("form[data-pick-two]");
    if (!form) return;
    const rows = Array.from(form.querySelectorAll("tbody tr"));
    function sync() {
      let toIndex = rows.findIndex(function (row) { return row.querySelector('input[name="b"]').checked; });
      rows.forEach(function (row, i) {
        row.querySelector('input[name="a"]').disabled = i <= toIndex;
      });
      const from = form.querySelector('input[name="a"]:checked');
      if (from && from.disabled) from.checked = false;
    }
    form.addEventListener("change", sync);
    sync();
  }

  // "/" focuses the search box, as on most sites.
  function hotkey() {
    const box = document.querySelector("[data-hotkey='/']");
    if (!box) return;
    document.addEventListener("keydown", function (event) {
      const target = event.target;
      const typing = target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" || target.isContentEditable);
      if (event.key === "/" && !typing) {
        event.preventDefault();
        box.focus();
      }
    });
  }

  // Leaving an edit with unsaved changes asks first.
  function guardEdits() {
    const form = document.querySelector("form.edit-form");
    if (!form) return;
    let dirty = false;
    form.addEventListener("input", function () { dirty = true; });
    form.addEventListener("submit", function () { dirty = false; });
    window.addEventListener("beforeunload", function (event) {
      if (dirty) event.preventDefault();
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    localiseTimes();
    autosubmit();
    confirmations();
    pickTwo();
    hotkey();
    guardEdits();
  });
})();
