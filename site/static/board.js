// Overview table: sort by a column (click its head) and filter rows by family, architecture,
// method and bits. Without JavaScript the table is complete and in its default order.
(function () {
  "use strict";
  var table = document.getElementById("board");
  if (!table) return;
  var body = table.tBodies[0];
  var rows = Array.prototype.slice.call(body.rows);
  var heads = table.tHead.rows[0].cells;

  function key(row, i, numeric) {
    var v = row.cells[i].getAttribute("data-sort");
    if (v === null) v = row.cells[i].textContent.trim();
    return numeric ? parseFloat(v) : v.toLowerCase();
  }

  Array.prototype.forEach.call(heads, function (th, i) {
    var numeric = th.getAttribute("data-type") === "num";
    var button = document.createElement("button");
    button.type = "button";
    while (th.firstChild) button.appendChild(th.firstChild);
    th.appendChild(button);
    button.addEventListener("click", function () {
      // Numbers sort best-first (descending) on the first click; text ascending.
      var current = th.getAttribute("aria-sort");
      var asc = current ? current === "descending" : !numeric;
      Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", asc ? "ascending" : "descending");
      var sorted = rows.slice().sort(function (a, b) {
        var x = key(a, i, numeric), y = key(b, i, numeric);
        if (numeric) {
          if (isNaN(x)) return 1;
          if (isNaN(y)) return -1;
        }
        var c = x < y ? -1 : x > y ? 1 : 0;
        return asc ? c : -c;
      });
      sorted.forEach(function (r) { body.appendChild(r); });
    });
  });

  var form = document.getElementById("filters");
  var shown = document.getElementById("shown");
  if (!form) return;
  form.hidden = false;
  var selects = form.querySelectorAll("select[data-filter]");
  function apply() {
    var n = 0;
    rows.forEach(function (r) {
      var ok = true;
      Array.prototype.forEach.call(selects, function (s) {
        if (s.value && r.getAttribute("data-" + s.getAttribute("data-filter")) !== s.value) ok = false;
      });
      r.hidden = !ok;
      if (ok) n += 1;
    });
    shown.textContent = n + " of " + rows.length + " rows";
  }
  Array.prototype.forEach.call(selects, function (s) { s.addEventListener("change", apply); });
  apply();
})();
