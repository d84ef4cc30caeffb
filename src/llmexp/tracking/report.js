// compare.html: sort the runs table by a clicked column, filter its rows by text; the curves follow the filter.
(function () {
  "use strict";
  const table = document.getElementById("runs");
  const body = table.tBodies[0];
  const filter = document.getElementById("filter");
  const curves = document.getElementById("curves");

  function sortValue(row, index) {
    const text = row.cells[index].dataset.v;
    if (text === undefined || text === "") return null;
    const number = Number(text);
    return Number.isNaN(number) ? text.toLowerCase() : number;
  }

  function sortBy(header) {
    const index = header.cellIndex;
    const ascending = header.getAttribute("aria-sort") !== "ascending";
    for (const other of table.tHead.rows[0].cells) other.removeAttribute("aria-sort");
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    const rows = Array.from(body.rows);
    rows.sort(function (a, b) {
      const x = sortValue(a, index);
      const y = sortValue(b, index);
      if (x === null || y === null) return (x === null) - (y === null); // empty cells last
      const order = x < y ? -1 : x > y ? 1 : 0;
      return ascending ? order : -order;
    });
    for (const row of rows) body.appendChild(row);
  }

  function applyFilter() {
    const query = filter.value.trim().toLowerCase();
    const shown = new Set();
    for (const row of body.rows) {
      const visible = !query || row.textContent.toLowerCase().includes(query);
      row.hidden = !visible;
      if (visible) shown.add(row.dataset.run);
    }
    if (curves && curves.data && window.Plotly) {
      const visible = curves.data.map(function (trace) { return shown.has(trace.legendgroup); });
      window.Plotly.restyle(curves, { visible: visible });
    }
  }

  for (const header of table.tHead.rows[0].cells) {
    header.addEventListener("click", function () { sortBy(header); });
  }
  filter.addEventListener("input", applyFilter);
})();
