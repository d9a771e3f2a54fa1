"use strict";
// The report's filters: verdict, kind, tag, file and a search box. Findings stay in the
// page; a filter only hides them. Each filter option shows how many findings it would
// show given the other filters. Without this script every finding is shown.
(function () {
  const form = document.getElementById("filters");
  if (!form) return;
  const shown = document.getElementById("shown");
  const none = document.getElementById("none");
  const findings = Array.from(document.querySelectorAll("section.finding")).map(function (el) {
    return {
      el: el,
      row: document.querySelector('tr[data-finding="' + el.id + '"]'),
      verdict: el.dataset.verdict,
      kind: el.dataset.kind,
      file: el.dataset.file,
      tags: JSON.parse(el.dataset.tags),
      text: el.dataset.search,
    };
  });
  const counters = Array.from(form.querySelectorAll("[data-facet]"));

  function state() {
    function checked(name) {
      return new Set(Array.from(form.querySelectorAll('input[name="' + name + '"]:checked'), function (i) { return i.value; }));
    }
    return {
      verdict: checked("verdict"),
      kind: checked("kind"),
      tag: form.elements.tag.value,
      file: form.elements.file.value,
      words: form.elements.q.value.toLowerCase().split(/\s+/).filter(Boolean),
    };
  }

  // Does finding d pass every filter of state s, leaving out the filter named `except`?
  function passes(d, s, except) {
    return (except === "verdict" || s.verdict.has(d.verdict))
      && (except === "kind" || s.kind.has(d.kind))
      && (except === "tag" || !s.tag || d.tags.indexOf(s.tag) >= 0)
      && (except === "file" || !s.file || d.file === s.file)
      && s.words.every(function (w) { return d.text.indexOf(w) >= 0; });
  }

  function has(d, facet, value) {
    return facet === "tag" ? d.tags.indexOf(value) >= 0 : d[facet] === value;
  }

  function update() {
    const s = state();
    let count = 0;
    findings.forEach(function (d) {
      const visible = passes(d, s, null);
      d.el.hidden = !visible;
      if (d.row) d.row.hidden = !visible;
      if (visible) count += 1;
    });
    counters.forEach(function (c) {
      const facet = c.dataset.facet;
      const n = findings.filter(function (d) { return has(d, facet, c.dataset.value) && passes(d, s, facet); }).length;
      c.textContent = c.dataset.label + " (" + n + ")";
    });
    const total = findings.length;
    shown.textContent = count === total
      ? "Showing all " + total + " claim" + (total === 1 ? "" : "s") + "."
      : "Showing " + count + " of " + total + " claim" + (total === 1 ? "" : "s") + ".";
    none.hidden = count > 0;
  }

  function openAll(open) {
    findings.forEach(function (d) {
      if (!d.el.hidden) d.el.querySelector("details").open = open;
    });
  }

  form.addEventListener("input", update);
  form.addEventListener("change", update);
  document.getElementById("clear").addEventListener("click", function () { form.reset(); update(); });
  form.addEventListener("submit", function (e) { e.preventDefault(); });
  document.getElementById("expand").addEventListener("click", function () { openAll(true); });
  document.getElementById("collapse").addEventListener("click", function () { openAll(false); });
  // A link to a finding (the overview's names, a #finding-N address) opens it.
  function reveal() {
    const target = location.hash ? document.getElementById(location.hash.slice(1)) : null;
    if (target && target.classList.contains("finding")) target.querySelector("details").open = true;
  }
  window.addEventListener("hashchange", reveal);
  form.hidden = false;
  shown.hidden = false;
  reveal();
  update();
})();
