// Case page: filter the facts lost and gained by any text in the row. Without JavaScript every
// fact is listed.
(function () {
  "use strict";
  var input = document.getElementById("fact-search");
  var table = document.getElementById("facts-table");
  if (!input || !table) return;
  input.parentNode.parentNode.hidden = false;
  var rows = Array.prototype.slice.call(table.tBodies[0].rows);
  var count = document.getElementById("fact-count");
  function apply() {
    var q = input.value.trim().toLowerCase();
    var n = 0;
    rows.forEach(function (r) {
      var ok = !q || r.textContent.toLowerCase().indexOf(q) !== -1;
      r.hidden = !ok;
      if (ok) n += 1;
    });
    count.textContent = n + " of " + rows.length + " facts";
  }
  input.addEventListener("input", apply);
  apply();
})();
