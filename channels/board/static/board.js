// The operations board: ticking timers, live updates (server-sent events) and the map.
// Every value from the server is set with textContent: nothing is parsed as HTML.
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("board-config").textContent);
  var words = config.words, templates = config.templates;
  var STATUS_COLOURS = {
    new: "#b3261e", dispatched: "#b3261e", escalated: "#7a0010", acknowledged: "#1f5fbf",
    en_route: "#8a5a00", on_scene: "#1b7a3a", resolved: "#555555", referred: "#555555",
    unfounded: "#555555", duplicate: "#555555"
  };
  var WAITING = { new: 1, dispatched: 1, escalated: 1 };

  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, function (_, k) {
      return values[k] === undefined ? "" : String(values[k]);
    });
  }
  function minutesSince(iso, now) { return Math.max(0, Math.floor((now - Date.parse(iso)) / 60000)); }
  function times(row, now) {
    var out = [fill(templates.since, { minutes: minutesSince(row.created_at, now) })];
    var late = false;
    if (WAITING[row.status] && row.escalate_at) {
      var left = Math.floor((Date.parse(row.escalate_at) - now) / 1000);
      if (left > 0) {
        var mm = Math.floor(left / 60), ss = left % 60;
        out.push(fill(templates.escalates_in, { countdown: mm + ":" + (ss < 10 ? "0" : "") + ss }));
      } else { out.push(words.escalation_due); late = true; }
    } else if (WAITING[row.status]) {
      out.push(words.undelivered);  // the escalation clock starts at delivery
    }
    if (row.status === "en_route" && row.en_route_at && row.eta_minutes) {
      var elapsed = minutesSince(row.en_route_at, now);
      late = elapsed > row.eta_minutes;
      out.push(fill(late ? templates.eta_late : templates.eta,
                    { minutes: row.eta_minutes, elapsed: elapsed }));
    }
    if (row.status === "on_scene" && row.on_scene_at) {
      out.push(fill(templates.on_scene_for, { minutes: minutesSince(row.on_scene_at, now) }));
    }
    return { text: out.join(" · "), late: late };
  }
  function tick() {
    var now = Date.now(), waiting = 0;
    document.querySelectorAll("[data-row]").forEach(function (el) {
      var row = JSON.parse(el.getAttribute("data-row"));
      var t = times(row, now), cell = el.querySelector("[data-times]");
      if (cell) { cell.textContent = t.text; }
      el.classList.toggle("late", t.late);
      if (WAITING[row.status]) { waiting += 1; }
    });
    var alarm = document.getElementById("alarm");
    if (alarm && config.mode === "board") {
      alarm.hidden = waiting === 0;
      alarm.textContent = fill(templates.alarm, { count: waiting });
      ring(waiting, now);
    }
  }

  // -- alarm sound: off unless this browser's viewer turned it on (remembered here) ------------
  var SOUND_KEY = "ess-board-sound", RING_EVERY = 60000;
  var audio = null, lastWaiting = null, lastRing = 0;
  function soundOn() {
    try { return window.localStorage.getItem(SOUND_KEY) === "on"; } catch (e) { return false; }
  }
  function showSound(button) {
    var on = soundOn();
    button.textContent = on ? words.sound_on : words.sound_off;
    button.setAttribute("aria-pressed", on ? "true" : "false");
    button.classList.toggle("on", on);
  }
  function setupSound() {
    var button = document.getElementById("sound");
    if (!button) { return; }
    button.hidden = false;
    showSound(button);
    button.addEventListener("click", function () {
      try { window.localStorage.setItem(SOUND_KEY, soundOn() ? "off" : "on"); } catch (e) { return; }
      showSound(button);
      if (soundOn()) { beep(); }  // a click is the gesture a browser needs to allow sound
    });
  }
  function beep() {
    var Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) { return; }
    try {
      audio = audio || new Context();
      var osc = audio.createOscillator(), gain = audio.createGain(), t = audio.currentTime;
      osc.type = "square"; osc.frequency.value = 880;
      gain.gain.setValueAtTime(0.15, t); gain.gain.setValueAtTime(0, t + 0.25);
      gain.gain.setValueAtTime(0.15, t + 0.4); gain.gain.setValueAtTime(0, t + 0.65);
      osc.connect(gain); gain.connect(audio.destination);
      osc.start(t); osc.stop(t + 0.7);
    } catch (e) { /* no sound device: the visual alarm stays */ }
  }
  function ring(waiting, now) {
    var rose = lastWaiting !== null && waiting > lastWaiting;
    lastWaiting = waiting;
    if (!soundOn() || waiting === 0) { return; }
    if (rose || now - lastRing > RING_EVERY) {
      lastRing = now;
      document.body.setAttribute("data-rang", String(now));  // what a test can see
      beep();
    }
  }

  // -- map ---------------------------------------------------------------------------------
  var map = null, layer = null, markers = {};
  function setupMap() {
    var box = document.getElementById("map");
    if (!box || !window.L) { return; }
    map = L.map(box, { zoomControl: true, attributionControl: true, minZoom: 3, maxZoom: 18 }).setView([15.5, 101.0], 5);
    if (config.tileUrl) {
      L.tileLayer(config.tileUrl, { attribution: config.attribution || "", maxZoom: 19 }).addTo(map);
    } else {
      box.classList.add("no-tiles");
      var hint = document.getElementById("no-tiles");
      if (hint) { hint.hidden = false; }
    }
    var stations = L.layerGroup().addTo(map);
    (config.stations || []).forEach(function (s) {
      L.circleMarker([s.lat, s.lon], {
        radius: 5, color: "#12263f", weight: 2, fillColor: "#ffffff", fillOpacity: 1,
        className: "station"
      }).bindTooltip(s.name).addTo(stations);
    });
    layer = L.markerClusterGroup ? L.markerClusterGroup({ maxClusterRadius: 40 }) : L.layerGroup();
    layer.addTo(map);
    document.querySelectorAll("[data-row]").forEach(function (el) {
      placeMarker(JSON.parse(el.getAttribute("data-row")));
    });
    fit();
  }
  function placeMarker(row) {
    if (!layer) { return; }
    if (markers[row.reference]) { layer.removeLayer(markers[row.reference]); delete markers[row.reference]; }
    if (!row.open || row.lat === null || row.lon === null) { return; }
    var colour = STATUS_COLOURS[row.status] || "#555555";
    var marker = L.circleMarker([row.lat, row.lon], {
      radius: 9, color: "#ffffff", weight: 2, fillColor: colour, fillOpacity: 0.95
    });
    marker.bindTooltip(row.reference + " · " + row.status_label);
    marker.on("click", function () { window.location.href = "/board/i/" + encodeURIComponent(row.reference); });
    markers[row.reference] = marker;
    layer.addLayer(marker);
  }
  function fit() {
    var points = Object.keys(markers).map(function (k) { return markers[k].getLatLng(); });
    if (!points.length) {  // no incident: show the viewer's stations
      points = (config.stations || []).map(function (s) { return L.latLng(s.lat, s.lon); });
    }
    if (map && points.length) { map.fitBounds(L.latLngBounds(points).pad(0.3), { maxZoom: 14 }); }
  }

  // -- rows --------------------------------------------------------------------------------
  function matches(row) {
    var f = config.filters || {};
    return (!f.status || row.status === f.status) && (!f.type || row.type === f.type) &&
      (!f.area || row.areas.indexOf(f.area) >= 0) && (!f.agency || row.agencies.indexOf(f.agency) >= 0);
  }
  function cell(tr, text) { var td = document.createElement("td"); td.textContent = text; tr.appendChild(td); return td; }
  function flag(parent, cls, text) {
    var span = document.createElement("span"); span.className = "flag " + cls; span.textContent = text;
    parent.appendChild(span);
  }
  function buildRow(row) {
    var tr = document.createElement("tr");
    tr.id = "row-" + row.reference;
    tr.className = "status-" + row.status;
    tr.setAttribute("data-row", JSON.stringify(row));
    var first = document.createElement("td"), a = document.createElement("a");
    a.href = "/board/i/" + encodeURIComponent(row.reference); a.textContent = row.reference;
    first.appendChild(a);
    if (row.silent || row.do_not_call) { flag(first, "dnc", words.do_not_call); }
    if (row.drill) { flag(first, "drill", words.drill); }
    tr.appendChild(first);
    cell(tr, row.type_label);
    var status = document.createElement("td"), badge = document.createElement("span");
    badge.className = "badge status-" + row.status; badge.textContent = row.status_label;
    status.appendChild(badge); tr.appendChild(status);
    cell(tr, "").setAttribute("data-times", "");
    cell(tr, row.holder || words.nobody);
    cell(tr, row.where);
    return tr;
  }
  function upsert(row) {
    var tbody = document.getElementById("rows");
    var old = document.getElementById("row-" + row.reference);
    if (!row.open || !matches(row)) {
      if (old) { old.remove(); }
    } else {
      var tr = buildRow(row);
      if (old) { old.replaceWith(tr); } else { tbody.insertBefore(tr, tbody.firstChild); }
      tr.classList.add("fresh");
    }
    placeMarker(row);
    var empty = document.getElementById("empty");
    if (empty) { empty.hidden = tbody.children.length > 0; }
  }
  function updateIncident(row) {
    var box = document.getElementById("incident");
    if (!box || row.reference !== config.reference) { return; }
    box.setAttribute("data-row", JSON.stringify(row));
    var badge = document.getElementById("status");
    badge.textContent = row.status_label;
    badge.className = "badge status-" + row.status;
  }

  // -- live --------------------------------------------------------------------------------
  function connect() {
    var live = document.getElementById("live");
    var source = new EventSource("/board/events?after=" + encodeURIComponent(config.after));
    source.onopen = function () { if (live) { live.textContent = words.live; live.classList.add("on"); } };
    source.onerror = function () { if (live) { live.textContent = words.offline; live.classList.remove("on"); } };
    source.addEventListener("incident", function (event) {
      var data = JSON.parse(event.data);
      config.after = data.seq;
      if (!data.row) { return; }
      if (config.mode === "board") { upsert(data.row); } else { updateIncident(data.row); }
      tick();
    });
  }

  setupMap();
  if (config.mode === "board") { setupSound(); }
  tick();
  setInterval(tick, 1000);
  connect();
}());
