// Overview table: sort by a column (click its head), search, and filter rows by model, family,
// architecture, method, bits and verdict. The state lives in the address (#sort=…&dir=…&q=…&method=…),
// so reloading or sharing the link restores it. Without JavaScript the table is complete and
// in its default order.
(function () {
  "use strict";
  var table = document.getElementById("board");
  if (!table) return;
  var body = table.tBodies[0];
  var rows = Array.prototype.slice.call(body.rows);
  var heads = Array.prototype.slice.call(table.tHead.rows[0].cells);
  var form = document.getElementById("filters");
  var shown = document.getElementById("shown");
  var search = document.getElementById("search");
  var selects = form ? Array.prototype.slice.call(form.querySelectorAll("select[data-filter]")) : [];
  var state = {sort: null, dir: null};

  function key(row, i, numeric) {
    var v = row.cells[i].getAttribute("data-sort");
    if (v === null) v = row.cells[i].textContent.trim();
    return numeric ? parseFloat(v) : v.toLowerCase();
  }

  function sortBy(name, dir) {
    var i = heads.findIndex(function (h) { return h.getAttribute("data-key") === name; });
    if (i < 0) return false;
    var th = heads[i];
    var numeric = th.getAttribute("data-type") === "num";
    var asc = dir === "asc";
    heads.forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", asc ? "ascending" : "descending");
    var sorted = rows.slice().sort(function (a, b) {
      var x = key(a, i, numeric), y = key(b, i, numeric);
      if (numeric) {
        if (isNaN(x) && isNaN(y)) return 0;
        if (isNaN(x)) return 1;
        if (isNaN(y)) return -1;
      }
      var c = x < y ? -1 : x > y ? 1 : 0;
      return asc ? c : -c;
    });
    sorted.forEach(function (r) { body.appendChild(r); });
    state.sort = name;
    state.dir = asc ? "asc" : "desc";
    return true;
  }

  function apply() {
    var q = search ? search.value.trim().toLowerCase() : "";
    var n = 0;
    rows.forEach(function (r) {
      var ok = !q || r.textContent.toLowerCase().indexOf(q) !== -1;
      selects.forEach(function (s) {
        if (s.value && r.getAttribute("data-" + s.getAttribute("data-filter")) !== s.value) ok = false;
      });
      r.hidden = !ok;
      if (ok) n += 1;
    });
    if (shown) shown.textContent = n + " of " + rows.length + " rows";
  }

  function save() {
    var parts = [];
    if (state.sort) parts.push("sort=" + encodeURIComponent(state.sort), "dir=" + state.dir);
    if (search && search.value.trim()) parts.push("q=" + encodeURIComponent(search.value.trim()));
    selects.forEach(function (s) {
      if (s.value) parts.push(encodeURIComponent(s.getAttribute("data-filter")) + "=" + encodeURIComponent(s.value));
    });
    var hash = parts.length ? "#" + parts.join("&") : "#overview";
    try { history.replaceState(null, "", hash); } catch (e) { location.hash = hash; }
  }

  function restore() {
    var raw = location.hash.replace(/^#/, "");
    if (raw.indexOf("=") < 0) return;
    var params = {};
    raw.split("&").forEach(function (kv) {
      var at = kv.indexOf("=");
      if (at > 0) params[decodeURIComponent(kv.slice(0, at))] = decodeURIComponent(kv.slice(at + 1));
    });
    if (search && params.q) search.value = params.q;
    selects.forEach(function (s) {
      var v = params[s.getAttribute("data-filter")];
      if (v !== undefined && Array.prototype.some.call(s.options, function (o) { return o.value === v; })) s.value = v;
    });
    if (params.sort) sortBy(params.sort, params.dir === "asc" ? "asc" : "desc");
    var overview = document.getElementById("overview");
    if (overview && overview.scrollIntoView) overview.scrollIntoView();
  }

  heads.forEach(function (th) {
    var button = document.createElement("button");
    button.type = "button";
    while (th.firstChild) button.appendChild(th.firstChild);
    th.appendChild(button);
    button.addEventListener("click", function () {
      // First click: the column's natural order (best first for retention, smallest first for
      // size, latency and the preset's sweep order); a second click reverses it.
      var name = th.getAttribute("data-key");
      var dir = state.sort === name ? (state.dir === "asc" ? "desc" : "asc")
                                    : (th.getAttribute("data-first") || (th.getAttribute("data-type") === "num" ? "desc" : "asc"));
      sortBy(name, dir);
      save();
    });
  });

  if (form) {
    form.hidden = false;
    selects.forEach(function (s) { s.addEventListener("change", function () { apply(); save(); }); });
    if (search) search.addEventListener("input", function () { apply(); save(); });
  }
  restore();
  apply();
})();
