(function () {
  "use strict";
  function cellOf(row, idx) { return row.cells[idx]; }
  function compare(a, b, type, dir) {
    var va = a.v, vb = b.v;
    if (va === "" && vb === "") { return a.i - b.i; }
    if (va === "") { return 1; }
    if (vb === "") { return -1; }
    var c;
    if (type === "num") { c = parseFloat(va) - parseFloat(vb); } else { c = va < vb ? -1 : (va > vb ? 1 : 0); }
    if (c === 0) { return a.i - b.i; }
    return dir === "desc" ? -c : c;
  }
  function sortTable(table, key, dir) {
    var heads = table.tHead.rows[0].cells, idx = -1, type = "num", i;
    for (i = 0; i < heads.length; i++) {
      if (heads[i].getAttribute("data-key") === key) { idx = i; type = heads[i].getAttribute("data-type"); }
      heads[i].removeAttribute("aria-sort");
    }
    if (idx < 0) { return false; }
    heads[idx].setAttribute("aria-sort", dir === "desc" ? "descending" : "ascending");
    var body = table.tBodies[0], rows = [];
    for (i = 0; i < body.rows.length; i++) {
      var r = body.rows[i];
      rows.push({ row: r, v: cellOf(r, idx).getAttribute("data-v") || "", i: parseInt(r.getAttribute("data-i"), 10) });
    }
    rows.sort(function (a, b) { return compare(a, b, type, dir); });
    for (i = 0; i < rows.length; i++) { body.appendChild(rows[i].row); }
    table.setAttribute("data-sorted", key + ":" + dir);
    return true;
  }
  function sortAll(key, dir) {
    var tables = document.querySelectorAll("table.board");
    for (var i = 0; i < tables.length; i++) { sortTable(tables[i], key, dir); }
  }
  function fromHash() {
    var m = /(?:^#|&)sort=([a-z0-9_]+):(asc|desc)/.exec(window.location.hash);
    if (m) { sortAll(m[1], m[2]); }
  }
  var heads = document.querySelectorAll("table.board th.sortable");
  for (var i = 0; i < heads.length; i++) {
    heads[i].addEventListener("click", function (ev) {
      var th = ev.currentTarget, key = th.getAttribute("data-key");
      var dir = th.getAttribute("aria-sort") === "ascending" ? "desc" : "asc";
      if (window.history && window.history.replaceState) {
        try { window.history.replaceState(null, "", "#sort=" + key + ":" + dir); } catch (e) { /* file: URLs */ }
      }
      sortAll(key, dir);
    });
  }
  window.addEventListener("hashchange", fromHash);
  fromHash();
  document.documentElement.setAttribute("data-leaderboard-ready", "1");
}());
