// Live operations dashboard: renders the /ops namespace's `metrics` snapshots.
// Loaded as a file (the page's CSP forbids inline script); all values go in as text.
(function () {
  "use strict";

  function setText(id, value) {
    document.getElementById(id).textContent = String(value);
  }

  function row(cells) {
    var tr = document.createElement("tr");
    cells.forEach(function (cell, i) {
      var el = document.createElement(i === 0 ? "th" : "td");
      el.textContent = String(cell);
      tr.appendChild(el);
    });
    return tr;
  }

  function render(snapshot) {
    var byNamespace = snapshot.connections || {};
    var total = Object.keys(byNamespace).reduce(function (sum, ns) { return sum + byNamespace[ns]; }, 0);
    setText("total", total);
    setText("rooms", snapshot.rooms);
    setText("events", snapshot.events_per_s);
    setText("emit-p99", snapshot.emit_p99_ms);
    setText("process-count", (snapshot.processes || []).length);
    setText("updated", new Date(snapshot.at_ms).toLocaleTimeString());
    var nsBody = document.getElementById("namespaces");
    nsBody.replaceChildren.apply(nsBody, Object.keys(byNamespace).sort().map(function (ns) {
      return row([ns, byNamespace[ns]]);
    }));
    var procBody = document.getElementById("processes");
    procBody.replaceChildren.apply(procBody, (snapshot.processes || []).map(function (p) {
      var conns = p.connections || {};
      var n = Object.keys(conns).reduce(function (sum, ns) { return sum + conns[ns]; }, 0);
      return row([p.process, n + " connections", p.events_per_s + " ev/s"]);
    }));
  }

  var status = document.getElementById("status");
  var socket = io("/ops", { transports: ["websocket"], withCredentials: true });
  socket.on("connect", function () {
    status.textContent = "Live";
    status.dataset.state = "live";
  });
  socket.on("connect_error", function (err) {
    status.textContent = "Not connected: " + ((err && err.message) || "error");
    status.dataset.state = "error";
  });
  socket.on("disconnect", function () {
    status.textContent = "Disconnected; reconnecting…";
    status.dataset.state = "disconnected";
  });
  socket.on("metrics", render);
})();
