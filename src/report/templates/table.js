// Sorting and filtering of the run table, kept in the URL hash (#sort=-test_loss&model=vae) so a
// view can be bookmarked or shared. Vanilla, no network.
(function () {
  "use strict";
  var table = document.getElementById("runs");
  if (!table) { document.body.dataset.ready = "1"; return; }
  var body = table.tBodies[0];
  var heads = Array.prototype.slice.call(table.tHead.rows[0].cells);
  var selects = Array.prototype.slice.call(document.querySelectorAll("select[data-filter]"));
  var search = document.getElementById("search");

  function state() {
    var s = { sort: null, filters: {}, q: "" };
    location.hash.replace(/^#/, "").split("&").forEach(function (part) {
      if (!part) return;
      var kv = part.split("="), k = decodeURIComponent(kv[0]), v = decodeURIComponent(kv[1] || "");
      if (k === "sort") s.sort = v; else if (k === "q") s.q = v; else s.filters[k] = v;
    });
    return s;
  }
  function write(s) {
    var parts = [];
    if (s.sort) parts.push("sort=" + encodeURIComponent(s.sort));
    Object.keys(s.filters).forEach(function (k) {
      if (s.filters[k] !== "") parts.push(encodeURIComponent(k) + "=" + encodeURIComponent(s.filters[k]));
    });
    if (s.q) parts.push("q=" + encodeURIComponent(s.q));
    history.replaceState(null, "", parts.length ? "#" + parts.join("&") : location.pathname);
    apply(s);
  }
  function cellValue(row, key) {
    var cell = row.querySelector('td[data-key="' + key + '"]');
    return cell ? cell.getAttribute("data-value") : "";
  }
  function apply(s) {
    var rows = Array.prototype.slice.call(body.rows);
    if (s.sort) {
      var desc = s.sort.charAt(0) === "-", key = desc ? s.sort.slice(1) : s.sort;
      var head = heads.filter(function (h) { return h.dataset.key === key; })[0];
      var numeric = head && head.dataset.type === "num";
      rows.sort(function (a, b) {
        var x = cellValue(a, key), y = cellValue(b, key), c;
        if (numeric) {
          // Empty and "-" cells (no value) sort last either way.
          var nx = parseFloat(x), ny = parseFloat(y), mx = isNaN(nx), my = isNaN(ny);
          if (mx || my) return mx === my ? 0 : mx ? 1 : -1;
          c = nx < ny ? -1 : nx > ny ? 1 : 0;
        } else {
          c = x < y ? -1 : x > y ? 1 : 0;
        }
        return desc ? -c : c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
      heads.forEach(function (h) {
        if (h.dataset.key === key) h.setAttribute("aria-sort", desc ? "descending" : "ascending");
        else h.removeAttribute("aria-sort");
      });
    }
    var shown = 0;
    rows.forEach(function (r) {
      var ok = Object.keys(s.filters).every(function (k) {
        return s.filters[k] === "" || cellValue(r, k) === s.filters[k];
      });
      if (ok && s.q) ok = r.textContent.toLowerCase().indexOf(s.q.toLowerCase()) >= 0;
      r.hidden = !ok;
      if (ok) shown += 1;
    });
    selects.forEach(function (sel) { sel.value = s.filters[sel.dataset.filter] || ""; });
    if (search) search.value = s.q;
    var count = document.getElementById("shown");
    if (count) count.textContent = shown + " of " + rows.length + " runs shown";
  }
  heads.forEach(function (h) {
    h.addEventListener("click", function () {
      var s = state(), key = h.dataset.key;
      s.sort = s.sort === key ? "-" + key : key;
      write(s);
    });
  });
  selects.forEach(function (sel) {
    sel.addEventListener("change", function () {
      var s = state(); s.filters[sel.dataset.filter] = sel.value; write(s);
    });
  });
  if (search) search.addEventListener("input", function () { var s = state(); s.q = search.value; write(s); });
  window.addEventListener("hashchange", function () { apply(state()); });
  apply(state());
  // The boxes of the charts, for the tests that look at a screenshot.
  Array.prototype.slice.call(document.querySelectorAll("figure.chart")).forEach(function (f) {
    var r = f.getBoundingClientRect();
    f.dataset.box = [r.left, r.top + window.scrollY, r.width, r.height].map(Math.round).join(",");
  });
  document.body.dataset.ready = "1";
})();
