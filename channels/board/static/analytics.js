// The analytics map on the board's Leaflet: the hexagons the server sent, each of which
// holds at least the anonymity threshold of reports (smaller ones are never sent). Every
// value from the server is set with textContent: nothing is parsed as HTML.
(function () {
  "use strict";
  var node = document.getElementById("analytics-config");
  var box = document.getElementById("analytics-map");
  if (!node || !box || typeof L === "undefined") { return; }
  var config = JSON.parse(node.textContent);
  box.hidden = false;
  var fallback = box.parentNode.querySelector("svg.map");
  if (fallback) { fallback.classList.add("replaced"); }
  var map = L.map(box, { minZoom: 4, maxZoom: 14, attributionControl: true })
    .setView([13.0, 101.0], 5);
  if (config.tileUrl) {
    L.tileLayer(config.tileUrl, { attribution: config.attribution || "", maxZoom: 19 })
      .addTo(map);
  } else {
    box.classList.add("no-tiles");
  }
  var top = 1;
  config.cells.forEach(function (c) { top = Math.max(top, c.count); });
  var bounds = [];
  config.cells.forEach(function (c) {
    var polygon = L.polygon(c.boundary, {
      color: c.hot ? "#c0392b" : "#ffffff", weight: c.hot ? 3 : 1, className: "cell",
      fillColor: "#1f5fa8", fillOpacity: 0.3 + 0.6 * c.count / top
    });
    // A fine hexagon is a speck at country zoom: a dot at its centre keeps it seen.
    var dot = L.circleMarker(polygon.getBounds().getCenter(), {
      radius: 5 + 9 * Math.sqrt(c.count / top), className: "cell-dot", weight: 2,
      color: c.hot ? "#c0392b" : "#1f5fa8", fillColor: "#1f5fa8", fillOpacity: 0.5
    });
    var dotTip = document.createElement("span");
    dotTip.textContent = c.label;
    dot.bindTooltip(dotTip);
    dot.addTo(map);
    var tip = document.createElement("span");
    tip.textContent = c.label;
    polygon.bindTooltip(tip);
    polygon.on("add", function () {
      var el = polygon.getElement();
      if (el) { el.setAttribute("data-cell", c.cell); el.setAttribute("data-count", c.count); }
    });
    polygon.addTo(map);
    c.boundary.forEach(function (p) { bounds.push(p); });
  });
  if (bounds.length) { map.fitBounds(L.latLngBounds(bounds).pad(0.2), { maxZoom: 11 }); }
})();
