// ESS web chat client: one websocket, a signed conversation token, replay after reconnect.
// Nothing here plays a sound or asks for notifications; in silent mode the token is kept
// only in memory and nothing the reporter taps is echoed on screen.
(() => {
  "use strict";
  const config = JSON.parse(document.getElementById("ess-config").textContent);
  const ui = Object.assign({}, config.ui);
  let lang = config.lang;
  const $ = (id) => document.getElementById(id);
  const KEY = "ess-chat";
  let silent = !!config.silent;
  let memory = { token: null, seq: 0 };
  let exiting = false;
  let ws = null;
  let retry = 0;
  let busyUntil = 0;
  const pending = new Map();

  const store = {
    load() {
      if (silent) return memory;
      try { return JSON.parse(sessionStorage.getItem(KEY)) || memory; } catch (e) { return memory; }
    },
    save(state) {
      memory = state;
      if (!silent) { try { sessionStorage.setItem(KEY, JSON.stringify(state)); } catch (e) { /* private mode */ } }
    },
    clear() { memory = { token: null, seq: 0 }; try { sessionStorage.removeItem(KEY); } catch (e) { /* ignore */ } },
  };
  let state = store.load();

  function newId() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function connect() {
    if (exiting) return;
    $("status").textContent = ui.connecting;
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    ws = new WebSocket(proto + "//" + location.host + "/chat/ws");
    ws.onopen = () => {
      ws.send(JSON.stringify({ type: "hello", token: state.token, after: state.seq, silent, lang }));
    };
    ws.onmessage = (event) => {
      let frame;
      try { frame = JSON.parse(event.data); } catch (e) { return; }
      receive(frame);
    };
    ws.onclose = () => {
      if (exiting) return;
      if (busyUntil > Date.now()) { setTimeout(connect, busyUntil - Date.now()); return; }
      $("status").textContent = ui.offline;
      setTimeout(connect, Math.min(8000, 400 * 2 ** retry++));
    };
  }

  function receive(frame) {
    if (frame.type === "welcome") {
      // A renewed token is the same conversation: keep the place in the replay.
      const fresh = frame.token !== state.token && !frame.renewed;
      state = { token: frame.token, seq: fresh ? 0 : state.seq };
      store.save(state);
      retry = 0;
      $("status").textContent = "";
      if (fresh) send({ type: "start", flow: silent ? "silent" : "report" }, null);
      for (const old of pending.values()) ws.send(JSON.stringify(old));
    } else if (frame.type === "message") {
      if (frame.seq <= state.seq) return;
      state = { token: state.token, seq: frame.seq };
      store.save(state);
      show(frame);
    } else if (frame.type === "ack") {
      pending.delete(frame.id);
      if (!pending.size && $("status").textContent === ui.busy) $("status").textContent = "";
    } else if (frame.type === "error" && (frame.code === "busy" || frame.code === "slow_down"
        || frame.code === "unavailable")) {
      // Refused, not lost: the frame stays pending and goes again after the pause.
      const wait = 1000 * Math.min(60, Math.max(1, Number(frame.retry_after) || 2));
      $("status").textContent = ui.busy;
      if (frame.code === "busy") { busyUntil = Date.now() + wait; return; }
      setTimeout(() => {
        const again = pending.get(frame.id);
        if (again && ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(again));
      }, wait);
    }
  }

  function bubble(text, who) {
    const li = document.createElement("li");
    li.className = who;
    li.textContent = text;
    const log = $("log");
    log.appendChild(li);
    while (log.children.length > 200) log.removeChild(log.firstChild);
    li.scrollIntoView({ block: "end" });
  }

  function send(frame, echo) {
    frame.id = newId();
    pending.set(frame.id, frame);
    if (echo && !silent) bubble(echo, "me");
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(frame));
  }

  // The page's own labels follow the conversation's language (the language command, or a
  // language the server chose): every labelled element names its catalog key.
  function applyLang(next) {
    const table = config.uis && config.uis[next];
    if (!table || next === lang) return;
    lang = next;
    Object.assign(ui, table);
    document.documentElement.lang = next;
    for (const el of document.querySelectorAll("[data-ui]")) el.textContent = ui[el.dataset.ui];
    for (const el of document.querySelectorAll("[data-ui-aria]")) el.setAttribute("aria-label", ui[el.dataset.uiAria]);
    for (const el of document.querySelectorAll("[data-ui-placeholder]")) el.setAttribute("placeholder", ui[el.dataset.uiPlaceholder]);
    renamePlaces();
    const title = silent ? ui.neutral_title : ui.title;
    document.title = title;
    $("heading").textContent = title;
  }

  function show(frame) {
    if (frame.lang) applyLang(frame.lang);
    bubble(frame.text, "bot");
    // A notice (status update) leaves the pending question's buttons and inputs alone.
    if (frame.notice) return;
    const box = $("choices");
    box.replaceChildren();
    for (const choice of frame.choices) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = choice.label;
      button.dataset.value = choice.value;
      button.addEventListener("click", () => pick(choice));
      box.appendChild(button);
    }
    $("location").hidden = frame.ask !== "location";
    $("phone-form").hidden = frame.ask !== "phone";
    if (frame.ask === "location") resetMap();
    const first = frame.ask === "location" ? $("geo")
      : frame.ask === "phone" ? $("phone") : box.querySelector("button");
    if (first) first.focus({ preventScroll: true });
  }

  function pick(choice) {
    $("choices").replaceChildren();
    if (choice.value === "cmd:silent") enterSilent();
    send({ type: "choice", value: choice.value }, choice.label);
  }

  function enterSilent() {
    silent = true;
    document.body.classList.add("silent");
    document.title = ui.neutral_title;
    $("heading").textContent = ui.neutral_title;
    $("favicon").setAttribute("href", "/chat/static/neutral.svg");
    $("text-form").hidden = true;
    const keep = state;
    store.clear();
    memory = keep;
  }

  function sendLocation(lat, lon, accuracy, source) {
    $("location").hidden = true;
    send({ type: "location", lat, lon, accuracy, source }, null);
  }

  // -- the location step: device first, then a tap on the map, then typed text ----------
  $("geo").addEventListener("click", () => {
    if (!navigator.geolocation) { $("geo-status").textContent = ui.location_denied; $("map").focus(); return; }
    $("geo-status").textContent = ui.locating;
    navigator.geolocation.getCurrentPosition(
      (pos) => { $("geo-status").textContent = ""; sendLocation(pos.coords.latitude, pos.coords.longitude, pos.coords.accuracy, "device"); },
      () => { $("geo-status").textContent = ui.location_denied; $("map").focus(); },
      { enableHighAccuracy: true, timeout: 20000, maximumAge: 0 });
  });

  // The map: the board's vendored Leaflet (drag, pinch and wheel zoom, the tiles and their
  // attribution from settings). With no tile URL it is still a map: a plain grid with the
  // province centres named, a pin and its coordinates. Nothing on it names a service, so
  // it says nothing in silent mode either.
  const map = { view: null, pin: null, places: [] };
  // A province centre's name in the page's language now (it follows a language switch).
  const placeName = (place) => (place.names && (place.names[lang] || place.names.en)) || "";
  function renamePlaces() {
    for (const [label, place] of map.places) label.textContent = placeName(place);
  }
  function readout() {
    const at = map.pin && map.pin.getLatLng();
    $("map-coords").textContent = at ? at.lat.toFixed(5) + ", " + at.lng.toFixed(5) : "";
    $("map-send").disabled = !at;
  }
  function placePin(latlng) {
    if (map.pin) map.pin.setLatLng(latlng);
    else {
      const icon = L.divIcon({ className: "pin", html: '<span class="pin-head"></span>', iconSize: [22, 22], iconAnchor: [11, 27] });
      map.pin = L.marker(latlng, { icon, draggable: true, keyboard: false, autoPan: true }).addTo(map.view);
      map.pin.on("drag dragend", readout);
    }
    readout();
  }
  function provinces(view) {
    const names = L.layerGroup().addTo(view);
    for (const place of config.places || []) {
      const label = document.createElement("span");
      label.textContent = placeName(place);  // text, never HTML
      map.places.push([label, place]);
      L.circleMarker([place.lat, place.lon], { radius: 3, weight: 1, color: "#3b4a5a", fillOpacity: 0.6, interactive: false })
        .bindTooltip(label, { permanent: true, direction: "right", className: "place", interactive: false })
        .addTo(names);
    }
    // Names only once they fit: at the country's zoom they would cover one another.
    const crowd = () => $("map").classList.toggle("crowded", view.getZoom() < 7);
    view.on("zoomend", crowd);
    crowd();
  }
  // The zoom reached, on the element (what a test, or a stylesheet, can see of it).
  const zoomed = (view) => { $("map").dataset.zoom = String(view.getZoom()); };
  function makeMap() {
    if (typeof L === "undefined") { $("map-note").hidden = false; return null; }
    const view = L.map("map", { minZoom: 3, maxZoom: 18, zoomControl: false, tap: true })
      .setView([13.0, 101.0], 5);
    L.control.zoom({ zoomInTitle: ui.zoom_in, zoomOutTitle: ui.zoom_out }).addTo(view);
    // Leaflet credited as text: a link out is one stray tap from leaving the conversation.
    view.attributionControl.setPrefix("Leaflet");
    if (config.tileUrl) {
      L.tileLayer(config.tileUrl, { attribution: config.attribution || "", maxZoom: 19 })
        .on("tileerror", () => { $("map-note").hidden = false; }).addTo(view);
    } else {
      $("map").classList.add("no-tiles");
      $("map-note").hidden = false;
      provinces(view);
    }
    view.on("click", (e) => placePin(e.latlng));
    view.on("zoomend", () => zoomed(view));
    zoomed(view);
    return view;
  }
  function resetMap() {
    if (!map.view) map.view = makeMap();
    if (!map.view) return;
    map.view.invalidateSize();  // the panel was hidden: Leaflet measures it now
    if (map.pin) { map.pin.remove(); map.pin = null; }
    readout();
  }
  // Leaflet's own keys pan (arrows) and zoom (+/-); Enter or space puts the pin in the middle.
  $("map").addEventListener("keydown", (e) => {
    if (!map.view || (e.key !== "Enter" && e.key !== " ")) return;
    e.preventDefault();
    placePin(map.view.getCenter());
  });
  $("map-send").addEventListener("click", () => {
    if (!map.pin) return;
    const at = map.pin.getLatLng();
    sendLocation(at.lat, at.lng, null, "map");
  });

  function onSubmit(formId, inputId, type) {
    $(formId).addEventListener("submit", (e) => {
      e.preventDefault();
      const value = $(inputId).value.trim();
      if (!value) return;
      $(inputId).value = "";
      if (type === "location") $("location").hidden = true;
      if (type === "phone") $("phone-form").hidden = true;
      send({ type: "text", text: value }, value);
    });
  }
  onSubmit("address-form", "address", "location");
  onSubmit("phone-form", "phone", "phone");
  onSubmit("text-form", "text", "text");

  // Quick exit: revoke the token on the server (so a copy of it cannot reopen this
  // conversation), replace this page (no new history entry), forget the token, close.
  $("exit").addEventListener("click", () => {
    exiting = true;
    const token = state.token;
    try { if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "exit" })); } catch (e) { /* the beacon below */ }
    try { if (token) navigator.sendBeacon("/chat/revoke", token); } catch (e) { /* best effort */ }
    store.clear();
    try { if (ws) ws.close(); } catch (e) { /* closing anyway */ }
    document.title = "";
    document.body.replaceChildren();
    location.replace(config.exitUrl);
  });

  if (silent) enterSilent();
  connect();
})();
