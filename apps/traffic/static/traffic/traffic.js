/* The service graph, drawn with the vendored cytoscape (vendor/cytoscape.min.js) from the JSON the page embeds
   (json_script). Nodes by kind (application, database, peer, unknown); in diff mode new edges green, removed
   dashed, slower red. Redrawn when a live update swaps the fragment in; clicking an application opens its tab. */
(function () {
  "use strict";

  var COLOURS = { app: "#1e88e5", db: "#8e24aa", peer: "#fb8c00", unknown: "#9e9e9e" };
  var SHAPES = { app: "round-rectangle", db: "barrel", peer: "diamond", unknown: "ellipse" };

  function label(edge) {
    var p95 = edge.client_p95 !== null ? edge.client_p95 : edge.server_p95;
    return edge.calls + (p95 !== null ? " · " + p95 + " ms" : "");
  }

  function elements(graph, focus) {
    var out = [];
    graph.nodes.forEach(function (node) {
      out.push({ data: { id: node.id, label: node.label, kind: node.kind, application: node.application, focus: node.id === focus ? 1 : 0 } });
    });
    graph.edges.forEach(function (edge, i) {
      out.push({ data: { id: "e" + i, source: edge.source, target: edge.target, label: label(edge), change: edge.change || "", errors: edge.errors } });
    });
    return out;
  }

  function draw(holder) {
    if (holder.dataset.drawn === "1" || typeof window.cytoscape !== "function") return;
    var source = document.getElementById(holder.dataset.trafficGraph);
    if (!source) return;
    var graph = JSON.parse(source.textContent);
    holder.dataset.drawn = "1";
    if (!graph.nodes.length) { holder.hidden = true; return; }
    var cy = window.cytoscape({
      container: holder,
      elements: elements(graph, holder.dataset.focus || ""),
      wheelSensitivity: 0.2,
      layout: { name: "breadthfirst", directed: true, spacingFactor: 1.2, padding: 20 },
      style: [
        { selector: "node", style: { label: "data(label)", "font-size": 11, "text-valign": "bottom", "text-margin-y": 4, width: 28, height: 28 } },
        { selector: "edge", style: { width: 1.5, "curve-style": "bezier", "target-arrow-shape": "triangle", label: "data(label)", "font-size": 9, "text-rotation": "autorotate", "line-color": "#90a4ae", "target-arrow-color": "#90a4ae" } },
        { selector: "node[focus = 1]", style: { "border-width": 3, "border-color": "#263238" } },
        { selector: "edge[errors > 0]", style: { "line-style": "solid", "line-color": "#ef6c00", "target-arrow-color": "#ef6c00" } },
        { selector: 'edge[change = "new"]', style: { "line-color": "#2e7d32", "target-arrow-color": "#2e7d32", width: 3 } },
        { selector: 'edge[change = "removed"]', style: { "line-style": "dashed", "line-color": "#9e9e9e", "target-arrow-color": "#9e9e9e" } },
        { selector: 'edge[change = "slower"]', style: { "line-color": "#c62828", "target-arrow-color": "#c62828", width: 3 } }
      ].concat(Object.keys(COLOURS).map(function (kind) {
        return { selector: 'node[kind = "' + kind + '"]', style: { "background-color": COLOURS[kind], shape: SHAPES[kind] } };
      }))
    });
    cy.on("tap", "node", function (event) {
      var application = event.target.data("application");
      if (application) window.location.href = "/traffic/applications/" + application + "/" + window.location.search;
    });
  }

  function drawAll() {
    document.querySelectorAll("[data-traffic-graph]").forEach(draw);
  }

  document.addEventListener("htmx:afterSettle", drawAll);
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", drawAll);
  } else {
    drawAll();
  }
})();
